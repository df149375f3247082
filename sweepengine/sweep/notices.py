"""Client side of the "compiling kernels" notice.

A worker whose first chunk's warm-up (``worker.warm_up``) runs longer than a
second is compiling the kernels (a warm cache loads in under a second); it sends
a Dask event on ``COMPILE_TOPIC`` when it starts and when it is done. While any
worker compiles, the progress bar reads "compiling kernels, one-time, about N s:
M s so far" and the log says so at INFO level. Imports nothing numerical.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("sweepengine.sweep")

COMPILE_TOPIC = "sweepengine-compile"  # Dask event topic (sent by ``worker.warm_up``)
# set in the embedded cluster's workers: they ignore Ctrl-C, which their client handles
IGNORE_SIGINT = "SWEEPENGINE_IGNORE_SIGINT"


class CompileNotice:
    """Shows the workers' compile on ``bar`` (a tqdm bar, possibly disabled)."""

    def __init__(self, client: Any, bar: Any) -> None:
        self.client, self.bar = client, bar
        self.lock = threading.Lock()
        self.compiling: dict[str, float] = {}  # worker -> local time it started
        self.estimate = 0.0
        self.stop = threading.Event()
        self.ticker: threading.Thread | None = None
        try:
            client.subscribe_topic(COMPILE_TOPIC, self._on_event)
            self.subscribed = True
        except Exception:  # an old scheduler or a client without events: no notice
            self.subscribed = False

    def _on_event(self, event: Any) -> None:
        _, msg = event if isinstance(event, tuple) else (None, event)
        if not isinstance(msg, dict):
            return
        worker, now = str(msg.get("worker")), time.monotonic()
        with self.lock:
            if msg.get("event") == "start":
                first = not self.compiling
                self.compiling[worker] = now - float(msg.get("seconds", 0.0))
                self.estimate = float(msg.get("estimate_s", 0.0))
                if first:
                    text = f"compiling kernels, one-time, about {self.estimate:.0f} s"
                    log.info("%s (%s)", text, worker)
                    if not self.bar.disable:
                        self.bar.write(text + " ...")
                    if self.ticker is None:
                        self.ticker = threading.Thread(target=self._tick, daemon=True)
                        self.ticker.start()
            elif msg.get("event") == "done" and worker in self.compiling:
                del self.compiling[worker]
                text = f"kernels ready on {worker} after {float(msg.get('seconds', 0)):.0f} s"
                log.info(text)
                if not self.compiling:
                    self._show("")
                    if not self.bar.disable:
                        self.bar.write(text.replace(f" on {worker}", ""))

    def _show(self, text: str) -> None:
        if not self.bar.disable:
            self.bar.set_postfix_str(text, refresh=True)

    def _tick(self) -> None:
        while not self.stop.wait(1.0):
            with self.lock:
                if self.compiling:
                    since = time.monotonic() - min(self.compiling.values())
                    self._show(
                        f"compiling kernels, one-time, about {self.estimate:.0f} s: "
                        f"{since:.0f} s so far"
                    )

    def close(self) -> None:
        self.stop.set()
        if self.subscribed:
            try:
                self.client.unsubscribe_topic(COMPILE_TOPIC)
            except Exception:  # the client is already closing
                pass
