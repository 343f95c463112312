"""HTTP for untrusted URL lists: which addresses a crawl may reach, and bounds on each download.

A URL list from the web may name (or redirect to, or resolve to) the machine's own services, its
private network or a cloud metadata endpoint. The check therefore sits where the connection is
made, not on the URL text: every connection (each redirect hop is a new one) resolves the host
itself, refuses the addresses `blocked_range` names unless the recipe allows them, and connects
to the very address it checked, so a DNS answer that changes between a check and a connect
(rebinding) cannot slip through. Only http and https are opened; proxies from the environment
are not used (a proxy resolves names itself, out of the check's sight).

Each download (all its redirect hops together) also ends by a deadline and receives at most a
byte limit: every receive on its sockets waits no longer than what is left of the deadline, and
counts toward the limit. A slow-drip server, a body without end or a declared size beyond the
limit ends as an error, never as a hang or an allocation of what the server claims.

`guarded_opener` builds the urllib opener; img2dataset's downloader opens URLs with
`urllib.request.urlopen`, which uses the opener installed in its process (crawl_download.py).
"""
from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass

# Address ranges a crawl never reaches unless the recipe allows them ([crawl].allow_addresses).
# Cloud metadata services live in link-local (169.254.169.254: AWS, GCP, Azure, OpenStack),
# CGNAT (100.100.100.200: Alibaba) and unique-local (fd00:ec2::254: AWS) space; Azure's
# platform endpoint 168.63.129.16 is a public address, listed by itself.
BLOCKED_RANGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loopback", ("127.0.0.0/8", "::1/128")),
    ("unspecified", ("0.0.0.0/8", "::/128")),
    ("private", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("link-local", ("169.254.0.0/16", "fe80::/10")),
    ("unique-local", ("fc00::/7",)),
    ("cgnat", ("100.64.0.0/10",)),
    ("cloud-metadata", ("168.63.129.16/32",)),
    ("reserved", ("192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4", "::/96", "100::/64")),
    ("multicast", ("224.0.0.0/4", "ff00::/8")),
)


def _spans(named_networks) -> tuple[tuple[int, int, int, str], ...]:
    """(version, first, last, name) per network: a check is a few integer comparisons."""
    return tuple((net.version, int(net.network_address), int(net.broadcast_address), name)
                 for net, name in named_networks)


def _span_of(ip, spans) -> str | None:
    value = int(ip)
    return next((name for version, first, last, name in spans if version == ip.version and first <= value <= last),
                None)


_BLOCKED = _spans((ipaddress.ip_network(net), name) for name, nets in BLOCKED_RANGES for net in nets)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
BLOCKED_MESSAGE = "blocked address"  # how a refused connection's error begins (crawl_reason reads it)
_CHUNK = 1 << 16


def parse_networks(entries) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """[crawl].allow_addresses entries (an address or a network in CIDR form) as networks.
    Raises ValueError naming the entry that is neither."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=True))
        except ValueError as err:
            raise ValueError(f"{entry!r} is not an IP address or network ({err})") from None
    return tuple(networks)


def _effective(address: str):
    """The address a connection really reaches: an IPv4 address embedded in IPv6 (mapped,
    6to4, NAT64) is that IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def blocked_range(address: str) -> str | None:
    """The name of the blocked range `address` is in, or None for an ordinary public address."""
    return _span_of(_effective(address), _BLOCKED)


@dataclass(frozen=True)
class FetchPolicy:
    """What one crawl worker's downloads may do (picklable: it travels to the worker processes)."""

    allow: tuple[str, ...] = ()  # addresses or networks reachable even though blocked_range names them
    max_bytes: int = 32_000_000  # received per download, headers and redirect hops included
    max_seconds: float = 60.0  # per download, from the first connect to the last byte

    @functools.cached_property
    def _allowed(self):
        return _spans((net, "allowed") for net in parse_networks(self.allow))

    def refusal(self, address: str) -> str | None:
        """Why a connection to `address` is refused (None: it may be made)."""
        ip = _effective(address)
        name = _span_of(ip, _BLOCKED)
        if name is None or _span_of(ip, self._allowed):
            return None
        return f"{BLOCKED_MESSAGE} {ip} ({name})"


class BlockedAddress(OSError):
    """Every address the host resolved to is blocked by the policy; nothing was sent."""


class DownloadTooLarge(OSError):
    pass


class DownloadTooSlow(TimeoutError):
    pass


