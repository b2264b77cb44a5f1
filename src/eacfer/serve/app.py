"""The FastAPI app of ``eacfer serve``: versioned endpoints over an :class:`~eacfer.serve.engine.InferencePool`.

Endpoints (documented by the generated OpenAPI schema at ``/openapi.json``; ``/docs`` renders it with Swagger UI
from the files shipped in ``fastapi-offline``, so the documentation works offline):
``POST /v1/predict``, ``POST /v1/predict/batch``, ``GET /v1/model``, ``WS /v1/stream`` (:mod:`.stream`),
``GET /healthz``, ``GET /readyz``, ``GET /metrics`` and the page ``GET /`` (:mod:`eacfer.serve.static`).
Every error is JSON ``{"error": "...", "status": N}``.

Example:
    >>> app = create_app(ServeConfig(), pool)  # doctest: +SKIP
"""

# no `from __future__ import annotations`: FastAPI reads the endpoint annotations, some of them local names

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any, Literal

import numpy as np

from eacfer.serve.engine import Busy, InferencePool, Job
from eacfer.serve.limits import ApiError, BodyLimit, ServeConfig, decode, key_from_headers, key_ok
from eacfer.serve.metrics import Metrics
from eacfer.serve.responses import result_json

log = logging.getLogger(__name__)

#: endpoints measured by name; anything else is counted as "other" (bounded label values)
ENDPOINTS = ("/", "/static/app.js", "/v1/predict", "/v1/predict/batch", "/v1/model", "/healthz", "/readyz",
             "/metrics", "/openapi.json", "/docs")
#: where the Swagger UI script, style sheet and icon are served (fastapi-offline's bundled copies)
DOCS_STATIC = "/static/docs"
_IMAGE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}}}}}
_BATCH_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}}


def model_card(pool: InferencePool) -> dict[str, Any]:
    """``GET /v1/model``: backbone, classes in order, input size, precision, backend, SHA-256, training summary."""
    from eacfer.infer.runtime.starter import is_starter

    p = pool.predictor
    info = p.classifier.info
    card = p.model_record()
    card.update({"starter_model": is_starter(p.model_path), "eacfer_version": info.eacfer_version,
                 "face_margin": p.face_margin, "face_shift": p.face_shift, "has_cams": bool(p.classifier.has_cams),
                 "detector": p.detector_settings("image"),
                 "training": {"metrics": info.metrics, "config": info.train_config},
                 "provenance": info.provenance})
    return json.loads(json.dumps(card, default=str))  # numpy scalars, paths: plain JSON


