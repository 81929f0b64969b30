"""The last addon: once every addon's `done` hook has run, the proxy has nothing left to do.

mitmdump's own teardown after `done` (closing its loop, then the interpreter's, with mitmproxy's ~1,000 modules)
takes about 0.25 s, and the render waits for the proxy's exit before it returns. With `preview_exit_when_done`
(the launcher sets it) this addon, last in the chain, flushes the log and ends the process right after the
`done` hooks: the journal is closed (Setup.done wrote PROXY_DONE), captures were written when they arrived, and
mitmproxy's own addons (a flow file being saved, `-w`) ran their `done` before the script's addons.
"""
from __future__ import annotations

import logging
import os
import sys

from mitmproxy import ctx


class ExitWhenDone:
    def load(self, loader) -> None:
        loader.add_option("preview_exit_when_done", bool, False,
                          "End the process as soon as every addon's done hook has run (the render's proxies), "
                          "instead of after mitmproxy's own teardown.")

    def done(self) -> None:
        if not ctx.options.preview_exit_when_done:
            return
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(0)
