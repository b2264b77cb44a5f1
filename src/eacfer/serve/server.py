"""Run ``eacfer serve``: load the model into the worker pool, bind the socket, run uvicorn until SIGTERM/SIGINT.

Shutdown is uvicorn's graceful one: on SIGTERM (or Ctrl+C) it stops accepting connections, lets the
requests in flight finish (up to ``graceful_s``), then the app's lifespan closes the worker pool and the
process exits 0.

The socket is bound here (port 0 = a free port chosen by the system), and ``announce`` gets the real
address before the first request is accepted, so tests and scripts never guess a port.

Example:
    >>> serve(ServeConfig(checkpoint="model.onnx", port=0), announce=print)  # doctest: +SKIP
    serving http://127.0.0.1:43215/ ...
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable
from typing import Any

from eacfer.serve.limits import ServeConfig

log = logging.getLogger(__name__)


def require_serve_extra() -> None:
    """Raise ModuleNotFoundError with the install line when the ``serve`` extra is missing."""
    import importlib.util

    missing = [m for m in ("fastapi", "fastapi_offline", "uvicorn", "prometheus_client", "multipart", "websockets")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(f"eacfer serve needs {', '.join(missing)}: pip install 'eacfer[serve]'")


def open_pool(config: ServeConfig) -> Any:
    """The worker pool with one predictor per worker (model file: ``config.checkpoint``)."""
    from eacfer.infer.predictor import Predictor
    from eacfer.serve.engine import InferencePool

    def make() -> Any:
        return Predictor.from_checkpoint(config.checkpoint, **config.predictor_options)  # type: ignore[arg-type]

    return InferencePool(make, workers=config.workers, queue_size=config.queue_size, max_batch=config.max_batch)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def serve(config: ServeConfig, announce: Callable[[str], None] = log.info, graceful_s: float = 30.0) -> int:
    """Serve until stopped; returns 0 after a graceful shutdown."""
    import uvicorn

    from eacfer.serve.app import create_app

    config.check()
    require_serve_extra()
    pool = open_pool(config)
    try:
        app = create_app(config, pool)
        sock = bind(config.host, config.port)
    except BaseException:
        pool.close()
        raise
    host, port = sock.getsockname()[:2]
    # every connection beyond this gets 503 from uvicorn: with the bounded queue, nothing piles up unbounded
    concurrency = max(64, 4 * (config.queue_size + config.workers * config.max_batch))
    ucfg = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                          ws_max_size=config.max_body_bytes, limit_concurrency=concurrency,
                          timeout_graceful_shutdown=graceful_s, server_header=False)
    server = uvicorn.Server(ucfg)
    shown = f"[{host}]" if ":" in host else host
    announce(f"serving http://{shown}:{port}/ (API /v1/predict, docs /docs); Ctrl+C or SIGTERM stops")
    # uvicorn handles SIGTERM gracefully, then re-raises it with the handler found at start: a no-op one
    # here, so that a graceful stop ends with exit status 0 (the default handler would kill the process)
    previous = signal.signal(signal.SIGTERM, _ignore)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    return 0 if server.started else 1


def _ignore(signum: int, frame: Any) -> None:
    log.debug("signal %d after shutdown ignored", signum)
