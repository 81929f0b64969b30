"""mitmdump/mitmweb script: the kometa-preview addon chain, for live inspection from a checkout.

    mitmdump -s addons/preview.py --mode reverse:http://PLEX:32400@127.0.0.1:32500 \
        --set preview_config=preview.yml --set connection_strategy=lazy

The script itself ships in the package (`kometa-preview addon-path` prints where); this file only imports it.
"""
from kometa_preview.proxy.script import addons

__all__ = ["addons"]
