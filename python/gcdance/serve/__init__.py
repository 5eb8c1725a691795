"""``gcdance serve``: the HTTP API and web page, an ASGI app (FastAPI) run by uvicorn.

- :func:`create_app` (``gcdance.serve.app``): the app, for uvicorn or any ASGI server.
- :class:`ServeSettings` (``gcdance.serve.settings``): its limits, with the stated defaults.
- :func:`run`: what ``gcdance serve`` does: load the model, then serve until SIGINT/SIGTERM.

The server dependencies are an extra (``pip install 'gcdance[serve]'``); importing this package
works without them and :func:`require_dependencies` says what to install. See docs/serve.md.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from typing import TYPE_CHECKING, Any

from ..errors import GCDanceError
from .settings import ServeSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["SERVE_REQUIREMENTS", "ServeSettings", "create_app", "require_dependencies", "run"]

SERVE_REQUIREMENTS = {"fastapi": "fastapi", "uvicorn": "uvicorn",
                      "python_multipart": "python-multipart"}
"""Import name -> PyPI name of what the server needs (the ``serve`` extra)."""


def missing_dependencies() -> list[str]:
    """PyPI names of the server's dependencies that are not installed."""
    return [pypi for module, pypi in SERVE_REQUIREMENTS.items()
            if importlib.util.find_spec(module) is None]


def require_dependencies() -> None:
    """Raise :class:`GCDanceError` naming the install command when a dependency is missing."""
    missing = missing_dependencies()
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise GCDanceError(
            f"gcdance serve needs {', '.join(missing)}, which {verb} not installed: "
            f"pip install 'gcdance[serve]' (or pip install {' '.join(missing)})")


def create_app(settings: ServeSettings | None = None, *, generator: Any | None = None
               ) -> FastAPI:
    """The ASGI app (see :func:`gcdance.serve.app.create_app`)."""
    require_dependencies()
    from .app import create_app as _create

    return _create(settings, generator=generator)


def run(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, *,
        log_level: str = "info") -> None:
    """Load the model, then serve with uvicorn until SIGINT or SIGTERM.

    On the first signal new requests get 503 and queued generations are dropped (their
    clients are told to retry); running ones get ``settings.shutdown_grace_s`` seconds to
    finish, then they are cancelled. The store is left holding only finished dances.
    """
    require_dependencies()
    import uvicorn

    from ..engine.generator import Generator

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _check_address(host, port)  # before the model loads: a taken port is found in a moment
    # Loaded here, before the socket opens, so a bad bundle is an error message and exit 2,
    # not a failed start-up inside uvicorn.
    generator = Generator(settings.bundle, provider=settings.provider,
                          threads=settings.engine_threads())
    app = create_app(settings, generator=generator)
    server_state = app.state.gcdance

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            server_state.begin_shutdown()  # at once: 503 to newcomers, drop the queued
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
                            # A flood of connections (each may spool an upload) is cut off
                            # long before file descriptors or disk run out; the work itself
                            # is bounded by workers + queue.
                            limit_concurrency=max(64, 8 * settings.capacity),
                            server_header=False)
    server = _Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        # uvicorn re-raises the SIGINT it handled, after its clean shutdown: a normal stop.
        pass
    except SystemExit as exc:  # uvicorn exits when it cannot start (logged above)
        if exc.code not in (0, None):
            raise GCDanceError(f"the server could not start on {host}:{port} (see the log "
                               "above)") from None


def _check_address(host: str, port: int) -> None:
    """Fail at once when ``host:port`` cannot be listened on (in use, or not this machine's),
    rather than after loading and warming up the model."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise GCDanceError(f"cannot listen on {host!r}: {exc.strerror}; give an address of "
                           "this machine (--host 127.0.0.1, or 0.0.0.0 for all)") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            raise GCDanceError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another "
                               "port with --port (or stop what uses it)") from None
