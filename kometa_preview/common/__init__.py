"""The vocabulary both processes share: preview.yml's schema, the job folder, the journal's events,
named limits, atomic files, redaction, images, names read back. Never imports mitmproxy.
"""
