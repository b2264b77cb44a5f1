"""Custom Qt widgets: the frame view, the probability bars and the emotion history plot.

Everything is painted with QPainter (PySide6-Essentials has no QtCharts), so the widgets are cheap,
look the same on every platform and render offscreen for tests and screenshots.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


def emotion_color(name: str, index: int = 0) -> tuple[int, int, int]:
    """RGB colour of the class at ``index`` (the palette of :mod:`eacfer.infer.viz`, so boxes and bars match)."""
    from eacfer.infer.viz import class_color

    return class_color(index)


def numpy_to_qimage(rgb: np.ndarray) -> QImage:
    """Wrap an H×W×3 uint8 RGB array as a QImage (deep copy, so the array may be freed)."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, int(rgb.strides[0]), QImage.Format.Format_RGB888).copy()


class FrameView(QWidget):
    """Shows the current annotated frame scaled to fit, with an optional message banner on top.

    Emits ``clicked(x, y)`` in *image* pixel coordinates when the user clicks on the picture.
    """

    clicked = Signal(float, float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._image: QImage | None = None
        self._message = ""
        self._message_level = "info"
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def set_image(self, image: QImage | None) -> None:
        self._image = image
        self.update()

    def image(self) -> QImage | None:
        return self._image

    def set_message(self, text: str, level: str = "info") -> None:
        """Show ``text`` in a banner over the picture (empty text hides it)."""
        self._message, self._message_level = text, level
        self.update()

    def message(self) -> str:
        return self._message

    def image_rect(self) -> QRectF:
        """Where the image is drawn inside the widget (aspect ratio kept, centred)."""
        if self._image is None or self._image.isNull():
            return QRectF()
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def image_to_widget(self, x: float, y: float) -> QPointF:
        r = self.image_rect()
        if r.isEmpty() or self._image is None:
            return QPointF(x, y)
        s = r.width() / self._image.width()
        return QPointF(r.x() + x * s, r.y() + y * s)

    def widget_to_image(self, x: float, y: float) -> tuple[float, float] | None:
        r = self.image_rect()
        if r.isEmpty() or self._image is None or not r.contains(QPointF(x, y)):
            return None
        s = self._image.width() / r.width()
        return (x - r.x()) * s, (y - r.y()) * s

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        pos = event.position()
        hit = self.widget_to_image(pos.x(), pos.y())
        if hit is not None and event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(*hit)
        super().mousePressEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(24, 24, 28))
        if self._image is not None and not self._image.isNull():
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(self.image_rect(), self._image)
        if self._message:
            self._paint_banner(p)
        p.end()

    def _paint_banner(self, p: QPainter) -> None:
        colors = {"info": QColor(30, 60, 110, 225), "warning": QColor(120, 80, 0, 230), "error": QColor(130, 20, 20, 235)}
        margin = 16
        width = max(100, self.width() - 2 * margin)
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF(), 10.0))
        p.setFont(font)
        flags = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextWordWrap)
        bound = p.boundingRect(QRectF(0, 0, width - 24, 10000), flags, self._message)
        box = QRectF(margin, margin, width, bound.height() + 20)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colors.get(self._message_level, colors["info"]))
        p.drawRoundedRect(box, 8, 8)
        p.setPen(QColor(255, 255, 255))
        p.drawText(box.adjusted(12, 10, -12, -10), flags, self._message)


