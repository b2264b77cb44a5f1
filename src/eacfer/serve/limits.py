"""What ``eacfer serve`` accepts: its settings, the request-body cap, the API key check and image decoding,
each refusal a clear 4xx JSON error (``{"error": "...", "status": N}``).

* Body size: ``Content-Length`` above the cap is refused before reading; any body is counted while it
  arrives and refused as soon as it passes the cap (:class:`BodyLimit`, an ASGI middleware, so multipart
  parsing never sees more).
* Pixel count: checked from the image header before decoding (decompression bombs), by the same decoder as
  ``eacfer predict`` (:func:`eacfer.data.imageio.decode_image_bytes`), so the numbers are the same too.
* Images arrive as bytes only: no request ever names a file on the server.
* The API key is compared in constant time (:func:`hmac.compare_digest`).

Example:
    >>> ApiError(413, "too large").body()
    {'error': 'too large', 'status': 413}
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MB = 1024 * 1024


@dataclass
class ServeConfig:
    """Settings of one server (the ``eacfer serve`` options).

    Example:
        >>> ServeConfig(checkpoint="model.onnx").host
        '127.0.0.1'
    """

    checkpoint: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    queue_size: int = 16
    max_batch: int = 8
    max_body_bytes: int = 10 * MB
    max_pixels: int = 40_000_000
    max_images: int = 16
    max_faces: int = 32
    max_ws_fps: float = 30.0
    api_key: str | None = None
    cors: list[str] = field(default_factory=list)
    classify_every: int | str = "auto"
    retry_after_s: int = 1
    predictor_options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Refuse nonsensical numbers (one line each)."""
        options = {"workers": "--workers", "queue_size": "--queue", "max_batch": "--max-batch",
                   "max_body_bytes": "--max-body-mb", "max_pixels": "--max-pixels", "max_images": "--max-images",
                   "max_faces": "--max-faces"}
        for name, option in options.items():
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{option} must be >= 1, got {getattr(self, name)}")
        if not self.max_ws_fps > 0:
            raise ValueError(f"max-ws-fps must be > 0, got {self.max_ws_fps}")
        if self.api_key is not None and not self.api_key:
            raise ValueError("the API key is empty")


class ApiError(Exception):
    """A refusal with its HTTP status; ``headers`` e.g. ``Retry-After``."""

    def __init__(self, status: int, message: str, reason: str = "", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message = int(status), message
        self.reason = reason or str(status)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status}


def key_ok(given: str | None, expected: str | None) -> bool:
    """True when no key is configured or ``given`` equals it (constant time).

    Example:
        >>> key_ok(None, None), key_ok("a", "a"), key_ok("b", "a"), key_ok(None, "a")
        (True, True, False, False)
    """
    if expected is None:
        return True
    return hmac.compare_digest((given or "").encode(), expected.encode())


def key_from_headers(headers: Any) -> str | None:
    """The key of ``X-API-Key`` or ``Authorization: Bearer KEY``."""
    key = headers.get("x-api-key")
    if key:
        return str(key)
    auth = str(headers.get("authorization") or "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def decode(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """Bytes of an uploaded image → H×W×3 uint8 RGB, or :class:`ApiError` (400 broken, 413 too many pixels,
    415 not a supported image).

    Example:
        >>> decode(b"hello", "upload", 10**6)
        Traceback (most recent call last):
        ...
        eacfer.serve.limits.ApiError: upload: not an image (looks like a text file)
    """
    from eacfer.data.imageio import ImageLoadError, decode_image_bytes

    if not data:
        raise ApiError(400, f"{name}: empty image (0 bytes)", "empty")
    try:
        return decode_image_bytes(data, name=name, max_pixels=max_pixels)
    except ImageLoadError as e:
        if "pixels" in e.reason:
            raise ApiError(413, str(e), "too_many_pixels") from None
        if e.reason.startswith("not an image") and "unreadable" not in e.reason:
            raise ApiError(415, str(e), "unsupported_image") from None
        raise ApiError(400, str(e), "broken_image") from None


class BodyLimit:
    """ASGI middleware: refuse HTTP bodies over ``limit`` bytes with 413 (declared or counted).

    Example:
        >>> app = BodyLimit(inner_app, limit=10 * MB, on_reject=print)  # doctest: +SKIP
    """

    def __init__(self, app: Any, limit: int, on_reject: Any = None) -> None:
        self.app, self.limit, self.on_reject = app, int(limit), on_reject

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(receive, send, 0, more=True)
            return
        # the body is read here, counted, and replayed to the app: a body over the cap is refused as soon as
        # it passes it, before any parser sees it (an exception raised inside the app would become a 500)
        chunks: list[bytes] = []
        seen = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # the client went away
            chunk = msg.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await self._refuse(receive, send, seen, more=msg.get("more_body", False))
                return
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)

    async def _refuse(self, receive: Any, send: Any, seen: int, more: bool) -> None:
        """Answer 413. The rest of a moderately larger body is read and discarded first: closing a socket with
        unread data resets the connection, and the client would see a reset instead of the answer."""
        import json

        while more and seen <= 4 * self.limit:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            seen += len(msg.get("body", b""))
            more = msg.get("more_body", False)

        if self.on_reject is not None:
            self.on_reject()
        err = ApiError(413, f"request body larger than {self.limit:,} bytes ({self.limit / MB:g} MB)")
        body = json.dumps(err.body()).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