# The download under way in this thread: its deadline and bytes received, over all its hops.
_current = threading.local()


class _Download:
    def __init__(self, policy: FetchPolicy, timeout: float | None):
        self.policy = policy
        self.deadline = time.monotonic() + policy.max_seconds
        self.timeout = timeout  # the per-receive timeout the caller asked for
        self.received = 0

    def wait_limit(self) -> float:
        """How long the next socket operation may wait: the caller's timeout, cut to the deadline."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DownloadTooSlow(f"download took longer than {self.policy.max_seconds:g} s")
        return left if self.timeout is None else min(self.timeout, left)

    def count(self, n: int) -> None:
        self.received += n
        if self.received > self.policy.max_bytes:
            raise DownloadTooLarge(f"download larger than {self.policy.max_bytes} bytes")


class _Bounded:
    """Receives wait no longer than the download's deadline allows and count toward its limit."""

    def recv_into(self, *args, **kwargs):
        download = _current.download
        self.settimeout(download.wait_limit())
        try:
            n = super().recv_into(*args, **kwargs)
        except TimeoutError:
            download.wait_limit()  # says so when the deadline, not the server's silence, ran out
            raise
        download.count(n)
        return n


class _BoundedSocket(_Bounded, socket.socket):
    pass


class _BoundedSSLSocket(_Bounded, ssl.SSLSocket):
    pass


def _connect(host: str, port: int) -> socket.socket:
    """A TCP connection to the first address of `host` that the policy allows (and that answers)."""
    download = _current.download
    refused, error = None, None
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        refusal = download.policy.refusal(sockaddr[0])
        if refusal is not None:
            refused = refused or refusal
            continue
        sock = _BoundedSocket(family, kind, proto)
        try:
            sock.settimeout(download.wait_limit())
            sock.connect(sockaddr)  # the checked address itself: no second resolution
            return sock
        except OSError as err:
            sock.close()
            error = err
    if error is not None:
        raise error
    raise BlockedAddress(f"{refused} for host {host}")


class _BoundedResponse(http.client.HTTPResponse):
    def begin(self):
        super().begin()
        limit = _current.download.policy.max_bytes
        if self.length is not None and self.length > limit:
            raise DownloadTooLarge(f"declared body of {self.length} bytes, more than {limit}")

    def read(self, amt=None):
        if amt is None and self.chunked:
            # Read a piece at a time: http.client would allocate a declared chunk size at once.
            pieces = []
            while piece := super().read(_CHUNK):
                pieces.append(piece)
            return b"".join(pieces)
        return super().read(amt)


class _CheckedHTTPConnection(http.client.HTTPConnection):
    response_class = _BoundedResponse

    def connect(self):
        self.sock = _connect(self.host, self.port)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _CheckedHTTPSConnection(http.client.HTTPSConnection, _CheckedHTTPConnection):
    """HTTPSConnection.connect wraps what _CheckedHTTPConnection.connect (next in the MRO) opened."""


class _HTTPHandler(urllib.request.HTTPHandler):
    def do_open(self, http_class, req, **kwargs):
        return super().do_open(_CheckedHTTPConnection, req, **kwargs)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def do_open(self, http_class, req, **kwargs):
        return super().do_open(_CheckedHTTPSConnection, req, **kwargs)


class _GuardedOpener(urllib.request.OpenerDirector):
    """Starts a download's deadline and byte count at its first request; the redirect hops it
    follows (nested open calls in the same thread) share them."""

    def __init__(self, policy: FetchPolicy):
        super().__init__()
        self.policy = policy

    def open(self, fullurl, data=None, timeout=None):
        depth = getattr(_current, "depth", 0)
        if depth == 0:
            _current.download = _Download(self.policy, timeout)
        _current.depth = depth + 1
        try:
            return super().open(fullurl, data, timeout)
        finally:
            _current.depth = depth


def guarded_opener(policy: FetchPolicy) -> urllib.request.OpenerDirector:
    """An opener for http(s) only: checked addresses on every hop, a deadline and a byte limit
    per download, certificates verified, no proxies, at most urllib's 10 redirects."""
    context = ssl.create_default_context()
    context.sslsocket_class = _BoundedSSLSocket
    opener = _GuardedOpener(policy)
    for handler in (urllib.request.UnknownHandler(), _HTTPHandler(), _HTTPSHandler(context=context),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPRedirectHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener
