"""Start and stop a real ``eacfer serve`` (uvicorn, 127.0.0.1, a port the server binds itself) for tests.

The server runs the bundled starter model (64 px mini-Xception), so it is ready in seconds. Its port is
read from the line it prints once the socket is bound (``--port 0``): no port is chosen in advance.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

FACES = Path(__file__).parent / "fixtures" / "faces"
FACE = FACES / "astronaut.jpg"
_LINE = re.compile(r"serving http://127\.0\.0\.1:(\d+)/")


class Server:
    """A running ``eacfer serve`` subprocess; ``url`` is its base address."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, timeout_s: float = 120.0) -> None:
        cmd = [sys.executable, "-m", "eacfer", "serve", "--host", "127.0.0.1", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self.port: int | None = None
        found = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                self.lines.append(line.rstrip())
                m = _LINE.search(line)
                if m:
                    self.port = int(m.group(1))
                    found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(timeout_s) or self.port is None:
            self.stop()
            raise RuntimeError("eacfer serve did not start:\n" + "\n".join(self.lines))
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then wait; returns the exit status (kills only this process, after the timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)


def chromium() -> str:
    """Debian's headless-capable ``chromium`` (Playwright drives it through ``executable_path``)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is needed for this test: `make install` installs it (apt-get install chromium)"
    return path


def jpeg_bytes(rgb: np.ndarray, quality: int = 92) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def face_rgb() -> np.ndarray:
    from eacfer.data.imageio import load_image

    return load_image(FACE)


def two_faces_rgb() -> np.ndarray:
    """The astronaut and her mirror image side by side (two faces, 1024×512)."""
    a = face_rgb()
    return np.ascontiguousarray(np.concatenate([a, a[:, ::-1]], axis=1))


def wait_for(predicate, timeout_s: float = 30.0, every_s: float = 0.05) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every_s)
    return False
