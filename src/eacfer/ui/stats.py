"""Small rolling statistics for the side panel: frame rate, stage times and per-track emotion history."""

from __future__ import annotations

import time
from collections import deque

import numpy as np


class RateMeter:
    """Events per second over the last ``window_s`` seconds.

    Example:
        >>> m = RateMeter(window_s=1.0)
        >>> for t in (0.0, 0.1, 0.2, 0.3): m.tick(t)
        >>> round(m.rate(0.3), 1)
        10.0
    """

    def __init__(self, window_s: float = 2.0):
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


class LatencyWindow:
    """Median and 90th percentile of the last ``size`` capture-to-result latencies (ms).

    Example:
        >>> w = LatencyWindow(size=4)
        >>> for ms in (10, 20, 30, 40, 50): w.add(ms)
        >>> w.percentiles()
        (35.0, 47.0)
    """

    def __init__(self, size: int = 120):
        self._values: deque[float] = deque(maxlen=size)

    def add(self, ms: float) -> None:
        self._values.append(float(ms))

    def percentiles(self) -> tuple[float, float] | None:
        """``(median, p90)`` or ``None`` before the first value."""
        if not self._values:
            return None
        p50, p90 = np.percentile(np.fromiter(self._values, float), [50, 90])
        return float(p50), float(p90)

    def clear(self) -> None:
        self._values.clear()


class StageTimes:
    """Exponential moving average of per-stage milliseconds (steady numbers on screen)."""

    def __init__(self, alpha: float = 0.2):
        self.alpha = alpha
        self.values: dict[str, float] = {}

    def update(self, timings: dict[str, float]) -> None:
        for k, v in timings.items():
            old = self.values.get(k)
            self.values[k] = float(v) if old is None else old + self.alpha * (float(v) - old)

    def get(self, key: str) -> float | None:
        return self.values.get(key)

    def clear(self) -> None:
        self.values.clear()


class TrackHistory:
    """Probabilities of each track over the last ``window_s`` seconds (by the source's clock), smoothed
    and (optionally) raw, so the history shows the same kind of value as the face panel.

    Example:
        >>> h = TrackHistory(window_s=5)
        >>> h.add(1, 0.0, [0.2, 0.8]); h.add(1, 1.0, [0.6, 0.4])
        >>> times, values = h.series(1); times.tolist(), values.shape
        ([0.0, 1.0], (2, 2))
    """

    def __init__(self, window_s: float = 10.0, max_tracks: int = 64):
        self.window_s = window_s
        self.max_tracks = max_tracks
        self._data: dict[int, deque[tuple[float, np.ndarray, np.ndarray]]] = {}

    def add(self, track: int, t: float, probs: np.ndarray | list[float],
            raw: np.ndarray | list[float] | None = None) -> None:
        q = self._data.setdefault(track, deque())
        if q and t < q[-1][0]:
            q.clear()  # the clock went backwards (seek, loop): the old curve no longer connects
        p = np.asarray(probs, dtype=np.float32)
        q.append((float(t), p, p if raw is None else np.asarray(raw, dtype=np.float32)))
        while q and t - q[0][0] > self.window_s:
            q.popleft()
        if len(self._data) > self.max_tracks:
            # forget the tracks seen longest ago so memory stays bounded on long sessions
            oldest = min(self._data, key=lambda k: self._data[k][-1][0] if self._data[k] else -1.0)
            del self._data[oldest]

    def series(self, track: int, raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(times, N×K values)`` of a track: the smoothed probabilities, or the raw ones with ``raw``."""
        q = self._data.get(track)
        if not q:
            return np.zeros(0), np.zeros((0, 0))
        return np.array([e[0] for e in q]), np.stack([e[2] if raw else e[1] for e in q])

    def clear(self) -> None:
        self._data.clear()
