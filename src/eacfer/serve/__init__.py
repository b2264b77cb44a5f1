"""``eacfer serve``: an HTTP API, a WebSocket stream and a live browser page over the Python API.

The server holds no recognition logic: requests are decoded and checked here (:mod:`.limits`), then
analysed by :class:`eacfer.infer.predictor.Predictor` (photos) and :class:`eacfer.infer.stream.live.LiveSession`
(WebSocket streams) in a bounded worker pool (:mod:`.engine`). :mod:`.app` builds the FastAPI app,
:mod:`.stream` the WebSocket, :mod:`.metrics` the Prometheus metrics and :mod:`.server` runs uvicorn.

Nothing is imported here (no import-time side effects; FastAPI is an optional extra: ``eacfer[serve]``).

Example:
    >>> from eacfer.serve.server import serve  # doctest: +SKIP
    >>> serve(ServeConfig(checkpoint="model.onnx"))  # doctest: +SKIP
"""
