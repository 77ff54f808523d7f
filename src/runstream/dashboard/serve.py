"""``runstream dashboard --serve``: the page on a local port, for a browser on this machine.

The page is self-contained, so serving it is only about convenience (a URL to share on the
host, no file:// paths). Only the page itself is served, on the loopback interface: nothing
else in its folder is exposed.
"""

from __future__ import annotations

import http.server
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runstream.errors import SetupError

log = logging.getLogger(__name__)


def serve(page: Path, port: int, announce: Callable[[str], None]) -> None:
    """Serve ``page`` at ``/`` on 127.0.0.1:``port`` until interrupted."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in ("/", "/index.html"):
                self.send_error(404, "only / is served")
                return
            body = page.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("dashboard: " + format, *args)

    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise SetupError(
            f"cannot serve on 127.0.0.1:{port} ({exc.strerror}); pick another with --serve PORT"
        ) from None
    with server:
        announce(f"http://127.0.0.1:{server.server_address[1]}/")
        server.serve_forever()
