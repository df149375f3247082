"""The "compiling kernels" notice (client side) and the JIT clock behind compile_time_s."""

import threading
import time

import pytest

from sweepengine.sweep.notices import COMPILE_TOPIC, CompileNotice


class FakeBar:
    disable = False

    def __init__(self):
        self.lines, self.postfix = [], ""

    def write(self, text):
        self.lines.append(text)

    def set_postfix_str(self, text, refresh=True):
        self.postfix = text


class FakeClient:
    def __init__(self):
        self.handlers = {}

    def subscribe_topic(self, topic, handler):
        self.handlers[topic] = handler

    def unsubscribe_topic(self, topic):
        self.handlers.pop(topic)


def _wait(cond, limit=900.0):
    deadline = time.monotonic() + limit  # a hang guard only
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_notice_shows_compiling_with_elapsed_time_then_clears():
    client, bar = FakeClient(), FakeBar()
    notice = CompileNotice(client, bar)
    send = client.handlers[COMPILE_TOPIC]
    start = {"event": "start", "seconds": 1.0, "estimate_s": 90, "worker": "w1"}
    send((time.time(), start))
    send((time.time(), {**start, "worker": "w2"}))  # a second worker: one notice
    assert bar.lines == ["compiling kernels, one-time, about 90 s ..."]
    _wait(lambda: "so far" in bar.postfix)
    assert bar.postfix.startswith("compiling kernels, one-time, about 90 s: ")
    send((time.time(), {"event": "done", "seconds": 80.0, "worker": "w1"}))
    assert bar.postfix != ""  # w2 still compiling
    send((time.time(), {"event": "done", "seconds": 81.0, "worker": "w2"}))
    assert bar.postfix == "" and bar.lines[-1] == "kernels ready after 81 s"
    notice.close()
    assert COMPILE_TOPIC not in client.handlers


def test_notice_without_events_support_is_silent():
    class NoEvents:
        def subscribe_topic(self, topic, handler):
            raise AttributeError("no events")

    notice = CompileNotice(NoEvents(), FakeBar())
    notice.close()


def test_jit_clock_counts_this_threads_compiles_only():
    import numba

    from sweepengine.sweep import worker

    @numba.njit(cache=False)
    def f(x):
        return x + 1

    before = worker._JIT.seconds()
    f(1)  # compiles
    assert worker._JIT.seconds() > before
    other = []
    t = threading.Thread(target=lambda: other.append(worker._JIT.seconds()))
    t.start()
    t.join()
    assert other == [0.0]  # per thread
    assert worker._dask_worker() is None  # not in a Dask task
    worker._notify(None, "start", 1.0)  # nothing to tell, no error


def _rewarm_with_instant_notice():
    from sweepengine.sweep import worker

    worker.NOTICE_AFTER_S, worker._COMPILE_S = 0.0, None  # any warm-up counts as compiling
    return worker.warm_up()


@pytest.mark.cluster
def test_a_worker_warm_up_reaches_the_client_as_events():
    """The real path: warm_up in a Dask worker process sends start and done events, which
    CompileNotice turns into the bar's lines."""
    from distributed import Client, LocalCluster

    bar = FakeBar()
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                     dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        notice = CompileNotice(client, bar)
        client.submit(_rewarm_with_instant_notice, pure=False).result(timeout=900)
        _wait(lambda: any(line.startswith("kernels ready") for line in bar.lines))
        notice.close()
    assert bar.lines[0].startswith("compiling kernels, one-time, about ")
