"""The only exits of Kometa's box, as a process of their own (run by this tool's interpreter with `-I -S`, standard
library only, never imported by the package):

    python -I -S relay.py <control fd> <listener fd>:<port index> …

Each connection Kometa opens to one of its box's loopback ports (the listeners, made inside the box by box_init.py)
is carried to the proxy's port outside, byte for byte. Until `open` (the proxy is ready) connections wait, so a
Kometa started early never finds its proxy closed. It is a process and not a thread of the render because each
hop of each request would otherwise wait for the render's own work (its interpreter lock): measured, Kometa ran
0.7 s longer in its box with the relay as render threads.

The control socket carries lines: from the render `point <port> <port>` (the proxy's ports, in the box's port
order; `-` for none), `open`, `close`; to the render `waited <seconds>` (how long the first connection waited for
`open`, which is not Kometa's own time) and `carried <n>`. When the render's end closes, the relay ends.
"""
import asyncio
import socket
import sys
import time

CHUNK = 256 * 1024
#: Connections Kometa may have open at once; more are closed at once (Kometa's pools hold about ten).
MAX_CONNECTIONS = 256
#: Seconds a connection waits for `open` at most (the render stops Kometa long before).
GATE_SECONDS = 120


class Relay:
    def __init__(self, control: socket.socket, count: int) -> None:
        self.control = control
        self.targets: list[int | None] = [None] * count
        self.opened = asyncio.Event()
        self.closing = asyncio.Event()
        self.live = 0
        self.carried = 0
        self.waited: float | None = None

    def tell(self, line: str) -> None:
        try:
            self.control.sendall(line.encode() + b"\n")
        except OSError:
            self.closing.set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        if self.live >= MAX_CONNECTIONS or self.closing.is_set():
            writer.close()
            return
        self.live += 1
        try:
            await self.carry(reader, writer, index)
        finally:
            self.live -= 1
            writer.close()

    async def carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        if not self.opened.is_set():
            arrived = time.monotonic()
            try:
                await asyncio.wait_for(self.opened.wait(), GATE_SECONDS)
            except TimeoutError:
                return
            if self.waited is None:
                self.waited = time.monotonic() - arrived
                self.tell(f"waited {self.waited:.4f}")
        target = self.targets[index]
        if target is None or self.closing.is_set():
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            return
        self.carried += 1
        try:
            await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        finally:
            upstream_writer.close()

    async def follow_control(self) -> None:
        """The render's orders; its end closing (it is gone, or Kometa has ended) ends the relay."""
        loop = asyncio.get_running_loop()
        pending = b""
        while True:
            data = await loop.sock_recv(self.control, 4096)
            if not data:
                break
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                words = line.decode().split()
                if words and words[0] == "point":
                    self.targets = [None if word == "-" else int(word) for word in words[1:]]
                elif words == ["open"]:
                    self.opened.set()
                elif words == ["close"]:
                    self.tell(f"carried {self.carried}")
                    self.closing.set()
                    return
        self.closing.set()


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, asyncio.IncompleteReadError):
        writer.close()


async def main() -> int:
    control = socket.socket(fileno=int(sys.argv[1]))
    control.setblocking(False)
    listeners = [(int(fd), int(index)) for fd, index in (item.split(":") for item in sys.argv[2:])]
    relay = Relay(control, max((index for _, index in listeners), default=-1) + 1)
    servers = []
    for fd, index in listeners:
        listener = socket.socket(fileno=fd)
        servers.append(await asyncio.start_server(
            lambda r, w, i=index: relay.serve(r, w, i), sock=listener))
    await relay.follow_control()
    for server in servers:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
