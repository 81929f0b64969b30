"""Named sizes and times both processes agree on (the launcher passes them to mitmdump, the addons enforce
them). Every number that bounds memory or time lives here once."""
from __future__ import annotations

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

#: Largest upload body accepted, decoded (413 above). Kometa's posters are a few MiB at most.
MAX_UPLOAD_BYTES = 64 * MiB
#: mitmproxy's own body limit sits a little above ours, so our 413 (with its journal line) answers first.
BODY_SIZE_SLACK = 64 * KiB
#: Largest answer read from Plex into memory (metadata, images). Listings stream instead.
MAX_UPSTREAM_BYTES = 64 * MiB
#: A streamed listing is filtered as it arrives; this only stops a runaway answer.
MAX_STREAMED_LISTING_BYTES = 2 * GiB
#: An unparseable listing this small is passed through unchanged (docs/PREVIEW-MODE.md); larger ones are answered empty.
PASS_THROUGH_BYTES = 4 * MiB
#: Request headers: at most this many, and this many bytes together (431 above).
MAX_HEADER_COUNT = 100
MAX_HEADER_BYTES = 32 * KiB
#: A GraphQL request body (the only outside POST allowed) is judged on at most this many decoded bytes.
MAX_GRAPHQL_BYTES = 64 * KiB
#: preview.yml and the files it names (overlay YAML) are read whole; nothing legitimate is near this.
MAX_CONFIG_FILE_BYTES = 1 * MiB
#: Disk space held back until export, so a disk filled by captures still gets its summary.json.
RESERVE_BYTES = 1 * MiB
#: Seconds a client connection may stay idle before the proxy closes it (mitmproxy's default is 600).
CLIENT_IDLE_SECONDS = 60
#: Seconds a client may take to deliver one whole request (slow-loris).
REQUEST_SECONDS = 30
#: The render's handover to the proxy process (its arguments and ProxyConfig): a dry run's targets fit many times.
HANDOVER_BYTES = 64 * MiB
#: Seconds a proxy whose render is gone gets to run its `done` hooks before it leaves anyway.
LIFELINE_GRACE_SECONDS = 5
#: Seconds the box takes at most to report that it is ready (it takes a few hundredths).
BOX_START_SECONDS = 10
#: A poster transcode the proxy answers (Kometa asks poster sizes) is decoded at most this big.
TRANSCODE_PIXELS = 4_000_000
#: `check` decodes an input image this small to prove it reads to its end.
CHECK_PIXELS = 1_000_000
