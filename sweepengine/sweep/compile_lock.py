"""Take turns compiling: one lock file per install and compile unit, shared by processes.

With a cold Numba cache, every worker process that starts at once would compile
the same kernels. ``compile_lock`` lets one compile a unit (the reference
kernels, one trainer driver) while the others wait and then load its result from
the cache; with ``wait=False`` a process skips a unit another one is compiling
and compiles a different one meanwhile (:func:`compile_units`), and a process
that needs only some units never waits for the others.

The lock lives in a per-user directory (``$XDG_RUNTIME_DIR/sweepengine``, else
``~/.cache/sweepengine``; created with mode 0700, and refused if another user
owns it or others may write to it), never in the shared /tmp, where another
user could hold or replace it. Waiting is bounded: after ``timeout`` seconds
(default ``LOCK_TIMEOUT_S``, or ``SWEEPENGINE_COMPILE_LOCK_TIMEOUT``) the
process logs a warning naming the lock and its holder and compiles without
the lock (correct, only slower), rather than waiting forever.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import time
from pathlib import Path

from .._version import package_version

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 600.0
_POLL_S = 0.2


def lock_dir() -> Path:
    """The per-user directory of the lock (created 0700; see the module docstring)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and Path(runtime).is_dir() else Path.home() / ".cache"
    d = base / "sweepengine"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = d.stat()
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(
            f"compile lock directory {d} must belong to this user and not be writable by "
            f"others (owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)})"
        )
    return d


def lock_paths(unit: str = "trainer") -> tuple[Path, Path]:
    """(lock file, warm marker) of compile unit ``unit`` in :func:`lock_dir`, keyed by
    this install's version and the paths, sizes and modification times of its source
    files (what Numba's cache checks), so an edited or reinstalled package starts
    cold again."""
    if not unit.replace("_", "").isalnum():
        raise ValueError(f"compile unit names are letters, digits and _, got {unit!r}")
    key = hashlib.sha256(package_version().encode())
    for f in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        st = f.stat()
        key.update(f"{f}:{st.st_mtime_ns}:{st.st_size};".encode())
    base = lock_dir() / f"compile-{key.hexdigest()[:16]}-{unit}"
    return base.with_suffix(".lock"), base.with_suffix(".warm")


# The compile units of a sweep worker and, for each, the units whose kernels its kernels
# call (compiled first, see :func:`compile_units`); ``worker`` supplies what compiles
# each. Here, not in ``worker``, so that the client can tell a warm cache (``warm``)
# without importing Numba. Listed in the order a process tries them: the longest chain
# first (objective, hvp, polish, examine), the drivers early, so that a second process
# starts on a driver.
UNIT_NEEDS = {
    "objective": (),
    "lockstep": (),
    "per_run": (),  # compiles the objective kernels it calls itself rather than wait
    "hvp": ("objective",),
    "polish": ("objective", "hvp"),
    "lanczos": ("objective", "hvp"),
    "modes": ("objective",),
    "reference": ("objective", "hvp"),
    "examine": ("polish", "lanczos", "modes"),
    "nonlinear": (),
}
DRIVERS = ("lockstep", "per_run")
NONLINEAR = "nonlinear"
LINEAR_UNITS = tuple(u for u in UNIT_NEEDS if u != NONLINEAR)


def units_for(driver: str | None) -> list[str]:
    """The units a chunk with trainer ``driver`` (``DRIVERS`` or ``NONLINEAR``) needs,
    with every unit they call, in ``UNIT_NEEDS`` order; None: every linear unit. The
    nonlinear trainer has its own stall examination and takes lam_ref from the
    reference."""
    if driver is None:
        return list(LINEAR_UNITS)
    need = {driver, "reference"} if driver == NONLINEAR else {driver, "reference", "examine"}
    todo = list(need)
    while todo:
        for d in UNIT_NEEDS[todo.pop()]:
            if d not in need:
                need.add(d)
                todo.append(d)
    return [u for u in UNIT_NEEDS if u in need]


def warm(units) -> bool:
    """Whether a process of this install has warmed up every unit of ``units`` (their
    markers exist: the Numba cache holds them, a process loads them in well under a
    second)."""
    try:
        return all(lock_paths(u)[1].exists() for u in units)
    except (OSError, PermissionError):
        return False


