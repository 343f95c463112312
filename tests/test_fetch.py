"""The crawl's opener against real loopback servers: which addresses it may reach (resolved, on
every hop), and the deadline and byte limit of each download, over HTTP and HTTPS."""
import socket
import ssl
import threading
import time
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hostile import RecordingServer
from wukong_data.fetch import FetchPolicy, blocked_range, guarded_opener

TLS = Path(__file__).parent / "assets" / "tls"


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1%eth0", "link-local"), ("fd00:ec2::254", "unique-local"),
    ("100.100.100.200", "cgnat"), ("168.63.129.16", "cloud-metadata"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("240.0.0.1", "reserved"),
    # IPv4 inside IPv6 reaches the IPv4 address: mapped, NAT64, 6to4.
    ("::ffff:10.0.0.1", "private"), ("64:ff9b::a9fe:a9fe", "link-local"), ("2002:7f00:1::", "loopback"),
    ("8.8.8.8", None), ("2001:4860:4860::8888", None), ("::ffff:8.8.8.8", None), ("1.1.1.1", None),
])
def test_blocked_ranges(address, expected):
    assert blocked_range(address) == expected


def test_allow_list_is_exact():
    policy = FetchPolicy(allow=("127.0.0.1", "10.1.0.0/16"))
    assert policy.refusal("127.0.0.1") is None and policy.refusal("10.1.200.3") is None
    assert policy.refusal("127.0.0.2") == "blocked address 127.0.0.2 (loopback)"
    assert policy.refusal("10.2.0.1") == "blocked address 10.2.0.1 (private)"
    assert policy.refusal("::ffff:127.0.0.1") is None  # the same address, written in IPv6
    assert policy.refusal("93.184.215.14") is None  # public addresses need no allowing


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        if self.path == "/ok":
            self._answer(b"x" * 1000)
        elif self.path.startswith("/to/"):  # redirect to the rest of the path
            self.send_response(302)
            self.send_header("Location", "http://" + self.path[len("/to/"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                if self.server.stop.wait(0.2):
                    return
                self.wfile.write(b"x")
                self.wfile.flush()
        elif self.path == "/endless":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                while not self.server.stop.is_set():
                    self.wfile.write(b"10000\r\n" + b"\0" * 0x10000 + b"\r\n")
            except OSError:
                pass  # the client stopped reading: what this route is for

    def _answer(self, body: bytes):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(tls: bool = False):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.stop = threading.Event()
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(TLS / "cert.pem", TLS / "key.pem")
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def http():
    server = _serve()
    yield f"127.0.0.1:{server.server_port}"
    server.stop.set()
    server.shutdown()


@pytest.fixture(scope="module")
def recording():
    server = RecordingServer("127.0.0.2")
    yield server
    server.close()


def _fetch(url: str, policy: FetchPolicy, timeout: float = 5):
    """(body or the error's text, seconds taken)."""
    start = time.monotonic()
    try:
        with guarded_opener(policy).open(url, timeout=timeout) as response:
            result = response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        result = str(err)
    return result, time.monotonic() - start


LOCAL = FetchPolicy(allow=("127.0.0.1",), max_bytes=100_000, max_seconds=1.5)


def test_names_are_resolved_and_every_hop_is_checked(http, recording):
    assert _fetch(f"http://{http}/ok", LOCAL)[0] == b"x" * 1000
    # localhost is 127.0.0.1 here: allowed by the allow list, refused without it.
    assert _fetch(f"http://localhost:{http.split(':')[1]}/ok", LOCAL)[0] == b"x" * 1000
    assert _fetch(f"http://localhost:{http.split(':')[1]}/ok", FetchPolicy())[0].startswith(
        "<urlopen error blocked address 127.0.0.1 (loopback)")
    other = f"127.0.0.2:{recording.port}"
    for url in (f"http://{other}/direct", f"http://{http}/to/{other}/hop", f"http://{http}/to/{http}/to/{other}/hops",
                f"http://2130706434:{recording.port}/decimal", f"http://0x7f.2:{recording.port}/hex"):
        assert _fetch(url, LOCAL)[0].startswith("<urlopen error blocked address 127.0.0.2 (loopback)"), url
    assert recording.connections == 0


def test_a_name_is_resolved_once_and_the_checked_address_is_the_one_connected(http, recording, monkeypatch):
    """DNS rebinding: a name that answers an allowed address when checked and a blocked one just
    after must still reach only the allowed one."""
    answers = iter(["127.0.0.1"] + ["127.0.0.2"] * 10)
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        return real(next(answers) if host == "rebind.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = int(http.split(":")[1])
    assert _fetch(f"http://rebind.test:{port}/ok", LOCAL)[0] == b"x" * 1000
    assert _fetch(f"http://rebind.test:{recording.port}/ok", LOCAL)[0].startswith("<urlopen error blocked address")
    assert recording.connections == 0


def test_only_http_and_https_are_opened(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    for url in (f"file://{secret}", "ftp://127.0.0.1/x", "data:text/plain,hello"):
        result, _ = _fetch(url, LOCAL)
        assert isinstance(result, str) and "unknown url type" in result, url


def test_each_download_ends_by_its_deadline_and_byte_limit(http):
    body, seconds = _fetch(f"http://{http}/drip", LOCAL)
    assert body == "download took longer than 1.5 s" and 1.4 < seconds < 3
    body, _ = _fetch(f"http://{http}/endless", LOCAL)
    assert body == "download larger than 100000 bytes"


def test_https_has_the_same_bounds(monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "cert.pem"))  # trust the test certificate
    server = _serve(tls=True)
    try:
        base = f"https://127.0.0.1:{server.server_port}"
        assert _fetch(base + "/ok", LOCAL)[0] == b"x" * 1000
        body, seconds = _fetch(base + "/drip", LOCAL)
        assert body == "download took longer than 1.5 s" and seconds < 3
        assert _fetch(base + "/endless", LOCAL)[0] == "download larger than 100000 bytes"
    finally:
        server.stop.set()
        server.shutdown()
    # A server that accepts and never completes the TLS handshake is bounded too.
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        body, seconds = _fetch(f"https://127.0.0.1:{silent.getsockname()[1]}/", LOCAL)
        assert 1.4 < seconds < 3 and "handshake operation timed out" in body
    finally:
        silent.close()
