"""A loopback HTTP server for image URLs held in memory (demo, tests and benchmarks)."""
from __future__ import annotations

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[bytes, dict[str, str]]] = {}
    delay = 0.0

    def do_GET(self):  # noqa: N802 - http.server's naming
        time.sleep(self.delay)
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        body, headers = route
        self.send_response(200)
        for name, value in {"Content-Type": "image/jpeg", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the terminal for our own output
        pass


class _Server(ThreadingHTTPServer):
    # A crawl opens dozens of connections at once; at the default backlog of 5 the rest wait for
    # SYN retransmits (1 s, 3 s, ...) and the server looks slow for no reason of its own.
    request_queue_size = 128


@contextlib.contextmanager
def serve(routes: dict[str, tuple[bytes, dict[str, str]]], delay: float = 0.0, port: int = 0):
    """Serve {path: (body, extra headers)} on 127.0.0.1 (on `port`, or any free one); yields the
    base URL (no trailing slash).

    `delay` seconds before each answer stands in for a slow remote host.
    """
    handler = type("Handler", (_Handler,), {"routes": routes, "delay": delay})
    with running(_Server(("127.0.0.1", port), handler)) as base_url:
        yield base_url


@contextlib.contextmanager
def running(server):
    """Run a loopback `server` on a daemon thread; yields its base URL, then shuts it down."""
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
