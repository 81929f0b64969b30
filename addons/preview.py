"""mitmdump/mitmweb script: the kometa-preview addon chain, for live inspection.

    mitmdump -s addons/preview.py --mode reverse:http://PLEX:32400@127.0.0.1:32500 \
        --set preview_config=preview.yml --set connection_strategy=lazy

All code lives in the installed package: a `-s` script is hot-reloaded when it changes, which
would reset the addons' state mid-run.
"""
from kometa_preview.proxy.script import addons  # noqa: F401 - mitmproxy reads `addons`
