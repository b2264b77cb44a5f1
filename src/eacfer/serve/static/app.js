// eacfer serve's page: webcam frames → WS /v1/stream → boxes and labels on a canvas; photo → POST /v1/predict.
// Plain browser JavaScript, no build step and nothing fetched from elsewhere (works offline).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const view = $("view"), ctx = view.getContext("2d"), video = $("cam"), status = $("status");
  let ws = null, stream = null, running = false, waiting = false;

  function say(text) { status.textContent = text; }

  // Boxes and "emotion 87%" labels over the image; the canvas carries the count and labels for tests.
  function draw(source, faces) {
    view.width = source.videoWidth || source.naturalWidth || source.width;
    view.height = source.videoHeight || source.naturalHeight || source.height;
    ctx.drawImage(source, 0, 0, view.width, view.height);
    ctx.lineWidth = Math.max(2, view.width / 320);
    ctx.font = Math.max(14, Math.round(view.width / 40)) + "px sans-serif";
    const labels = [];
    for (const f of faces) {
      const [x1, y1, bw, bh] = f.box;  // x, y, width, height
      const p = f.probabilities[f.emotion] || 0;
      const label = f.emotion + " " + Math.round(100 * p) + "%" + (f.track !== undefined ? " #" + f.track : "");
      ctx.strokeStyle = "#3f3"; ctx.strokeRect(x1, y1, bw, bh);
      const w = ctx.measureText(label).width + 8, h = parseInt(ctx.font, 10) + 6;
      ctx.fillStyle = "#3f3"; ctx.fillRect(x1, Math.max(0, y1 - h), w, h);
      ctx.fillStyle = "#000"; ctx.fillText(label, x1 + 4, Math.max(h - 6, y1 - 6));
      labels.push(f.emotion);
    }
    view.dataset.faces = String(faces.length);
    view.dataset.labels = labels.join(",");
  }

  function keyQuery() { const k = $("key").value; return k ? "?api_key=" + encodeURIComponent(k) : ""; }

  // One frame in flight at a time: the next frame is sent when the previous answer arrives, so the
  // page never sends faster than the server classifies; and at most FPS frames a second, under the
  // server's per-connection limit (--max-ws-fps, default 30).
  const FPS = 15;
  const grab = document.createElement("canvas");
  let lastSent = 0;
  function sendFrame() {
    if (!running || waiting || !ws || ws.readyState !== WebSocket.OPEN) return;
    const wait = lastSent + 1000 / FPS - performance.now();
    if (wait > 0 || !video.videoWidth) { setTimeout(sendFrame, Math.max(wait, 10)); return; }
    lastSent = performance.now();
    grab.width = video.videoWidth; grab.height = video.videoHeight;
    grab.getContext("2d").drawImage(video, 0, 0);
    waiting = true;
    grab.toBlob((blob) => { if (blob && ws && ws.readyState === WebSocket.OPEN) ws.send(blob); else waiting = false; },
                "image/jpeg", 0.8);
  }

  async function start() {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (e) { say("no camera: " + e.message); return; }
    video.srcObject = stream; await video.play();
    const proto = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(proto + location.host + "/v1/stream" + keyQuery());
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { running = true; $("start").disabled = true; $("stop").disabled = false; say("streaming"); sendFrame(); };
    ws.onmessage = (ev) => {
      waiting = false;
      const r = JSON.parse(ev.data);
      if (r.error) { say(r.error); } else {
        draw(video, r.faces);
        say("frame " + r.frame + ": " + r.faces.length + " face(s), " + r.dropped + " dropped, " +
            Math.round(r.timings_ms.total || 0) + " ms");
      }
      setTimeout(sendFrame, 0);
    };
    ws.onclose = (ev) => { if (running) say("stream closed" + (ev.reason ? ": " + ev.reason : "")); stop(); };
  }

  function stop() {
    running = false; waiting = false;
    if (ws) { ws.onclose = null; ws.close(); ws = null; }
    if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
    $("start").disabled = false; $("stop").disabled = true;
  }

  async function upload(file) {
    const body = new FormData(); body.append("file", file);
    const headers = $("key").value ? { "X-API-Key": $("key").value } : {};
    say("analysing " + file.name + " …");
    const res = await fetch("/v1/predict", { method: "POST", body, headers });
    const r = await res.json();
    $("result").textContent = JSON.stringify(r, null, 1);
    if (!res.ok) { say(r.error || res.statusText); return; }
    const img = new Image();
    img.onload = () => { draw(img, r.faces); say(file.name + ": " + r.faces.length + " face(s)"); URL.revokeObjectURL(img.src); };
    img.src = URL.createObjectURL(file);
  }

  $("start").onclick = start;
  $("stop").onclick = () => { stop(); say("stopped"); };
  $("photo").onchange = (ev) => { if (ev.target.files[0]) upload(ev.target.files[0]); };
})();
