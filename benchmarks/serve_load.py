"""Closed-loop load test of ``eacfer serve`` on loopback: requests/s, p50/p99 latency, 503 share, errors and
server memory at 1, 4, 16 and 64 concurrent clients, with and without request batching; then the server's
memory over N requests (flat or growing).

Each client (an asyncio task with one httpx connection) posts the image, waits for the answer, and posts
again, for ``--seconds`` per level (bounded in time and in count). The server is started here, on 127.0.0.1
with a port it binds itself, and stopped with SIGTERM; this script never sends to any other address.

    .venv/bin/python benchmarks/serve_load.py                                   # starter model, both modes
    .venv/bin/python benchmarks/serve_load.py --levels 1 4 --seconds 5 --memory-requests 2000
    .venv/bin/python benchmarks/serve_load.py --checkpoint model.onnx --image photo.jpg

Prints a Markdown table (for benchmarks/RESULTS.md) with the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only, never anything else


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def start_server(args: list[str]) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "eacfer", "serve", "--host", HOST, "--port", "0", "-q", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    found: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            m = re.search(r"serving http://127\.0\.0\.1:(\d+)/", line)
            if m:
                found.append(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(180) or not found:
        proc.kill()
        raise RuntimeError("the server did not start")
    return proc, f"http://{HOST}:{found[0]}"


def stop_server(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


async def closed_loop(url: str, body: bytes, clients: int, seconds: float, max_requests: int) -> dict:
    """``clients`` tasks posting ``body`` back to back for ``seconds`` (or ``max_requests`` in all)."""
    import httpx

    latencies: list[float] = []
    counts = {"ok": 0, "busy": 0, "errors": 0}
    end = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as client:

        async def one() -> None:
            while time.perf_counter() < end and sum(counts.values()) < max_requests:
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/predict", content=body, headers={"content-type": "image/jpeg"})
                    key = "ok" if r.status_code == 200 else "busy" if r.status_code == 503 else "errors"
                except httpx.HTTPError:
                    key = "errors"
                counts[key] += 1
                if key == "ok":
                    latencies.append((time.perf_counter() - t0) * 1000.0)
                elif key == "busy":
                    await asyncio.sleep(0.05)  # a client that honours Retry-After would wait longer

        t_start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        wall = time.perf_counter() - t_start
    latencies.sort()
    n = sum(counts.values())

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] if latencies else float("nan")

    return {"clients": clients, "requests": n, "ok_per_s": counts["ok"] / wall, "p50": pct(50), "p99": pct(99),
            "busy_share": counts["busy"] / max(1, n), "errors": counts["errors"]}


def image_bytes(path: str | None, side: int) -> bytes:
    from PIL import Image

    src = Path(path) if path else ROOT / "src" / "eacfer" / "assets" / "astronaut.jpg"
    im = Image.open(src).convert("RGB")
    if side:
        im = im.resize((side, side))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="model file (default: the bundled starter model)")
    ap.add_argument("--image", help="image to post (default: the bundled portrait)")
    ap.add_argument("--side", type=int, default=320, help="resize the image to SIDE×SIDE first (0 = as is)")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--seconds", type=float, default=8.0, help="per level (default 8)")
    ap.add_argument("--batch", nargs="+", type=int, default=[8, 1],
                    help="--max-batch values to compare (default 8 and 1 = no batching)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per cell; the median is shown")
    ap.add_argument("--memory-requests", type=int, default=10_000, help="requests of the memory check (0 = none)")
    args = ap.parse_args()
    body = image_bytes(args.image, args.side)
    model = ["--checkpoint", args.checkpoint] if args.checkpoint else []
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; image {len(body)} bytes")
    print("\n| --max-batch | clients | requests | ok/s (each round) | p50 ms | p99 ms | 503 share | errors | server RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    # all servers run at once and the modes alternate level by level, round by round, so that a change of the
    # machine's load (shared machine) hits both alike; the table gives the median round of each cell
    servers = {b: start_server([*model, "--max-batch", str(b), "--workers", str(args.workers)]) for b in args.batch}
    try:
        for _, url in servers.values():
            asyncio.run(closed_loop(url, body, 2, 2.0, 50))  # warm-up
        cells: dict[tuple[int, int], list[dict]] = {}
        for _ in range(args.rounds):
            for clients in args.levels:
                for batch, (proc, url) in servers.items():
                    r = asyncio.run(closed_loop(url, body, clients, args.seconds, 100_000))
                    r["rss"] = rss_mb(proc.pid)
                    cells.setdefault((batch, clients), []).append(r)
        for (batch, clients), rs in sorted(cells.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
            r = sorted(rs, key=lambda x: x["ok_per_s"])[len(rs) // 2]
            each = ", ".join(f"{x['ok_per_s']:.1f}" for x in rs)
            print(f"| {batch} | {clients} | {r['requests']} | {r['ok_per_s']:.1f} ({each}) | {r['p50']:.1f} | "
                  f"{r['p99']:.1f} | {100 * r['busy_share']:.1f} % | {r['errors']} | {r['rss']:.0f} |", flush=True)
    finally:
        for batch, (proc, _) in servers.items():
            print(f"(server with --max-batch {batch} exited {stop_server(proc)} after SIGTERM)")
    if args.memory_requests:
        proc, url = start_server([*model])
        try:
            asyncio.run(closed_loop(url, body, 4, 600.0, 200))  # warm-up: caches, allocator pools
            before = rss_mb(proc.pid)
            marks = []
            done = 0
            step = max(1, args.memory_requests // 5)
            while done < args.memory_requests:
                r = asyncio.run(closed_loop(url, body, 4, 600.0, min(step, args.memory_requests - done)))
                done += r["requests"]
                marks.append(f"{done}: {rss_mb(proc.pid):.0f} MB")
            print(f"\nmemory over {done} requests (4 clients): after warm-up {before:.0f} MB; " + ", ".join(marks))
        finally:
            stop_server(proc)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
