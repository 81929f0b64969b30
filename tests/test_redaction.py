"""The one redaction policy on a realistic Kometa config: every service id, OAuth code and block, key and token
is gone from the redacted copy, whatever its name, and the harmless settings stay readable."""
from __future__ import annotations

import pytest
import yaml

from kometa_preview.common.redaction import is_secret_name, redact, redact_document

KOMETA_CONFIG = """
libraries:
  Movies:
    overlay_files:
      - default: resolution
      - file: config/overlays.yml
    template_variables:
      url: https://posters.example/list.json?apikey=LIBRARY-SECRET-1&sort=new
settings:
  cache: true
  overlay_artwork_filetype: jpg
  run_order: [overlays]
plex:
  url: http://127.0.0.1:32500
  token: PLEX-SECRET-2
  timeout: 60
  clean_bundles: false
tmdb:
  apikey: TMDB-SECRET-3
  language: en
  region: US
omdb:
  apikey: OMDB-SECRET-4
  cache_expiration: 60
mdblist:
  apikey: MDBLIST-SECRET-5
  cache_expiration: 60
notifiarr:
  apikey: NOTIFIARR-SECRET-6
gotify:
  url: https://gotify-user:GOTIFY-SECRET-7@gotify.example
  token: GOTIFY-SECRET-8
ntfy:
  url: https://ntfy.example
  token: NTFY-SECRET-9
  topic: NTFY-SECRET-10
webhooks:
  error: https://discord.com/api/webhooks/111/WEBHOOK-SECRET-11
  run_start: notifiarr
  changes: [https://hooks.example/WEBHOOK-SECRET-12]
trakt:
  client_id: TRAKT-SECRET-13
  client_secret: TRAKT-SECRET-14
  pin: TRAKT-SECRET-15
  authorization:
    access_token: TRAKT-SECRET-16
    token_type: Bearer
    expires_in: 7889238
    refresh_token: TRAKT-SECRET-17
    scope: public
    created_at: 1700000000
mal:
  client_id: MAL-SECRET-18
  client_secret: MAL-SECRET-19
  localhost_url: http://localhost/?code=MAL-SECRET-20&state=MAL-SECRET-21
  cache_expiration: 60
  authorization:
    access_token: MAL-SECRET-22
    token_type: Bearer
    expires_in: 2678400
    refresh_token: MAL-SECRET-23
anidb:
  username: ANIDB-SECRET-24
  password: ANIDB-SECRET-25
  client: ANIDB-SECRET-26
  version: 1
  language: en
  cache_expiration: 60
radarr:
  url: http://192.168.1.12:7878
  token: RADARR-SECRET-27
tautulli:
  url: http://192.168.1.12:8181
  apikey: TAUTULLI-SECRET-28
github:
  token: GITHUB-SECRET-29
"""


def test_a_redacted_kometa_config_keeps_no_credential_and_every_harmless_setting():
    document = yaml.safe_load(KOMETA_CONFIG)
    redacted = yaml.safe_dump(redact_document(document), sort_keys=False)
    assert "SECRET" not in redacted, [line for line in redacted.splitlines() if "SECRET" in line]
    kept = yaml.safe_load(redacted)
    assert kept["tmdb"] == {"apikey": "<redacted>", "language": "en", "region": "US"}
    assert kept["mal"]["client_id"] == "<redacted>" and kept["mal"]["authorization"] == "<redacted>"
    assert kept["mal"]["localhost_url"] == "<redacted>" and kept["mal"]["cache_expiration"] == 60
    assert kept["trakt"]["client_id"] == kept["trakt"]["pin"] == kept["trakt"]["authorization"] == "<redacted>"
    assert kept["anidb"]["language"] == "en" and kept["anidb"]["client"] == "<redacted>"
    assert kept["plex"] == {"url": "http://127.0.0.1:32500", "token": "<redacted>", "timeout": 60,
                            "clean_bundles": False}
    assert kept["gotify"]["url"] == "https://<redacted>@gotify.example"
    assert kept["webhooks"] == {"error": "<redacted>", "run_start": "<redacted>", "changes": "<redacted>"}
    assert kept["radarr"]["url"] == "http://192.168.1.12:7878"
    assert kept["settings"] == document["settings"]
    assert kept["libraries"]["Movies"]["overlay_files"] == document["libraries"]["Movies"]["overlay_files"]
    assert kept["libraries"]["Movies"]["template_variables"]["url"].startswith(
        "https://posters.example/list.json?apikey=<redacted>")


def test_unset_values_stay_visible():
    assert redact_document({"trakt": {"client_id": None, "pin": ""}, "x": {"token": None}}) == \
        {"trakt": {"client_id": None, "pin": ""}, "x": {"token": None}}


@pytest.mark.parametrize("name, secret", [
    ("client_id", True), ("trakt_client_id", True), ("CLIENT-ID", True), ("code", True), ("pin", True),
    ("code_verifier", True), ("authorization", True), ("access_token", True), ("refresh_token", True),
    ("apikey", True), ("countrycode", False), ("languagecode", False), ("spin", False), ("id", False),
    ("language", False), ("client", False),
])
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


@pytest.mark.parametrize("text", [
    "https://myanimelist.net/v1/oauth2/token?code=OAUTHCODE123&client_id=MALCLIENT456",
    "/oauth/authorize?response_type=code&client_id=MALCLIENT456&code_verifier=VERIFIER789",
    "http://localhost/?code%3DOAUTHCODE123%26state%3Dx",
    "https://api.trakt.tv/oauth/device/token?code=OAUTHCODE123&trakt_client_id=MALCLIENT456",
])
def test_oauth_codes_and_client_ids_leave_no_piece_in_urls(text):
    redacted = redact(text)
    for secret in ("OAUTHCODE123", "MALCLIENT456", "VERIFIER789"):
        assert not any(secret[i:i + 4] in redacted for i in range(len(secret) - 3)), redacted


def test_harmless_codes_stay_readable():
    assert redact("/3/search/movie?query=x&countrycode=US&language=en") == \
        "/3/search/movie?query=x&countrycode=US&language=en"
