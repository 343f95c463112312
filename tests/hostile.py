"""A deliberately hostile HTTP server on 127.0.0.1, and a recording server on another loopback
address that counts every connection it accepts (the crawl must make none).

Each hostile route is one way a server on the web misbehaves; HOSTILE_CASES maps it to the
reason the crawl must give its row. Slow routes give up after LINGER seconds, so a crawl without
deadlines takes that long (a test's time bound fails) instead of hanging the suite.
"""
from __future__ import annotations

import contextlib
import io
import socket
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

from wukong_data.demo.server import running

LINGER = 90.0  # how long the slow routes keep a connection going


def png_bomb(side: int = 30000) -> bytes:
    """A valid 1-bit PNG of side x side black pixels: ~100 KB that a decoder expands to side^2
    bytes (900 MB at 30000) or more."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte, then the packed bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row * 1000) for _ in range(side // 1000)) + \
        packer.compress(row * (side % 1000)) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)) + \
        chunk(b"IDAT", data) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header claims width x height (the scan data stays small)."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


class HostileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    images: dict[str, bytes] = {}  # path -> JPEG bytes served normally (the control rows)
    stop: threading.Event
    blocked_base = ""  # the recording server's base URL, for the redirect into it
    bomb = b""
    bomb_jpeg = b""

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, content_type: str = "image/jpeg", headers=(), reason=None):
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, data: bytes, every: float = 0.4) -> None:
        """Send `data` a byte at a time, one every `every` seconds, for at most LINGER seconds."""
        deadline = time.monotonic() + LINGER
        for byte in data:
            if self.stop.wait(every) or time.monotonic() > deadline:
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self.path
        good = self.images.get(path)
        try:
            if good is not None:
                self._send(200, good)
            elif path == "/slow-but-fine.jpg":  # slower than nothing, well within the deadline
                time.sleep(0.5)
                self._send(200, self.images["/slow.jpg"])
            elif path == "/drip-body.jpg":
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self._drip(b"\xff" * 100000)
            elif path == "/drip-headers.jpg":
                self._drip(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 10000 + b"\r\n\r\n")
            elif path == "/stall.jpg":
                self.stop.wait(LINGER)
            elif path == "/reset.jpg":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()  # RST instead of an answer
            elif path == "/truncated-body.jpg":
                body = self.images["/slow.jpg"]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 3])
                self.connection.shutdown(socket.SHUT_RDWR)
            elif path == "/html.jpg":
                self._send(200, b"<!doctype html><html><body><h1>Not an image</h1></body></html>")
            elif path == "/empty.jpg":
                self._send(200, b"")
            elif path == "/bomb.png":
                self._send(200, self.bomb, "image/png")
            elif path == "/bomb-header.jpg":
                self._send(200, self.bomb_jpeg)
            elif path == "/loop.jpg":
                self._send(302, b"", headers=[("Location", "/loop.jpg")])
            elif path == "/ping-pong-a.jpg":
                self._send(302, b"", headers=[("Location", "/ping-pong-b.jpg")])
            elif path == "/ping-pong-b.jpg":
                self._send(302, b"", headers=[("Location", "/ping-pong-a.jpg")])
            elif path == "/redirect-blocked.jpg":
                self._send(302, b"", headers=[("Location", self.blocked_base + "/secret")])
            elif path == "/redirect-metadata.jpg":
                self._send(302, b"", headers=[("Location", "http://169.254.169.254/latest/meta-data/")])
            elif path == "/redirect-file.jpg":
                self._send(302, b"", headers=[("Location", "file:///etc/passwd")])
            elif path == "/too-many-requests.jpg":
                self._send(429, b"slow down", "text/plain", [("Retry-After", "3600")])
            elif path == "/unavailable.jpg":
                self._send(503, b"later", "text/plain", [("Retry-After", "86400")])
            elif path == "/forged-reason.jpg":  # an error whose reason phrase mimics ours
                self._send(404, b"", reason="blocked address 10.0.0.1 (private)")
            elif path == "/huge-declared.jpg":
                self.send_response(200)
                self.send_header("Content-Length", str(10**12))
                self.end_headers()
                self.wfile.write(b"\xff\xd8\xff" + b"\0" * 1000)
                self.stop.wait(LINGER)
            elif path == "/endless.jpg":  # chunked, no length, never ends; the first chunk claims 1 TB
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"%x\r\n" % 10**12)
                piece = b"\0" * 65536
                deadline = time.monotonic() + LINGER
                while not self.stop.is_set() and time.monotonic() < deadline:
                    self.wfile.write(piece)
            elif path == "/many-headers.jpg":
                self.send_response(200)
                for i in range(500):
                    self.send_header(f"X-Header-{i}", "x")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/long-header.jpg":
                self.send_response(200)
                self.send_header("X-Long", "a" * 200_000)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/opted-out.jpg":
                self._send(200, self.images["/slow.jpg"], headers=[("X-Robots-Tag", "noai")])
            else:
                self._send(404, b"not found", "text/plain")
        except OSError:
            pass  # the client gave up on us: what a hostile route expects


# path (or URL marker) -> the reason its row must get (None: kept by the crawl)
HOSTILE_CASES = {
    "/slow-but-fine.jpg": None,
    "/drip-body.jpg": "download_failed",
    "/drip-headers.jpg": "download_failed",
    "/stall.jpg": "download_failed",
    "/reset.jpg": "download_failed",
    "/truncated-body.jpg": "download_failed",
    "/html.jpg": "decode_failed",
    "/empty.jpg": "decode_failed",
    "/bomb.png": "decode_failed",
    "/bomb-header.jpg": "decode_failed",
    "/loop.jpg": "download_failed",
    "/ping-pong-a.jpg": "download_failed",
    "/redirect-blocked.jpg": "blocked_address",
    "/redirect-metadata.jpg": "blocked_address",
    "/redirect-file.jpg": "download_failed",
    "/too-many-requests.jpg": "download_failed",
    "/unavailable.jpg": "download_failed",
    "/forged-reason.jpg": "download_failed",
    "/huge-declared.jpg": "download_failed",
    "/endless.jpg": "download_failed",
    "/many-headers.jpg": "download_failed",
    "/long-header.jpg": "download_failed",
    "/opted-out.jpg": "opted_out",
    "/missing.jpg": "download_failed",
}


class RecordingServer:
    """Accepts TCP connections on `host` and counts them; answers nothing."""

    def __init__(self, host: str = "127.0.0.2"):
        self.sock = socket.create_server((host, 0), backlog=128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.base = f"http://{host}:{self.port}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


@contextlib.contextmanager
def hostile_server(images: dict[str, bytes], blocked_base: str):
    """Serve HOSTILE_CASES and `images` (path -> JPEG) on 127.0.0.1; yields the base URL."""
    stop = threading.Event()
    handler = type("Handler", (HostileHandler,), {"images": images, "stop": stop, "blocked_base": blocked_base,
                                                  "bomb": png_bomb(), "bomb_jpeg": jpeg_claiming(20000, 20000)})
    server = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 128})(("127.0.0.1", 0), handler)
    with running(server) as base_url:
        try:
            yield base_url
        finally:
            stop.set()  # ends the dripping answers before the server waits for its threads
