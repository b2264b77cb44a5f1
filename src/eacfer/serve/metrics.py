"""Prometheus metrics of one server (``GET /metrics``), in the app's own registry (no global state).

Example:
    >>> m = Metrics()
    >>> m.requests.labels(endpoint="/v1/predict", status="200").inc()
    >>> b"eacfer_requests_total" in m.render()[0]
    True
"""

from __future__ import annotations


class Metrics:
    """Requests by endpoint and status, latency histogram, faces found, rejected requests by reason,
    dropped WebSocket frames, requests in flight and the queue depth."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("eacfer_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=r)
        self.latency = Histogram("eacfer_request_latency_seconds", "request latency by endpoint", ["endpoint"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.faces = Counter("eacfer_faces", "faces found", registry=r)
        self.images = Counter("eacfer_images", "images analysed (HTTP and WebSocket)", registry=r)
        self.rejected = Counter("eacfer_rejected_requests", "requests refused, by reason", ["reason"], registry=r)
        self.dropped_frames = Counter("eacfer_ws_dropped_frames", "stale WebSocket frames dropped", registry=r)
        self.in_flight = Gauge("eacfer_requests_in_flight", "HTTP requests being handled", registry=r)
        self.queue_depth = Gauge("eacfer_queue_depth", "jobs waiting for a worker", registry=r)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
