"""One job, a watch loop, shards: the proxy and Kometa started, run and stopped.
"""
