"""The mitmdump/mitmweb script of the preview: `mitmdump -s $(kometa-preview addon-path) …`.

The launcher loads it by path, and users do the same for live inspection (addons/preview.py in a checkout is a
shim that imports it): it ships in the package, so a pip-installed kometa-preview has it too. All code lives in
the package (a `-s` script is hot-reloaded when it changes, which would reset the addons' state mid-run). It reads
PREVIEW_MOCK_LIBRARY (0/false: filter mode) for the default of `preview_mock_library` through the one parser; the
launcher passes the mode as that option, and the addons themselves never read the environment.
"""
from kometa_preview.common.config import mock_library_from_environment
from kometa_preview.proxy.chain import build

addons = build(mock_library_default=mock_library_from_environment())
