"""The mitmdump/mitmweb script the launcher loads (`addons/preview.py` is the same, for users)."""
from kometa_preview.proxy.chain import build

addons = build()
