"""The preview proxy: mitmproxy addons that mock, gate, block and capture Plex traffic."""
