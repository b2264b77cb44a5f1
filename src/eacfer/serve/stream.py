"""``WS /v1/stream``: JPEG (or PNG) frames in as binary messages, one JSON result per analysed frame out.

Each connection has its own :class:`eacfer.infer.stream.live.LiveSession` (tracking and label carry-over as
``eacfer video`` on a camera). At most **one** frame of a connection is being analysed and at most **one**
waits: a frame that arrives while another waits replaces it, and the replaced one is dropped and counted
(``dropped`` in every reply), so a client that sends faster than the server classifies never builds a
backlog. A frame that finds the shared queue full is dropped too. Frames beyond ``max_ws_fps`` per second
(over any one-second window) close the connection with a JSON error and code 1008.

Replies: ``{"frame": n, "received": n, "dropped": n, "image_size": [w, h], "faces": [...], "timings_ms": {}}``
(``frame`` counts the client's frames from 1; a frame that cannot be decoded gets ``{"frame": n, "error": ...}``).
The API key, when the server has one, comes as ``?api_key=`` (browsers cannot set WebSocket headers) or
``X-API-Key``.

Example:
    >>> await run_stream(ws, pool, config, metrics)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from eacfer.serve.engine import Busy, InferencePool, Job
from eacfer.serve.limits import ApiError, ServeConfig, decode, key_from_headers, key_ok

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008


async def run_stream(ws: Any, pool: InferencePool, config: ServeConfig, metrics: Any) -> None:
    """Serve one WebSocket connection until the client leaves or breaks a limit."""
    from starlette.concurrency import run_in_threadpool
    from starlette.websockets import WebSocketDisconnect

    from eacfer.infer.stream.live import LiveSession
    from eacfer.serve.responses import result_json

    given = ws.query_params.get("api_key") or key_from_headers(ws.headers)
    if not key_ok(given, config.api_key):
        metrics.rejected.labels(reason="api_key").inc()
        await ws.close(code=POLICY_VIOLATION, reason="missing or wrong API key")
        return
    await ws.accept()
    session = await run_in_threadpool(LiveSession, pool.predictor, config.classify_every)
    counts = {"received": 0, "dropped": 0}
    waiting: list[tuple[int, bytes]] = []  # at most one frame
    arrived = asyncio.Event()
    done = asyncio.Event()
    recent: collections.deque[float] = collections.deque()
    current: list[Any] = []  # the concurrent future of the frame being analysed, if any

    async def send(msg: dict[str, Any]) -> None:
        try:
            await ws.send_json(msg)
        except Exception:  # noqa: BLE001 - the client left meanwhile
            done.set()

    async def receive() -> None:
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                data = msg.get("bytes")
                if data is None:
                    await send({"error": "send frames as binary messages (JPEG or PNG)", "status": 400})
                    continue
                now = time.monotonic()
                recent.append(now)
                while recent and recent[0] <= now - 1.0:
                    recent.popleft()
                if len(recent) > config.max_ws_fps:
                    metrics.rejected.labels(reason="ws_too_many_frames").inc()
                    await send({"error": f"too many frames: more than {config.max_ws_fps:g} per second",
                                "status": 429})
                    await ws.close(code=POLICY_VIOLATION, reason="too many frames per second")
                    return
                counts["received"] += 1
                if waiting:  # the older waiting frame is stale now
                    waiting.clear()
                    counts["dropped"] += 1
                    metrics.dropped_frames.inc()
                waiting.append((counts["received"], data))
                arrived.set()
        except WebSocketDisconnect:
            return
        finally:
            done.set()
            arrived.set()

    async def work() -> None:
        while not done.is_set():
            await arrived.wait()
            arrived.clear()
            if not waiting or done.is_set():
                continue
            index, data = waiting.pop()
            try:
                rgb = await run_in_threadpool(decode, data, f"frame {index}", config.max_pixels)
            except ApiError as e:
                await send({"frame": index, **e.body()})
                continue
            try:
                fut = pool.submit(Job(rgb, max_faces=config.max_faces, session=session))
            except Busy:
                counts["dropped"] += 1
                metrics.dropped_frames.inc()
                continue
            current[:] = [fut]
            try:
                r = await asyncio.wrap_future(fut)
            except Exception as e:  # noqa: BLE001 - one bad frame does not end the stream
                await send({"frame": index, "error": f"frame {index}: {type(e).__name__}: {e}", "status": 500})
                continue
            metrics.images.inc()
            metrics.faces.inc(len(r.faces))
            await send(result_json(r, False, frame=index, received=counts["received"], dropped=counts["dropped"]))
            if waiting:
                arrived.set()

    receiver = asyncio.ensure_future(receive())
    worker = asyncio.ensure_future(work())
    try:
        await receiver
        worker.cancel()
        try:
            await worker
        except asyncio.CancelledError:
            pass
    finally:
        for fut in current:  # a worker thread may still use the session: let that frame finish first
            if not fut.cancel():
                await run_in_threadpool(_wait, fut)
        await run_in_threadpool(session.close)


def _wait(fut: Any) -> None:
    try:
        fut.result()
    except BaseException:  # noqa: BLE001 - its result no longer matters, only that it ended
        pass
