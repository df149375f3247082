"""The results directory: atomic Parquet parts, manifest, lock, recovery, compaction.

Layout of a results directory ``OUT``::

    OUT/manifest.json            spec, its hash, schema and package versions, times
    OUT/.lock                    flock'ed by the one process writing; holds its
                                 pid/host and a token (see lock_token)
    OUT/runs/<unit>.parquet      one row per run
    OUT/stalls/<unit>.parquet    one row per stall (no file for a unit without stalls)
    OUT/curves/<unit>.parquet    thinned loss curves (optional)
    OUT/quarantine/              corrupt files moved aside, never read
    OUT/verified.log             data files whose every page was checked (name, size,
                                 mtime, sha256): recovery checks only the others
    OUT/failed/<chunk_id>.json   runs that failed (after retries), with the error
    OUT/previous/<version>/      results of an earlier package version (kept apart)

A *unit* is a set of files with the same stem across the three tables: either
``part-<chunk_id>`` (written by :func:`write_unit`: :meth:`Store.write_chunk`, or a
sweep's worker while its client holds the lock) or ``compact-<hash>``
(written by :meth:`Store.compact`, replacing several smaller units). Every file
is written to a hidden temporary name (``.tmp-<uuid>.parquet.partial``, which
globbing readers skip), fsynced and renamed into place. The runs file is
written last and is the unit's commit marker: its footer metadata records how
many stall and curve rows the unit has, so a unit counts only if its runs file
is readable and its stalls/curves files match those counts. Anything else is
debris of a crash and is cleaned up by :meth:`Store.recover` (run whenever the
lock is taken): temporaries are deleted, stalls/curves files of uncommitted
units are deleted, corrupt files are moved to ``quarantine/`` (their runs are
redone on resume). Recovery also reads every page (with its checksum) of each
data file not in ``verified.log`` and compares files written by this store
with the sha256 recorded when they were written; a unit with a corrupt file is
quarantined whole (all its tables), and its runs are redone.

Run ids hash the package version: the manifest records the version and the
run-id scheme, and :func:`open_store` refuses a directory made by another
version unless asked to move its results aside (``OUT/previous/<version>/``).

Compaction never shows a row twice to a reader that globs ``OUT/runs``: the
merged files are staged under temporary names, the source files are then
renamed to hidden names ``.src-<compact unit>--<stem>.parquet.hidden``, the
merged files are renamed into place (runs last), and only then are the hidden
sources deleted. Recovery finishes or undoes an interrupted compaction: hidden
sources whose compact unit is committed are deleted, the others are renamed
back. The readers of this module also read pending hidden sources, skip units
listed as sources of a committed compact unit, and as a last safety net keep
one copy of each run_id, so they are exact at every point of a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .. import _version
from .parts import (
    FAILED,
    LOCK,
    MANIFEST,
    PREVIOUS,
    QUARANTINE,
    TABLES,
    FileInfo,
    Scan,
    SpecMismatchError,
    StoreError,
    StoreLockedError,
    VersionMismatchError,
    append_verified,
    dedupe_plan,
    file_digest,
    file_meta,
    fsync_dir,
    fsync_file,
    manifest_version,
    read_curves,
    read_failures,
    read_runs,
    read_stalls,
    read_unit_table,
    read_verified,
    rewrite_verified,
    scan,
    stage_parquet,
    stat_key,
    status,
    verify_file,
    write_json_atomic,
    write_parquet_atomic,
)
from .schema import (
    CURVES_SCHEMA,
    RUNS_SCHEMA,
    SCHEMA_VERSIONS,
    SCHEMAS,
    STALLS_SCHEMA,
    conform,
)

__all__ = [
    "SpecMismatchError",
    "Store",
    "StoreError",
    "StoreLockedError",
    "VersionMismatchError",
    "lock_token",
    "open_store",
    "read_curves",
    "read_runs",
    "read_stalls",
    "spec_hash",
    "status",
    "write_unit",
]

log = logging.getLogger(__name__)

DEFAULT_TARGET_ROWS = 200_000
_CHUNK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]{0,127}$")
_MANIFEST_EVERY_S = 5.0
_THREADS = min(4, os.cpu_count() or 1)
_PACKAGES = ("sweepengine", "numba", "numpy", "scipy", "dask", "distributed", "pyarrow")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@cache
def _versions() -> dict[str, str | None]:
    from importlib import metadata
    from platform import python_version

    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = python_version()
    return out


def _plain_json(spec: Mapping[str, Any]) -> Any:
    """The spec as plain JSON data (tuples become lists, other objects strings)."""
    return json.loads(json.dumps(spec, sort_keys=True, default=str))


def spec_hash(spec: Mapping[str, Any]) -> str:
    """sha256 of the spec as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(_plain_json(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# Steps of one compaction, module functions so tests can interrupt between them.


def _hide_sources(out: Path, stems: list[str], unit: str) -> list[tuple[Path, Path]]:
    """Rename the source files of ``unit`` to hidden names; returns (hidden, original)."""
    moved = []
    for name in TABLES:
        d = out / name
        for stem in stems:
            src = d / f"{stem}.parquet"
            if src.exists():
                hidden = d / f".src-{unit}--{stem}.parquet.hidden"
                os.replace(src, hidden)
                moved.append((hidden, src))
        if d.exists():
            fsync_dir(d)
    return moved


def _publish(out: Path, staged: dict[str, Path], unit: str) -> None:
    """Rename the staged files into place, runs last (the commit marker)."""
    for name in ("stalls", "curves", "runs"):
        if name in staged:
            os.replace(staged[name], out / name / f"{unit}.parquet")
            fsync_dir(out / name)


def _drop_sources(hidden: list[tuple[Path, Path]]) -> None:
    for path, _ in hidden:
        path.unlink(missing_ok=True)


def _plan_groups(sizes: Mapping[str, int], target_rows: int) -> list[list[str]]:
    """Groups of units to merge: repeatedly join the two smallest while they fit.

    Stops when the two smallest candidates sum to more than ``target_rows``, so
    afterwards every pair does: planning again on the result gives no groups
    (compaction is idempotent), and all but one unit hold > target_rows / 2 rows.
    """
    heap = [(n, stem, [stem]) for stem, n in sizes.items() if n < target_rows]
    heapq.heapify(heap)
    while len(heap) >= 2:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        if a[0] + b[0] > target_rows:
            heap += [a, b]
            break
        heapq.heappush(heap, (a[0] + b[0], min(a[1], b[1]), a[2] + b[2]))
    return sorted(sorted(g) for _, _, g in heap if len(g) > 1)


class Store:
    """A results directory opened for one sweep spec (see :func:`open_store`).

    Writing (:meth:`write_chunk`, :meth:`compact`, :meth:`recover`) happens in
    one process at a time, the one holding :meth:`lock`; each of those methods
    takes the lock for its own duration when the caller does not hold it. While
    a sweep's client holds it, its workers may write their own chunks' units
    (:func:`write_unit`, distinct chunk ids) and the client records them
    (:meth:`record_written`).
    Reading needs no lock.
    """

    def __init__(self, out_dir: Path, manifest: dict[str, Any]):
        self.out_dir = out_dir
        self.manifest = manifest
        self._lock_fd: int | None = None
        self.lock_token: str | None = None  # while the lock is held: see lock_token()
        self._cache: dict[tuple, FileInfo] = {}
        self._compacted: dict[str, str] = {}  # chunk_id -> compact unit holding it
        self._manifest_written = 0.0
        self._dirty = False
        self._verified: dict[str, tuple[int, int, str]] | None = None  # loaded under the lock

    def __repr__(self) -> str:
        return f"Store({str(self.out_dir)!r}, spec_hash={self.spec_hash[:12]!r})"

    @property
    def spec_hash(self) -> str:
        return self.manifest["spec_hash"]

    @property
    def holds_lock(self) -> bool:
        return self._lock_fd is not None

    # -- lock -------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[Store]:
        """Exclusive, non-blocking lock on ``OUT/.lock`` for the duration of the block.

        Raises StoreLockedError (a RuntimeError) naming the holder's pid, host
        and start time when another process (or another Store object) holds it.
        The kernel releases an flock when its process dies, so a killed sweep
        never leaves a stale lock. On entry, :meth:`recover` cleans up after
        any crash.
        """
        if self._lock_fd is not None:
            raise StoreError(f"{self} already holds its lock")
        path = self.out_dir / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLockedError(
                f"results directory {self.out_dir} is locked by another sweep ({holder}); "
                "wait for it to finish or stop it, or write to another directory"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        token = uuid.uuid4().hex
        holder = json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "since": _now(), "token": token}
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode() + b"\n", 0)
        self._lock_fd = fd
        self.lock_token = token
        try:
            # the previous holder may have updated it since we opened the store
            self.manifest = json.loads((self.out_dir / MANIFEST).read_text())
            self._dirty = False
            self._verified = None
            if isinstance(self.manifest.get("version_change"), dict):
                self._finish_version_change()  # a crash interrupted it
            self.recover()
            yield self
        finally:
            try:
                if self._dirty:
                    self._write_manifest()
            except OSError as e:
                log.warning("could not update %s: %s", self.out_dir / MANIFEST, e)
            finally:
                self._lock_fd = None
                self.lock_token = None
                os.ftruncate(fd, 0)
                os.close(fd)  # releases the flock

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.holds_lock:
            yield
        else:
            with self.lock():
                yield

    def _changed(self) -> None:
        """Note a data change; the manifest's ``updated`` follows (throttled)."""
        self._dirty = True
        if time.monotonic() - self._manifest_written > _MANIFEST_EVERY_S:
            self._write_manifest()

    def _write_manifest(self) -> None:
        self.manifest["updated"] = _now()
        self.manifest["last_writer_versions"] = dict(_versions())
        write_json_atomic(self.out_dir / MANIFEST, self.manifest)
        self._manifest_written = time.monotonic()
        self._dirty = False

    # -- package version changes -------------------------------------------------

    def change_version(self) -> None:
        """Move results of another package version to ``OUT/previous/<version>/``.

        Takes the lock. The manifest first records the change (``version_change``:
        from, to, archive), then each table folder and ``failed/`` is renamed into
        the archive, which gets a copy of the old manifest, so it is a results
        directory of its own (``status``, ``read_runs`` work on it). A crash at any
        point is finished by the next :meth:`lock`. Old rows are never mixed with
        or counted as this version's.
        """
        with self._locked():
            have, now_v = manifest_version(self.manifest), _version.package_version()
            if have == now_v and self.manifest.get("run_id_scheme") == _version.RUN_ID_SCHEME:
                return
            base = f"{PREVIOUS}/{have}"
            archive, i = base, 1
            while (self.out_dir / archive).exists():
                i += 1
                archive = f"{base}-{i}"
            self.manifest["version_change"] = {"from": have, "to": now_v, "archive": archive}
            self._write_manifest()
            self._finish_version_change()

    def _finish_version_change(self) -> None:
        vc = self.manifest["version_change"]
        archive = self.out_dir / vc["archive"]
        archive.mkdir(parents=True, exist_ok=True)
        old = {k: v for k, v in self.manifest.items() if k != "version_change"}
        old["package_version"] = vc["from"]
        old.setdefault("run_id_scheme", _version.RUN_ID_SCHEME)
        old.pop("previous_versions", None)
        if not (archive / MANIFEST).exists():
            write_json_atomic(archive / MANIFEST, old)
        for name in (*TABLES, FAILED):
            src, dst = self.out_dir / name, archive / name
            if src.exists() and not dst.exists():
                os.replace(src, dst)
        fsync_dir(archive)
        fsync_dir(self.out_dir)
        for name in ("runs", "stalls"):
            (self.out_dir / name).mkdir(exist_ok=True)
        fsync_dir(self.out_dir)
        log.warning(
            "results of sweepengine %s in %s moved to %s", vc["from"], self.out_dir, archive
        )
        self.manifest.pop("version_change")
        self.manifest["package_version"] = vc["to"]
        self.manifest["run_id_scheme"] = _version.RUN_ID_SCHEME
        self.manifest.setdefault("previous_versions", []).append(
            {"version": vc["from"], "dir": vc["archive"], "moved": _now()}
        )
        self._write_manifest()
        self._verified = None
        self._cache.clear()

    # -- recovery and reading -----------------------------------------------------

    def _scan(self) -> Scan:
        return scan(self.out_dir, self._cache)

    def recover(self) -> dict[str, int]:
        """Clean up after crashes; returns how many files each action touched.

        Deletes temporaries, finishes or undoes interrupted compactions, deletes
        stalls/curves files of uncommitted units and units already contained in
        a compact unit, and moves corrupt files to ``OUT/quarantine/``.
        """
        with self._locked():
            s = self._scan()
            for path in s.tmp + s.hidden_delete + s.delete:
                path.unlink(missing_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            for path in s.quarantine:
                self._quarantine(path, stamp)
            for hidden, original in s.hidden_restore:
                os.replace(hidden, original)
            for name in TABLES:
                if (self.out_dir / name).exists():
                    fsync_dir(self.out_dir / name)
            counts = {
                "tmp_removed": len(s.tmp),
                "sources_dropped": len(s.hidden_delete),
                "sources_restored": len(s.hidden_restore),
                "removed": len(s.delete),
                "quarantined": len(s.quarantine),
            }
            if any(counts.values()):
                self._changed()
                log.info("recovered %s: %s", self.out_dir, counts)
                s = self._scan()
            bad = self._verify(s)
            if bad:
                for stem, error in bad.items():
                    log.warning("unit %s of %s is corrupt (%s): quarantined, its runs "
                                "will be redone", stem, self.out_dir, error)  # fmt: skip
                    for info in s.units[stem].files.values():
                        self._quarantine(info.path, stamp)
                for name in TABLES:
                    if (self.out_dir / name).exists():
                        fsync_dir(self.out_dir / name)
                counts["quarantined"] += sum(len(s.units[u].files) for u in bad)
                counts["units_corrupt"] = len(bad)
                self._changed()
                s = self._scan()
            self._prune_failures(s)
            self._compacted = {
                c: stem for stem, u in s.units.items() if u.sources for c in u.chunks
            }
            return counts

    def _quarantine(self, path: Path, stamp: str) -> None:
        qdir = self.out_dir / QUARANTINE / path.parent.name
        qdir.mkdir(parents=True, exist_ok=True)
        dest = qdir / f"{path.name}.{stamp}-{uuid.uuid4().hex[:6]}.corrupt"
        log.warning("moving corrupt or inconsistent file %s to %s", path, dest)
        shutil.move(path, dest)

    # -- whole-file verification -------------------------------------------------

    def _verified_log(self) -> dict[str, tuple[int, int, str]]:
        if self._verified is None:
            self._verified = read_verified(self.out_dir)
        return self._verified

    def _record(self, paths: list[Path]) -> None:
        """Remember files this store just wrote as verified, with their sha256."""
        entries = _entries(paths)
        append_verified(self.out_dir, entries)
        self._verified_log().update(entries)

    def _verify(self, s: Scan) -> dict[str, str]:
        """Check every committed file not verified before; returns corrupt units -> error.

        A file is known good when the verified log holds its name with its size
        and mtime. Any other file has every page read with checksum verification
        and, when the log holds a digest for its name and size (it was written
        here and has changed since), its sha256 compared with that digest.
        """
        known = self._verified_log()
        todo: list[tuple[str, Path, str | None]] = []
        live: set[str] = set()
        for stem, u in s.units.items():
            for info in u.files.values():
                rel = f"{info.path.parent.name}/{info.path.name}"
                live.add(rel)
                try:
                    size, mtime = stat_key(info.path)
                except FileNotFoundError:
                    continue
                rec = known.get(rel)
                if rec is not None and rec[:2] == (size, mtime):
                    continue
                expect = rec[2] if rec is not None and rec[0] == size else None
                todo.append((stem, info.path, expect))
        bad: dict[str, str] = {}
        good: dict[str, tuple[int, int, str]] = {}
        if todo:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(_THREADS) as pool:
                results = list(pool.map(lambda t: verify_file(t[1], t[2]), todo))
            for (stem, path, _), (error, sha) in zip(todo, results, strict=True):
                if error is not None:
                    bad.setdefault(stem, f"{path.parent.name}/{path.name}: {error}")
                else:
                    size, mtime = stat_key(path)
                    good[f"{path.parent.name}/{path.name}"] = (size, mtime, sha)
            append_verified(self.out_dir, good)
            known.update(good)
        stale = known.keys() - live
        if len(stale) > len(live) + 64:  # keep the log about as long as the directory
            self._verified = {k: v for k, v in known.items() if k in live}
            rewrite_verified(self.out_dir, self._verified)
        return bad

    # -- failed runs ----------------------------------------------------------------

    def write_failure(self, chunk_id: str, run_ids: list[str], error: str, attempts: int) -> None:
        """Record that ``run_ids`` failed (after ``attempts`` tries) with ``error``.

        Failed runs are never written to the data tables, so they never count as
        done: a later ``run --retry-failed`` trains them again, and a record whose
        runs are all done is dropped by :meth:`recover`.
        """
        _check_chunk_id(chunk_id)
        with self._locked():
            d = self.out_dir / FAILED
            d.mkdir(exist_ok=True)
            rec = {
                "chunk_id": chunk_id, "run_ids": sorted(run_ids), "error": error,
                "attempts": attempts, "at": _now(), "package_version": _version.package_version(),
            }  # fmt: skip
            write_json_atomic(d / f"{chunk_id}.json", rec)
            self._changed()

    def failures(self) -> list[dict[str, Any]]:
        """Failure records (see :meth:`write_failure`), including ones whose runs are
        done since (:meth:`recover` drops those)."""
        return read_failures(self.out_dir)

    def failed_run_ids(self) -> set[str]:
        """run_ids recorded as failed and not done since."""
        failed = {r for rec in self.failures() for r in rec["run_ids"]}
        return failed - self.done_run_ids() if failed else set()

    def prune_failures(self) -> None:
        """Drop failure records whose runs are all done (also done by :meth:`recover`)."""
        with self._locked():
            self._prune_failures(self._scan())

    def _prune_failures(self, s: Scan) -> None:
        d = self.out_dir / FAILED
        if not d.is_dir():
            return
        done = None
        for p in d.glob("*.json"):
            try:
                ids = json.loads(p.read_text())["run_ids"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if done is None:
                done = _done(s)
            if done.issuperset(ids):
                p.unlink(missing_ok=True)

    def _scan_for_read(self) -> Scan:
        """A scan, after recovery if the lock is ours or free (never waits for it)."""
        if self.holds_lock:
            self.recover()
        else:
            with contextlib.suppress(StoreLockedError):
                with self.lock():
                    pass  # taking the lock runs recover()
        return self._scan()

    def done_run_ids(self) -> set[str]:
        """run_ids of every committed run (reads only the run_id column of each part).

        Cleans up first when no other process holds the lock (see
        :meth:`recover`), so corrupt parts are quarantined and their runs are
        not counted; otherwise it skips them without touching any file. Rows
        with status ``failed`` (written by older versions) do not count.
        """
        return _done(self._scan_for_read())

    def read_runs(self, columns: list[str] | None = None) -> pa.Table:
        return read_runs(self.out_dir, columns, _cache=self._cache)

    def read_stalls(self, columns: list[str] | None = None) -> pa.Table:
        return read_stalls(self.out_dir, columns, _cache=self._cache)

    def read_curves(self, columns: list[str] | None = None) -> pa.Table:
        return read_curves(self.out_dir, columns, _cache=self._cache)

    def status(self) -> dict[str, Any]:
        return status(self.out_dir, _cache=self._cache)

    # -- writing ----------------------------------------------------------------

    def write_chunk(
        self,
        chunk_id: str,
        runs: pa.Table,
        stalls: pa.Table | None = None,
        curves: pa.Table | None = None,
    ) -> None:
        """Write one finished chunk atomically; writing a chunk_id again replaces it.

        See :func:`write_unit`, which does the checks and the writing (a sweep's
        workers call it directly on a shared file system, without the lock, which
        the sweep's client holds); this method holds the lock around it and records
        the files' digests in the verified log. A chunk already merged by
        :meth:`compact` cannot be replaced.
        """
        _check_chunk_id(chunk_id)
        with self._locked():
            if chunk_id in self._compacted:
                raise StoreError(
                    f"chunk {chunk_id!r} was merged into {self._compacted[chunk_id]} by "
                    "compaction and cannot be replaced"
                )
            self.record_written(
                write_unit(self.out_dir, chunk_id, runs, stalls, curves, self.spec_hash)
            )

    def record_written(self, entries: Mapping[str, tuple[int, int, str]]) -> None:
        """Note files just written by :func:`write_unit` (here, or by a sweep's worker
        while this store holds the lock): their digests go to the verified log."""
        if not self.holds_lock:
            raise StoreError(f"{self}: record_written needs the lock")
        append_verified(self.out_dir, entries)
        self._verified_log().update(entries)
        self._changed()

    def committed_chunks(self) -> list[tuple[list[str], int, bool]]:
        """Per committed unit: the chunk ids it holds (its footer's ``chunks``, which
        survive :meth:`compact`), its number of runs rows, and whether it holds rows
        with status ``failed`` (written by older versions). Reads no data file beyond
        what :meth:`recover` and :meth:`done_run_ids` read."""
        s = self._scan_for_read()
        return [
            (list(u.chunks), u.files["runs"].num_rows, bool(u.files["runs"].failed_ids))
            for u in s.units.values()
        ]

    def compact(self, target_rows: int = DEFAULT_TARGET_ROWS) -> dict[str, int]:
        """Merge small units into ``compact-*`` units of at most ``target_rows`` runs.

        Units with fewer than ``target_rows`` runs are grouped (see
        ``_plan_groups``); each group becomes one unit whose files are sorted
        by run_id (and stall_index / step), hold one row per run_id (a safety
        net; the first unit in name order wins), and record their source units
        in the footer. Running it again on its own result does nothing. Safe
        against a crash at any point (see the module docstring). Returns the
        number of units merged and created.
        """
        if target_rows < 1:
            raise ValueError(f"target_rows must be >= 1, got {target_rows}")
        with self._locked():
            self.recover()
            s = self._scan()
            sizes = {stem: u.files["runs"].num_rows for stem, u in s.units.items()}
            groups = _plan_groups(sizes, target_rows)
            for group in groups:
                self._merge(s, group)
            return {"units_merged": sum(map(len, groups)), "units_created": len(groups)}

    def _merge(self, s: Scan, stems: list[str]) -> None:
        """Stage, hide sources, publish, drop sources (see the module docstring).

        Runs and stalls of the group are sorted in memory; curves, the bulk,
        are streamed unit by unit (each unit's points sorted by run_id, step).
        """
        unit = "compact-" + hashlib.sha256("\n".join(stems).encode()).hexdigest()[:20]
        units = [s.units[stem] for stem in stems]
        keep = dedupe_plan([(u.stem, u.files["runs"].run_ids) for u in units])
        chunks = sorted({c for u in units for c in u.chunks})

        def sorted_parts(name: str, keys: list[str], merge: bool) -> Iterator[pa.Table]:
            tables = (read_unit_table(u, name, None, keep) for u in units if name in u.files)
            order = [(k, "ascending") for k in keys]
            if merge:
                yield pa.concat_tables([t.cast(SCHEMAS[name]) for t in tables]).sort_by(order)
            else:
                yield from (t.sort_by(order) for t in tables)

        staged: dict[str, Path] = {}
        n: dict[str, int] = {}
        try:
            for name, keys, merge in (
                ("stalls", ["run_id", "stall_index"], True),
                ("curves", ["run_id", "step"], False),
            ):
                if any(name in u.files for u in units):
                    d = self.out_dir / name
                    staged[name], n[name] = stage_parquet(
                        sorted_parts(name, keys, merge), d, name, partial(file_meta, name, unit)
                    )
            runs_meta = partial(
                file_meta,
                "runs",
                unit,
                n_stalls=n.get("stalls", 0),
                n_curves=n.get("curves", 0),
                chunks=chunks,
                sources=stems,
                spec_hash=self.spec_hash,
            )
            staged["runs"], _ = stage_parquet(
                sorted_parts("runs", ["run_id"], True), self.out_dir / "runs", "runs", runs_meta
            )
        except BaseException:
            for path in staged.values():
                path.unlink(missing_ok=True)
            raise
        hidden = _hide_sources(self.out_dir, stems, unit)
        _publish(self.out_dir, staged, unit)
        _drop_sources(hidden)
        self._record([self.out_dir / name / f"{unit}.parquet" for name in staged])
        for c in chunks:
            self._compacted[c] = unit
        self._changed()


def _check_chunk_id(chunk_id: str) -> None:
    if not isinstance(chunk_id, str) or not _CHUNK_ID.match(chunk_id):
        raise ValueError(
            f"chunk_id must match {_CHUNK_ID.pattern} (letters, digits, _.=+-), got {chunk_id!r}"
        )


def write_unit(
    out_dir: str | os.PathLike,
    chunk_id: str,
    runs: pa.Table,
    stalls: pa.Table | None,
    curves: pa.Table | None,
    spec_hash: str,
) -> dict[str, tuple[int, int, str]]:
    """Write the unit ``part-<chunk_id>`` of a results directory atomically; writing a
    chunk_id again replaces it. Returns the verified-log entries of the files
    written (``table/name`` -> size, mtime_ns, sha256).

    The tables are checked with :func:`sweepengine.schema.conform` (safe casts,
    required columns, allowed values); every runs row must carry this
    ``chunk_id``, run_ids must be unique, and every stall and curve point must
    belong to one of the chunk's runs. An existing runs file of the unit is
    removed first (a crash below leaves the unit undone), then files are written
    stalls, curves, runs, each to a temporary name, fsynced and renamed; the
    chunk is done once its runs file is in place, whose footer records the stall
    and curve row counts. Takes no lock: :meth:`Store.write_chunk` calls it under
    the lock, and a sweep's workers call it on a shared file system while their
    client holds the lock (``sweep.worker.train_range``), each for its own chunk ids.
    """
    _check_chunk_id(chunk_id)
    out = Path(out_dir)
    runs = conform(runs, RUNS_SCHEMA)
    tables = {
        "stalls": conform(stalls, STALLS_SCHEMA) if stalls is not None else None,
        "curves": conform(curves, CURVES_SCHEMA) if curves is not None else None,
    }
    ids = runs.column("run_id")
    bad = set(runs.column("chunk_id").to_pylist()) - {chunk_id}
    if bad:
        raise ValueError(f"runs rows of chunk {chunk_id!r} carry chunk_id {sorted(bad)}")
    if pc.count_distinct(ids).as_py() != len(ids):
        raise ValueError(f"chunk {chunk_id!r}: run_id values are not unique")
    for name, t in tables.items():
        if t is not None and t.num_rows:
            inside = pc.is_in(t.column("run_id"), value_set=ids.combine_chunks())
            if not pc.all(inside).as_py():
                stray = t.column("run_id").filter(pc.invert(inside))
                raise ValueError(
                    f"chunk {chunk_id!r}: {name} rows for run_id(s) not in its runs "
                    f"table: {sorted(set(stray.to_pylist()))[:5]}"
                )
    stem = f"part-{chunk_id}"
    runs_path = out / "runs" / f"{stem}.parquet"
    if runs_path.exists():  # un-commit first: a crash below leaves it undone
        runs_path.unlink()
        fsync_dir(runs_path.parent)
    counts = {}
    written = []
    for name, t in tables.items():
        path = out / name / f"{stem}.parquet"
        counts[name] = 0 if t is None else t.num_rows
        if counts[name]:
            path.parent.mkdir(exist_ok=True)
            write_parquet_atomic(t, path, name, stem)
            written.append(path)
        elif path.exists():
            path.unlink()
    write_parquet_atomic(
        runs,
        runs_path,
        "runs",
        stem,
        n_stalls=counts["stalls"],
        n_curves=counts["curves"],
        chunks=[chunk_id],
        sources=[],
        spec_hash=spec_hash,
    )
    return _entries([*written, runs_path])


def _entries(paths: list[Path]) -> dict[str, tuple[int, int, str]]:
    """Verified-log entries of files just written: name -> size, mtime, sha256."""
    entries = {}
    for p in paths:
        size, mtime = stat_key(p)
        entries[f"{p.parent.name}/{p.name}"] = (size, mtime, file_digest(p))
    return entries


def lock_token(out_dir: str | os.PathLike) -> str | None:
    """The token of the process holding (or, if it died, last holding) the lock of
    ``out_dir``, None when unlocked or unreadable. A sweep's worker compares it with
    its client's :attr:`Store.lock_token` to know that it sees the client's
    directory (a shared file system) and that the client still holds it."""
    try:
        text = (Path(out_dir) / LOCK).read_text().strip()
        token = json.loads(text).get("token") if text else None
    except (OSError, ValueError, AttributeError):
        return None
    return token if isinstance(token, str) else None


def _done(s: Scan) -> set[str]:
    done: set[str] = set()
    for u in s.units.values():
        info = u.files["runs"]
        ids = info.run_ids.to_pylist()
        done.update(ids if not info.failed_ids else set(ids) - info.failed_ids)
    return done


def open_store(
    out_dir: str | os.PathLike,
    spec: Mapping[str, Any] | None = None,
    *,
    create: bool = True,
    allow_version_change: bool = False,
) -> Store:
    """Open (and with ``create``, create) the results directory ``out_dir``.

    A new directory gets ``runs/``, ``stalls/`` and ``manifest.json`` holding
    ``spec`` (as JSON), its :func:`spec_hash`, the schema versions, the package
    versions, and the ``package_version`` and ``run_id_scheme`` its run ids are
    made with. An existing one may only be resumed with the same spec: a
    different spec raises SpecMismatchError naming the differing keys. With a
    spec, a directory made by another package version raises
    VersionMismatchError (its run ids are not this version's), unless
    ``allow_version_change``: then its results are moved, under the lock, to
    ``OUT/previous/<old version>/`` (a results directory of its own) and the
    manifest records the change. ``spec=None`` opens an existing directory
    whatever its spec and version (for status, compaction, analysis).
    Otherwise opening takes no lock and changes no data file.
    """
    out = Path(out_dir)
    path = out / MANIFEST
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no results directory at {out} (missing {MANIFEST})")
        if spec is None:
            raise ValueError(f"creating results directory {out} needs a spec")
        out.mkdir(parents=True, exist_ok=True)
        for name in ("runs", "stalls"):
            (out / name).mkdir(exist_ok=True)
        now = _now()
        manifest = {
            "format": "sweepengine-results",
            "spec": _plain_json(spec),
            "spec_hash": spec_hash(spec),
            "schema_versions": dict(SCHEMA_VERSIONS),
            "versions": dict(_versions()),
            "package_version": _version.package_version(),
            "run_id_scheme": _version.RUN_ID_SCHEME,
            "created": now,
            "updated": now,
        }
        tmp = out / f".tmp-{uuid.uuid4().hex}.json.partial"
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        fsync_file(tmp)
        try:
            os.link(tmp, path)  # atomic create-if-absent: two creators cannot both win
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        fsync_dir(out)
    manifest = json.loads(path.read_text())
    if spec is not None and manifest.get("spec_hash") != spec_hash(spec):
        old, new = manifest.get("spec", {}), _plain_json(spec)
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise SpecMismatchError(
            f"results directory {out} holds a sweep with a different spec "
            f"(hash {str(manifest.get('spec_hash'))[:12]} there, {spec_hash(spec)[:12]} given; "
            f"differing keys: {keys}). A directory can only be resumed with the spec that "
            "created it: use the original spec or a new output directory."
        )
    if manifest.get("schema_versions") != SCHEMA_VERSIONS:
        raise StoreError(
            f"results directory {out} uses schema versions {manifest.get('schema_versions')}, "
            f"this sweepengine writes {SCHEMA_VERSIONS}; write to a new directory"
        )
    store = Store(out, manifest)
    have, now_v = manifest_version(manifest), _version.package_version()
    scheme = manifest.get("run_id_scheme", _version.RUN_ID_SCHEME)
    if spec is not None and (have != now_v or scheme != _version.RUN_ID_SCHEME):
        if not allow_version_change:
            raise VersionMismatchError(
                f"results directory {out} was made by sweepengine {have} (run ids "
                f"{scheme}); this is sweepengine {now_v} (run ids {_version.RUN_ID_SCHEME}), "
                "whose run ids differ, so none of its runs would count. Write to a new "
                "output directory, or pass --allow-version-change (run_sweep(..., "
                "allow_version_change=True)) to move its results to "
                f"{out / PREVIOUS}/{have}/ and run the sweep again here."
            )
        store.change_version()
    return store
