"""A corporate-style outgoing proxy for tests: CONNECT tunnels that it terminates with TLS certificates of its
own CA (as an inspecting corporate proxy does, so the user has that CA in REQUESTS_CA_BUNDLE), and canned
answers for Kometa's three start-up calls. It records every destination it was asked for."""
from __future__ import annotations

import json
import socketserver
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy.certs import CertStore

from kometa_preview.proxy.outside_calls import TMDB_CONFIGURATION

ANSWERS = {("raw.githubusercontent.com", "/Kometa-Team/Kometa/master/VERSION"): (b"2.4.4\n", "text/plain"),
           ("raw.githubusercontent.com", "/Kometa-Team/Anime-IDs/master/anime_ids.json"): (b"{}", "application/json"),
           ("api.themoviedb.org", "/3/configuration"): (json.dumps(TMDB_CONFIGURATION).encode(), "application/json")}


class CorporateProxy:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.store = CertStore.from_store(folder, "corp", 2048)
        self.ca_file = folder / "corp-ca-cert.pem"
        self.destinations: list[str] = []
        self.requests: list[str] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline().decode("latin-1").strip()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                method, target, _ = line.split(" ", 2)
                if method != "CONNECT":
                    proxy.destinations.append(target)
                    self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                    return
                host = target.rsplit(":", 1)[0]
                proxy.destinations.append(target)
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
                with proxy.context_for(host).wrap_socket(self.connection, server_side=True) as tls:
                    reader = tls.makefile("rb")
                    request = reader.readline().decode("latin-1").strip()
                    while reader.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    path = request.split(" ")[1].split("?", 1)[0]
                    proxy.requests.append(f"{host}{path}")
                    body, content_type = ANSWERS.get((host, path), (b"not here", "text/plain"))
                    status = "200 OK" if (host, path) in ANSWERS else "404 Not Found"
                    tls.sendall(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                                f"Connection: close\r\n\r\n".encode() + body)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def context_for(self, host: str) -> ssl.SSLContext:
        entry = self.store.get_cert(host, [x509.DNSName(host)])
        cert, key = self.folder / f"{host}.pem", self.folder / f"{host}.key"
        cert.write_bytes(entry.cert.to_pem())
        key.write_bytes(entry.privatekey.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                                       serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context

    def start(self) -> CorporateProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
