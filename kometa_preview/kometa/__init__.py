"""Kometa as a child process: finding it, its box, its start, its run config, its own log read back.
"""
