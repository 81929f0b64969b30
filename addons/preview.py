"""mitmdump/mitmweb script: the kometa-preview addon chain, for live inspection.

    mitmdump -s addons/preview.py --mode reverse:http://PLEX:32400@127.0.0.1:32500 \
        --set preview_config=preview.yml --set connection_strategy=lazy

All code lives in the installed package: a `-s` script is hot-reloaded when it changes, which
would reset the addons' state mid-run. Like `render`, it reads PREVIEW_MOCK_LIBRARY (0/false: filter
mode) through the one parser; the addons themselves never read the environment.
"""
from kometa_preview.config import mock_library_from_environment
from kometa_preview.proxy.chain import build

addons = build(mock_library_default=mock_library_from_environment())