class ProbabilityBars(QWidget):
    """Horizontal bars, one per class, for the selected face; the winning class is highlighted."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.class_names: list[str] = []
        self.probabilities: np.ndarray | None = None
        self.setMinimumHeight(7 * 18)  # 18 px rows: the panel fits a 1280×720 window with all 7 bars

    def set_probabilities(self, class_names: Sequence[str], probabilities: np.ndarray | None) -> None:
        self.class_names = list(class_names)
        self.probabilities = None if probabilities is None else np.asarray(probabilities, dtype=float)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        n = max(len(self.class_names), 1)
        row = self.height() / n
        label_w = min(90.0, self.width() * 0.35)
        value_w = 46.0
        bar_w = max(10.0, self.width() - label_w - value_w - 8)
        best = int(np.argmax(self.probabilities)) if self.probabilities is not None and len(self.probabilities) else -1
        for i, name in enumerate(self.class_names):
            y = i * row
            v = float(self.probabilities[i]) if self.probabilities is not None else 0.0
            font = QFont(self.font())
            font.setBold(i == best)
            p.setFont(font)
            p.setPen(pal.color(pal.ColorRole.WindowText))
            p.drawText(QRectF(0, y, label_w - 4, row), int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), name)
            track = QRectF(label_w, y + row * 0.2, bar_w, row * 0.6)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(128, 128, 128, 50))
            p.drawRoundedRect(track, 3, 3)
            if v > 0:
                p.setBrush(QColor(*emotion_color(name, i)))
                p.drawRoundedRect(QRectF(track.x(), track.y(), bar_w * min(max(v, 0.0), 1.0), track.height()), 3, 3)
            p.setPen(pal.color(pal.ColorRole.WindowText))
            text = f"{100 * v:.0f}%" if self.probabilities is not None else "–"
            p.drawText(QRectF(label_w + bar_w + 4, y, value_w, row), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), text)
        p.end()


class HistoryPlot(QWidget):
    """Probability of each class over the last ``window_s`` seconds for the selected track."""

    def __init__(self, window_s: float = 10.0, parent: QWidget | None = None):
        super().__init__(parent)
        self.window_s = window_s
        self.class_names: list[str] = []
        self.times = np.zeros(0)
        self.values = np.zeros((0, 0))
        self.placeholder = "no face selected"  # shown when there is nothing to plot
        self.setMinimumHeight(70)

    def set_history(self, class_names: Sequence[str], times: np.ndarray, values: np.ndarray) -> None:
        """``times``: N timestamps (s, increasing); ``values``: N×K probabilities."""
        self.class_names = list(class_names)
        self.times = np.asarray(times, dtype=float)
        self.values = np.asarray(values, dtype=float).reshape(len(self.times), -1) if len(self.times) else np.zeros((0, 0))
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        plot = QRectF(28, 6, max(10, self.width() - 34), max(10, self.height() - 24))
        p.fillRect(plot, QColor(128, 128, 128, 30))
        p.setPen(QPen(QColor(128, 128, 128, 120), 1))
        for frac in (0.0, 0.5, 1.0):
            y = plot.bottom() - frac * plot.height()
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        p.setPen(pal.color(pal.ColorRole.WindowText))
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.85))
        p.setFont(small)
        p.drawText(QRectF(0, plot.top() - 6, 26, 12), int(Qt.AlignmentFlag.AlignRight), "1")
        p.drawText(QRectF(0, plot.bottom() - 8, 26, 12), int(Qt.AlignmentFlag.AlignRight), "0")
        p.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), 14), int(Qt.AlignmentFlag.AlignLeft),
                   f"-{self.window_s:.0f} s")
        p.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), 14), int(Qt.AlignmentFlag.AlignRight), "now")
        if len(self.times) >= 1 and self.values.size:
            t_end = self.times[-1]
            xs = plot.right() - (t_end - self.times) / self.window_s * plot.width()
            for k, name in enumerate(self.class_names[: self.values.shape[1]]):
                path = QPainterPath()
                for j, (x, v) in enumerate(zip(xs, self.values[:, k], strict=True)):
                    pt = QPointF(max(x, plot.left()), plot.bottom() - float(v) * plot.height())
                    path.moveTo(pt) if j == 0 else path.lineTo(pt)
                if len(xs) == 1:
                    path.lineTo(path.currentPosition() + QPointF(1, 0))
                p.setPen(QPen(QColor(*emotion_color(name, k)), 2))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawPath(path)
        else:
            p.drawText(plot, int(Qt.AlignmentFlag.AlignCenter), self.placeholder)
        p.end()
