"""A tiny Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (no websocket).

:func:`inspect_page` opens a local file in headless Chromium, waits for the load
event and returns what a reader would notice: every ``<img>`` with whether it
loaded (``complete`` and ``naturalWidth > 0``), console errors, uncaught
exceptions and failed resource loads, and a PNG screenshot. Chromium reads CDP
commands from fd 3 and writes replies and events to fd 4, NUL-terminated JSON.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-quic",
    "--disable-extensions", "--mute-audio", "--hide-scrollbars", "--window-size=1200,1600",
    "--remote-debugging-pipe",
]  # fmt: skip


def chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _Pipe:
    def __init__(self, proc: subprocess.Popen, w: int, r: int):
        self.proc, self.w, self.r = proc, w, r
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _read_one(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from chromium")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params=None, session=None, timeout: float = 30) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_one(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_one(deadline)
            if m.get("method") == method:
                return m
            self.events.append(m)


_IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth,
  naturalHeight: i.naturalHeight, src: i.src.slice(0, 40)})))"""


def inspect_page(path: str | os.PathLike, timeout: float = 60) -> dict:
    """Open ``path`` (file://) in headless Chromium; see the module docstring."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium not found")
    url = Path(path).resolve().as_uri()
    cmd_r, cmd_w = os.pipe()  # we write commands, chromium reads fd 3
    out_r, out_w = os.pipe()  # chromium writes fd 4, we read

    def child():
        os.dup2(cmd_r, 3)
        os.dup2(out_w, 4)

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=child, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(cmd_r)
        os.close(out_w)
        pipe = _Pipe(proc, cmd_w, out_r)
        try:
            targets = pipe.call("Target.getTargets", timeout=timeout)["targetInfos"]
            page = next(t for t in targets if t["type"] == "page")
            attach = {"targetId": page["targetId"], "flatten": True}
            sid = pipe.call("Target.attachToTarget", attach)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.call(f"{domain}.enable", session=sid)
            pipe.call("Page.navigate", {"url": url}, session=sid)
            pipe.wait_event("Page.loadEventFired", timeout=timeout)
            images = json.loads(
                pipe.call("Runtime.evaluate", {"expression": _IMAGES_JS, "returnByValue": True},
                          session=sid)["result"]["value"]
            )  # fmt: skip
            title = pipe.call("Runtime.evaluate", {"expression": "document.title",
                                                   "returnByValue": True},
                              session=sid)["result"]["value"]  # fmt: skip
            shot = pipe.call("Page.captureScreenshot", {"format": "png"}, session=sid,
                             timeout=timeout)["data"]  # fmt: skip
            errors = []
            for e in pipe.events:
                m, p = e.get("method"), e.get("params", {})
                if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    errors.append(f"console.{p['type']}: {p.get('args')}")
                elif m == "Runtime.exceptionThrown":
                    errors.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
                elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                    errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            try:
                pipe.call("Browser.close", timeout=10)
            except (RuntimeError, TimeoutError):
                pass
        finally:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(cmd_w)
            os.close(out_r)
    return {"title": title, "images": images, "errors": errors,
            "screenshot": base64.b64decode(shot)}  # fmt: skip
