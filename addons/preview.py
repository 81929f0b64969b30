"""mitmdump/mitmweb script: the kometa-preview addon chain.

    mitmdump -s addons/preview.py --mode reverse:http://PLEX:32400@127.0.0.1:32500 \
        --set preview_config=preview.yml --set connection_strategy=lazy

The code lives in the installed package (a hot-reloaded -s script would reset its state).
"""
from kometa_preview.proxy.chain import build

addons = build()
