"""Where the real-Kometa tests find Kometa: KOMETA_PATH (its checkout, or its kometa.py) and KOMETA_PYTHON (the
interpreter with its requirements; default this one). The tests that use it are skipped when it is not a Kometa
checkout, so the suite runs without Kometa, as CI does."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(os.environ.get("KOMETA_PATH", "/nonexistent"))
CHECKOUT = CHECKOUT.parent if CHECKOUT.name == "kometa.py" else CHECKOUT
PYTHON = os.environ.get("KOMETA_PYTHON", sys.executable)
#: The `pytestmark` of every real-Kometa test module.
MARKS = [pytest.mark.real_kometa, pytest.mark.e2e,
         pytest.mark.skipif(not (CHECKOUT / "kometa.py").is_file() or not (CHECKOUT / "modules").is_dir(),
                            reason="KOMETA_PATH does not point at a real Kometa checkout")]
