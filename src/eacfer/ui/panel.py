"""The side panel: model facts, live performance figures, the selected face's probabilities and history."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from eacfer.ui.session import ModelSummary
from eacfer.ui.widgets import HistoryPlot, ProbabilityBars

NO_MODEL_TEXT = "No model loaded."


class SidePanel(QWidget):
    """Read-only displays; the window pushes values into it."""

    def __init__(self, history_s: float, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumWidth(300)
        self.setMaximumWidth(380)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)

        box = QGroupBox("Model")
        v = QVBoxLayout(box)
        self.model_label = QLabel(NO_MODEL_TEXT)
        self.model_label.setWordWrap(True)
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_model_button = QPushButton("Open model… (Ctrl+M)")
        v.addWidget(self.model_label)
        v.addWidget(self.open_model_button)
        layout.addWidget(box)

        box = QGroupBox("Performance")
        v = QVBoxLayout(box)
        self.perf_label = QLabel("–")
        self.perf_label.setWordWrap(True)
        v.addWidget(self.perf_label)
        layout.addWidget(box)

        box = QGroupBox("Selected face")
        v = QVBoxLayout(box)
        self.face_label = QLabel("No face")
        self.face_label.setWordWrap(True)
        self.bars = ProbabilityBars()
        v.addWidget(self.face_label)
        v.addWidget(self.bars)
        layout.addWidget(box)

        self.history_s = history_s
        box = QGroupBox(f"Emotion history (last {history_s:.0f} s)")
        self.history_box = box
        v = QVBoxLayout(box)
        self.history = HistoryPlot(window_s=history_s)
        v.addWidget(self.history)
        layout.addWidget(box)

        self.hint_label = QLabel("Click a face to select it · Space S R C T ← →")
        self.hint_label.setToolTip("Space pause · S snapshot · R record · C attention map · T smoothed/raw labels · "
                                   "←/→ previous/next photo (or 5 s in a video)")
        self.hint_label.setStyleSheet("color: gray")
        layout.addWidget(self.hint_label)
        layout.addStretch(1)

    def set_model(self, summary: ModelSummary | None, loading: str = "") -> None:
        if loading:
            self.model_label.setText(f"Loading {loading} …")
        elif summary is None:
            self.model_label.setText(NO_MODEL_TEXT)
        else:
            self.model_label.setText(summary.text())

    def set_performance(self, fps: float, stages: dict[str, float | None], dropped: int, faces: int,
                        recording: str = "", latency: tuple[float, float] | None = None) -> None:
        def ms(key: str) -> str:
            v = stages.get(key)
            return "–" if v is None else f"{v:.1f} ms"

        lat = "–" if latency is None else f"median {latency[0]:.0f} ms · p90 {latency[1]:.0f} ms"
        text = (f"<b>{fps:.1f} FPS</b> · {faces} face(s)<br>"
                f"detect {ms('detect')} · classify {ms('classify')}<br>draw {ms('draw')} · "
                f"stale frames dropped: {dropped}<br>latency (capture → labels): {lat}")
        if recording:
            text += f"<br><span style='color:#d22'>● {recording}</span>"
        self.perf_label.setText(text)

    def set_face(self, title: str, class_names: Sequence[str], probabilities: np.ndarray | None) -> None:
        self.face_label.setText(title)
        self.bars.set_probabilities(class_names, probabilities)

    def set_history(self, class_names: Sequence[str], times: np.ndarray, values: np.ndarray, face: str = "",
                    placeholder: str = "no face selected") -> None:
        """Show ``values`` over ``times``; ``face`` names the face they belong to (as the face panel does)."""
        of = f" of {face}" if face else ""
        self.history_box.setTitle(f"Emotion history{of} (last {self.history_s:.0f} s)")
        self.history.placeholder = placeholder
        self.history.set_history(class_names, times, values)
