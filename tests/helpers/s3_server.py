"""A real S3-compatible server for tests: moto's server app on a free 127.0.0.1 port.

It runs as a subprocess of the test (this file is its script) and stops with it. Requests are
served one at a time (``threaded=False``): moto checks ``If-None-Match: *`` and then writes, in
two steps, so concurrent requests to a threaded moto could both pass the check. A real store
(AWS S3, MinIO, R2, Ceph) makes that check and write one atomic step; serving requests one at a
time gives moto the same guarantee, so the first-commit-wins race tests the client protocol,
not a moto shortcut.
"""

from __future__ import annotations

import logging
import select
import subprocess
import sys
import tempfile
from types import TracebackType
from typing import Any

START_TIMEOUT = 30.0
IGNORE_FLAG = "--ignore-conditional-writes"


class S3Server:
    """``with S3Server() as server:`` gives ``server.url`` (http://127.0.0.1:PORT).

    ``S3Server(conditional_writes=False)`` drops the If-None-Match header before moto sees it,
    like a store without conditional writes (which answers every such put with success).
    """

    def __init__(self, *, conditional_writes: bool = True) -> None:
        self.conditional_writes = conditional_writes
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._log = tempfile.TemporaryFile(mode="w+")

    def __enter__(self) -> S3Server:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, *([] if self.conditional_writes else [IGNORE_FLAG])],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], START_TIMEOUT)
        line = self._proc.stdout.readline() if ready else ""  # the port, once it listens
        if not line.strip().isdigit():
            self.stop()
            self._log.seek(0)
            raise RuntimeError(f"the moto S3 server did not start:\n{self._log.read()[-3000:]}")
        self.url = f"http://127.0.0.1:{int(line)}"
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Terminate the server and wait for it; kill it if it lingers."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()
        self._proc = None
        self._log.close()


def main() -> None:
    """Serve moto's S3 on a free loopback port; print the port on stdout once listening."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    moto = DomainDispatcherApplication(create_backend_app)

    def without_conditions(environ: dict[str, Any], start_response: Any) -> Any:
        environ.pop("HTTP_IF_NONE_MATCH", None)
        return moto(environ, start_response)

    app = without_conditions if IGNORE_FLAG in sys.argv[1:] else moto
    server = make_server("127.0.0.1", 0, app, threaded=False)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
