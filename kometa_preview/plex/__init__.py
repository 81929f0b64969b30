"""Plex protocol knowledge shared by the proxy: URL grammar, XML, and the filter language."""
