"""Take turns compiling the trainer: one lock file per install, shared by processes.

With a cold Numba cache, every worker process that starts at once would compile
the same kernels (about 90 s each on 2 cores). ``compile_lock`` lets one compile
while the others wait and then load its result from the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from pathlib import Path

from .._version import package_version


def lock_paths() -> tuple[Path, Path]:
    """(lock file, warm marker) in the temporary directory, keyed by this install's
    version and the paths, sizes and modification times of its source files (what
    Numba's cache checks), so an edited or reinstalled package starts cold again."""
    key = hashlib.sha256(package_version().encode())
    for f in sorted(Path(__file__).resolve().parent.rglob("*.py")):
        st = f.stat()
        key.update(f"{f}:{st.st_mtime_ns}:{st.st_size};".encode())
    base = Path(tempfile.gettempdir()) / f"sweepengine-compile-{key.hexdigest()[:16]}"
    return base.with_suffix(".lock"), base.with_suffix(".warm")


@contextlib.contextmanager
def compile_lock():
    """Take turns compiling: hold the exclusive lock file while the block runs, unless
    a process has already warmed up (the marker exists), in which case the cache is
    warm and processes load in parallel, unlocked. Yields a function to call once warm."""
    lock, marker = lock_paths()

    def warm() -> None:
        with contextlib.suppress(OSError):
            marker.touch()

    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (at worst, processes compile in parallel)
        fcntl = None
    if fcntl is None or marker.exists():
        yield warm
        return
    try:
        f = open(lock, "a")  # noqa: SIM115
    except OSError:
        yield warm
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield warm
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
