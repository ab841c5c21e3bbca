"""A local HTTP server for the weights tests: serves bytes by path, honours Range, records
every request, and can misbehave on purpose (HTML pages, cut-off bodies, ignored ranges)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    """What the server does; tests fill these in."""

    files: dict[str, bytes] = field(default_factory=dict)
    content_types: dict[str, str] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent, once
    redirects: dict[str, str] = field(default_factory=dict)  # path -> path (302, like a CDN)
    ignore_range: bool = False  # answer every request with 200 and the whole body
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


class _Handler(BaseHTTPRequestHandler):
    behaviour: Behaviour

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep tests quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        b = self.behaviour
        rng = self.headers.get("Range")
        b.requests.append((self.path, rng))
        if self.path in b.redirects:
            self.send_response(302)
            self.send_header("Location", b.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if b.ignore_range:
            rng = None
        body = b.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
        if start >= len(body) and rng:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.end_headers()
            return
        self.send_response(206 if rng else 200)
        self.send_header("Content-Type", b.content_types.get(self.path, "application/octet-stream"))
        self.send_header("Content-Length", str(len(body) - start))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        cut = b.cut_after.pop(self.path, None)
        self.wfile.write(body[start:start + cut] if cut is not None else body[start:])
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True


class WeightsServer:
    """Context manager: a threaded HTTP server on 127.0.0.1 with a random port."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        handler = type("Handler", (_Handler,), {"behaviour": self.behaviour})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> WeightsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