def sweep_warm(linear: bool, nonlinear: bool) -> bool:
    """Whether a sweep with deep linear and/or nonlinear runs finds what its chunks need
    warm: for the linear runs, the units of at least one driver (a chunk needs one of
    the two), for the nonlinear ones the nonlinear trainer's."""
    return (not linear or any(warm(units_for(d)) for d in DRIVERS)) and (
        not nonlinear or warm(units_for(NONLINEAR))
    )


def _timeout() -> float:
    try:
        return float(os.environ.get("SWEEPENGINE_COMPILE_LOCK_TIMEOUT", LOCK_TIMEOUT_S))
    except ValueError:
        return LOCK_TIMEOUT_S


def compile_units(units, timeout: float | None = None, done=()) -> None:
    """Call each ``fn`` of ``units`` once, taking turns per unit with the other processes
    of this install; each unit is ``(name, fn)`` or ``(name, fn, needs)``, ``needs`` the
    names of units listed before it, or in ``done`` (units this process has warmed up
    already), whose kernels ``fn``'s kernels call.

    Repeatedly, in list order: the first unit whose ``needs`` this process has done and
    that no other process is compiling (a unit another process has warmed counts: it is
    a load from the cache). When none is, poll until one is, for at most ``timeout``
    seconds without progress (then compile the first pending unit without its lock,
    logging who holds it, as :func:`compile_lock` does). A unit is thus compiled after
    its callees and loads them from the cache instead of compiling them again, and
    with a cold cache two processes that need the same units compile different ones
    side by side.
    """
    pending = [(u[0], u[1], tuple(u[2]) if len(u) > 2 else ()) for u in units]
    seen: set[str] = set(done)
    for name, _, needs in pending:
        missing = [d for d in needs if d not in seen]
        if missing:
            raise ValueError(
                f"unit {name!r} needs {missing}, which are neither done nor listed before it"
            )
        seen.add(name)
    limit = _timeout() if timeout is None else timeout
    done = set(done)
    deadline = time.monotonic() + limit
    while pending:
        for i, (name, fn, needs) in enumerate(pending):
            if not done.issuperset(needs):
                continue
            with compile_lock(timeout, unit=name, wait=False) as warm:
                if warm is None:  # another process is compiling it
                    continue
                fn()
                warm()
            done.add(name)
            del pending[i]
            deadline = time.monotonic() + limit
            break
        else:  # every runnable unit is being compiled elsewhere
            if time.monotonic() < deadline:
                time.sleep(_POLL_S)
                continue
            name, fn, _ = pending.pop(0)  # its needs are done: they are listed before it
            log.warning(
                "compile unit %r still being compiled by another process after %.0f s: "
                "compiling it here without the lock (set SWEEPENGINE_COMPILE_LOCK_TIMEOUT "
                "to wait longer; a stuck holder can be stopped)", name, limit,
            )  # fmt: skip
            fn()
            with contextlib.suppress(OSError):
                lock_paths(name)[1].touch()
            done.add(name)
            deadline = time.monotonic() + limit


@contextlib.contextmanager
def compile_lock(timeout: float | None = None, *, unit: str = "trainer", wait: bool = True):
    """Take turns compiling ``unit``: hold its exclusive lock file while the block runs,
    unless a process has already warmed it up (the marker exists), in which case the
    cache is warm and processes load in parallel, unlocked. Yields a function to call
    once warm. Waits at most ``timeout`` seconds for the lock (see the module
    docstring); with ``wait=False`` it does not wait and yields None while another
    process holds the lock."""
    try:
        lock, marker = lock_paths(unit)
    except OSError as e:  # no usable per-user directory: compile without the lock
        log.warning("no compile lock (%s): compiling without it", e)
        yield lambda: None
        return

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
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield warm
        return
    limit = _timeout() if timeout is None else timeout
    deadline = time.monotonic() + limit
    held = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if marker.exists():  # warmed up while we waited: load in parallel
                    break
                if not wait:  # another process is compiling it: do something else
                    yield None
                    return
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                    log.warning(
                        "compile lock %s still held (by pid %s) after %.0f s: compiling "
                        "without it (set SWEEPENGINE_COMPILE_LOCK_TIMEOUT to wait longer; "
                        "a stuck holder can be stopped)", lock, holder, limit,
                    )  # fmt: skip
                    break
                time.sleep(_POLL_S)
        if held:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield warm
    finally:
        if held:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