def create_app(config: ServeConfig, pool: InferencePool) -> Any:
    """The ASGI app (FastAPI inside a body-size cap). The pool is closed when the app shuts down.

    Example:
        >>> app = create_app(ServeConfig(), InferencePool(make_predictor))  # doctest: +SKIP
    """
    from fastapi import Query, Request, WebSocket
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from fastapi_offline import FastAPIOffline
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from eacfer import __version__
    from eacfer.serve.stream import run_stream

    metrics = Metrics()
    state: dict[str, Any] = {"closing": False, "card": model_card(pool)}

    @asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        yield
        # uvicorn has stopped accepting and finished the in-flight requests: now the workers can go
        state["closing"] = True
        await run_in_threadpool(pool.close)

    # FastAPI's own /docs loads Swagger UI from a CDN, so on an offline kiosk, robot or LAN the page is blank;
    # FastAPIOffline is a FastAPI whose /docs uses the copy in its wheel. No /redoc: even bundled, ReDoc's page
    # fetches its logo from cdn.redoc.ly (seen in tests/serve/test_docs.py), and /docs already shows everything
    app = FastAPIOffline(title="eacfer", version=__version__, lifespan=lifespan, static_url=DOCS_STATIC,
                         redoc_url=None,
                         description="Facial emotion recognition: faces, boxes, emotions and probabilities of "
                         "images and live streams. Errors are JSON {\"error\": ..., \"status\": ...}.")
    app.state.metrics, app.state.pool, app.state.config = metrics, pool, config

    def error(e: ApiError) -> JSONResponse:
        metrics.rejected.labels(reason=e.reason).inc()
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, e: ApiError) -> JSONResponse:
        return error(e)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, e: RequestValidationError) -> JSONResponse:
        msgs = "; ".join(f"{'.'.join(str(x) for x in err.get('loc', ()))}: {err.get('msg')}" for err in e.errors())
        return error(ApiError(422, f"invalid request: {msgs}", "invalid_parameters"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, e: StarletteHTTPException) -> JSONResponse:
        return error(ApiError(e.status_code, str(e.detail), str(e.status_code)))

    @app.middleware("http")
    async def _measure(request: Request, call_next: Any) -> Any:
        path = request.url.path
        endpoint = path if path in ENDPOINTS else "other"
        t0 = time.perf_counter()
        metrics.in_flight.inc()
        try:
            if (path.startswith("/v1/") or path == "/metrics") and \
                    not key_ok(key_from_headers(request.headers), config.api_key):
                response = error(ApiError(401, "missing or wrong API key (X-API-Key or Authorization: Bearer)",
                                          "api_key", {"WWW-Authenticate": "Bearer"}))
            else:
                response = await call_next(request)
        finally:
            metrics.in_flight.dec()
        metrics.requests.labels(endpoint=endpoint, status=str(response.status_code)).inc()
        metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - t0)
        return response

    async def analyse(jobs: list[Job]) -> list[Any]:
        futures = []
        try:
            for job in jobs:
                futures.append(pool.submit(job))
        except Busy as e:
            for f in futures:
                f.cancel()
            raise ApiError(503, f"server busy: {e}; retry later", "queue_full",
                           {"Retry-After": str(config.retry_after_s)}) from None
        finally:
            metrics.queue_depth.set(pool.depth())
        try:
            results = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        except ValueError as e:  # e.g. a detector mode the detector does not have
            raise ApiError(400, str(e), "bad_option") from None
        metrics.images.inc(len(results))
        metrics.faces.inc(sum(len(r.faces) for r in results))
        return list(results)

    def check_cam(cam: bool) -> None:
        if cam and not pool.predictor.classifier.has_cams:
            raise ApiError(400, "this model cannot produce attention maps (an .onnx exported without --with-cams)",
                           "bad_option")

    async def images_of(request: Request, most: int) -> list[tuple[str, bytes]]:
        """``(name, bytes)`` of the uploaded images: multipart parts that are files, or the raw body."""
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            try:
                form = await request.form(max_files=most + 1, max_fields=most + 8)
            except Exception as e:  # noqa: BLE001 - malformed multipart, too many parts
                raise ApiError(400 if "Too many" not in str(e) else 413, f"cannot read the upload: {e}",
                               "bad_multipart") from None
            files = [(f"{key} ({getattr(v, 'filename', '') or 'upload'})", await v.read())
                     for key, v in form.multi_items() if hasattr(v, "read")]
            await form.close()
        elif most > 1:
            raise ApiError(415, "send the images as multipart/form-data files", "unsupported_body")
        else:
            files = [("body", await request.body())]
        if not files:
            raise ApiError(400, "no image in the request (send the image as the body or as multipart files)",
                           "no_image")
        if len(files) > most:
            raise ApiError(413, f"too many images: {len(files)} > {most} per request", "too_many_images")
        return files

    async def decoded(files: list[tuple[str, bytes]]) -> list[np.ndarray]:
        return [await run_in_threadpool(decode, data, name, config.max_pixels) for name, data in files]

    Cam = Annotated[bool, Query(description="attention map of each face over the image (grayscale PNG, base64)")]
    MaxFaces = Annotated[int, Query(ge=1, le=config.max_faces, description="most faces per image")]
    Detector = Annotated[Literal["auto", "both", "short", "full"],
                         Query(description="MediaPipe models: auto (the server's setting), both, short or full")]

    @app.post("/v1/predict", openapi_extra=_IMAGE_BODY, summary="faces and emotions of one image")
    async def predict(request: Request, cam: Cam = False, max_faces: MaxFaces = config.max_faces,
                      detector: Detector = "auto") -> dict[str, Any]:
        """One image (raw body or a multipart file) → per face: box, detector score, emotion, probabilities."""
        check_cam(cam)
        (rgb,) = await decoded(await images_of(request, 1))
        (r,) = await analyse([Job(rgb, cam, max_faces, None if detector == "auto" else detector)])
        return result_json(r, cam)

    @app.post("/v1/predict/batch", openapi_extra=_BATCH_BODY, summary="faces and emotions of several images")
    async def predict_batch(request: Request, cam: Cam = False, max_faces: MaxFaces = config.max_faces,
                            detector: Detector = "auto") -> dict[str, Any]:
        """Several images as multipart files → one result per image, in order."""
        check_cam(cam)
        files = await images_of(request, config.max_images)
        rgbs = await decoded(files)
        results = await analyse([Job(rgb, cam, max_faces, None if detector == "auto" else detector) for rgb in rgbs])
        return {"results": [result_json(r, cam, name=name) for (name, _), r in zip(files, results, strict=True)]}

    @app.get("/v1/model", summary="the model card")
    async def model() -> dict[str, Any]:
        """Backbone, classes in order, input size, precision, backend, SHA-256 and training summary."""
        return state["card"]

    @app.get("/healthz", summary="the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="the model is loaded and the server takes requests")
    async def readyz() -> Any:
        if state["closing"]:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        return {"status": "ready", "model": state["card"]["name"], "workers": len(pool.predictors)}

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        metrics.queue_depth.set(pool.depth())
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        await run_stream(ws, pool, config, metrics)

    static = resources.files("eacfer.serve") / "static"

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

    @app.get("/static/app.js", include_in_schema=False)
    async def script() -> Response:
        return Response((static / "app.js").read_bytes(), media_type="text/javascript")

    if config.cors:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors), allow_methods=["GET", "POST"],
                           allow_headers=["content-type", "x-api-key", "authorization"])
    return BodyLimit(app, config.max_body_bytes,
                     on_reject=lambda: metrics.rejected.labels(reason="body_too_large").inc())

