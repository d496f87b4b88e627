"""Exercise the main imgctx REST and WebSocket endpoints against a running server.

Start a server whose allowed roots include the photo folder, then run this client:

    IMGCTX_ALLOWED_ROOTS=$PWD/examples imgctx --db /tmp/demo_db serve --preset tiny &
    python examples/api_examples.py --url http://127.0.0.1:8000 --photos examples/photos

Needs httpx and websockets (both come with ``pip install "imgctx[server]"``). Every call checks
its status code, so the script stops at the first endpoint that does not behave.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def show(title: str, data: Any, limit: int = 600) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False)
    print(f"\n== {title}\n{text[:limit]}{' ...' if len(text) > limit else ''}")


def expect(response: httpx.Response, status: int = 200) -> Any:
    if response.status_code != status:
        raise SystemExit(f"{response.request.method} {response.request.url}: expected {status}, "
                         f"got {response.status_code}: {response.text}")
    return response.json()


def run(url: str, photos: Path, api_key: str | None) -> None:
    headers = {"X-API-Key": api_key} if api_key else {}
    photos = photos.resolve()
    files = sorted(p for p in photos.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if len(files) < 2:
        raise SystemExit(f"{photos} needs at least two photos")
    with httpx.Client(base_url=url, headers=headers, timeout=120) as api:
        show("health", expect(api.get("/api/v1/health")))
        info = expect(api.get("/api/v1/info"))
        show("info", {"version": info["version"], "preset": info["preset"], "endpoints": len(info["endpoints"])})
        show("models/status", expect(api.get("/api/v1/models/status"))["models"])
        show("models/preload", expect(api.post("/api/v1/models/preload"))["timings"])

        scan = expect(api.get("/api/v1/directories/scan", params={"directory_path": str(photos)}))
        show("directories/scan", {"total_files": scan["total_files"], "total_size": scan["total_size"]})
        report = expect(api.post("/api/v1/directories/process", json={"directory_path": str(photos)}))
        show("directories/process", {k: report[k] for k in ("total_files", "processed", "skipped", "failed", "message")})

        one = expect(api.post("/api/v1/images/process", json={"image_path": str(files[0])}))
        show("images/process", one)
        image_id = one["image_id"]

        with open(files[1], "rb") as fh:
            upload = expect(api.post("/api/v1/images/upload", files={"file": (files[1].name, fh, "image/jpeg")},
                                     data={"overwrite": "true"}), 201)
        show("images/upload", upload)

        show("images/ (list)", expect(api.get("/api/v1/images/", params={"limit": 3})))
        hits = expect(api.get("/api/v1/images/", params={"query": "a cat", "limit": 3}))
        show("images/ (search 'a cat')", [(h["filename"], h["score"]) for h in hits])
        first_object = (one["image_info"]["objects"] or ["cat"])[0]
        tagged = expect(api.get("/api/v1/images/", params={"objects": first_object, "limit": 5}))
        show(f"images/ (objects={first_object})", [t["filename"] for t in tagged])
        show("images/info", expect(api.get(f"/api/v1/images/info/{image_id}")))
        download = api.get(f"/api/v1/images/download/{image_id}")
        assert download.status_code == 200 and download.content == files[0].read_bytes()
        show("images/download", {"bytes": len(download.content), "content-type": download.headers["content-type"]})

        task = expect(api.post("/api/v1/directories/process-async",
                               json={"directory_path": str(photos), "force_reprocess": True}))
        show("directories/process-async", task)
        while True:
            status = expect(api.get(f"/api/v1/directories/task/{task['task_id']}"))
            print(f"   {status['status']:>10} {status['progress']:5.1f}%  {status['message']}")
            if status["status"] not in ("queued", "processing"):
                break
            time.sleep(0.2)
        show("directories/tasks", [(t["task_id"], t["status"]) for t in expect(api.get("/api/v1/directories/tasks"))])

        show("duplicates/compare", expect(api.post("/api/v1/duplicates/compare", json={
            "image1_path": str(files[0]), "image2_path": str(files[1])})))
        show("duplicates/check", expect(api.post("/api/v1/duplicates/check", json={"similarity_threshold": 0.95})))
        show("duplicates/remove-duplicates (dry run)", expect(api.delete("/api/v1/duplicates/remove-duplicates")))

        error = api.post("/api/v1/images/process", json={"image_path": str(photos / "no-such-file.jpg")})
        show(f"an error ({error.status_code})", error.json())

        live_search(url, api_key)
        show("ws/stats", expect(api.get("/ws/stats")))
        show("images/ DELETE", expect(api.delete(f"/api/v1/images/{image_id}")))
        show("metrics", expect(api.get("/api/v1/metrics"))["requests"])


def live_search(url: str, api_key: str | None) -> None:
    """Search as the user types, over /ws/search."""
    from websockets.sync.client import connect

    ws_url = url.replace("http", "ws", 1) + "/ws/search" + (f"?api_key={api_key}" if api_key else "")
    with connect(ws_url) as ws:
        json.loads(ws.recv(timeout=10))  # "connected"
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"
        for i, text in enumerate(["c", "ca", "cat", "cat on"]):
            ws.send(json.dumps({"type": "search", "query": text, "limit": 2, "id": i}))
            reply = json.loads(ws.recv(timeout=30))
            print(f"   ws/search {text!r:10} -> {[r['filename'] for r in reply['results']]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--photos", type=Path, default=Path(__file__).parent / "photos",
                        help="A folder of photos inside the server's allowed roots")
    parser.add_argument("--api-key", default=None, help="The server's X-API-Key, if it needs one")
    args = parser.parse_args()
    try:
        run(args.url.rstrip("/"), args.photos, args.api_key)
    except httpx.ConnectError:
        sys.exit(f"no server at {args.url}; start one with `imgctx serve`")
    print("\nall endpoints answered as expected")


if __name__ == "__main__":
    main()
