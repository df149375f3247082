"""The part files of a results directory: atomic writes, inspection, reading.

Private to :mod:`sweepengine.store`, which documents the layout and re-exports
the public readers (``read_runs``, ``read_stalls``, ``read_curves``,
``status``). Here a *unit* is the stem shared by one runs file and its
optional stalls and curves files; ``scan`` lists a directory without changing
it and sorts every file into the committed units or into what recovery should
do with it. Nothing here takes the lock: store calls the writers while holding it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .schema import RUN_STATUSES, SCHEMA_VERSIONS, SCHEMAS

TABLES = ("runs", "stalls", "curves")
_ROW_GROUP = {"runs": 128 * 1024, "stalls": 128 * 1024, "curves": 1024 * 1024}
_PREFIX = b"sweepengine."
_THREADS = min(8, os.cpu_count() or 1)
TMP_PREFIX = ".tmp-"
# A compaction's source files while it runs: hidden from every globbing reader.
HIDDEN = re.compile(r"^\.src-(compact-[0-9a-f]+)--(.+)\.parquet\.hidden$")
MANIFEST = "manifest.json"
LOCK = ".lock"
QUARANTINE = "quarantine"
VERIFIED = "verified.log"  # one line per data file checked: name, size, mtime, sha256
FAILED = "failed"  # OUT/failed/<chunk_id>.json: runs that failed, with the error
PREVIOUS = "previous"  # OUT/previous/<version>/: results of an earlier package version


class StoreError(RuntimeError):
    """A results directory cannot be used as asked."""


class SpecMismatchError(StoreError):
    """The results directory was created by a different sweep spec."""


class StoreLockedError(StoreError):
    """Another process holds the results directory's lock."""


class VersionMismatchError(StoreError):
    """The results directory was written by another sweepengine version."""


def fsync_dir(directory: Path) -> None:
    """Make renames in ``directory`` durable (no-op where directories cannot be fsynced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}.json.partial")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_meta(table: str, unit: str, n_rows: int, **extra: Any) -> dict[bytes, bytes]:
    """Footer key-value metadata of a part: ``sweepengine.<key>`` -> JSON or text."""
    meta: dict[str, Any] = {"table": table, "unit": unit, "n_rows": n_rows}
    meta["schema_version"] = SCHEMA_VERSIONS[table]
    meta.update(extra)
    return {
        _PREFIX + k.encode(): (v if isinstance(v, str) else json.dumps(v)).encode()
        for k, v in meta.items()
    }


def stage_parquet(
    parts: Iterable[pa.Table],
    directory: Path,
    name: str,
    meta: Callable[[int], Mapping[bytes, bytes]],
) -> tuple[Path, int]:
    """Stream ``parts`` of table ``name`` into one fsynced temporary file.

    zstd, column statistics, page checksums, row groups of ``_ROW_GROUP[name]``
    rows; ``meta(n_rows)`` becomes the footer's key-value metadata. The name
    ``.tmp-<uuid>.parquet.partial`` starts with a dot and does not end in
    ``.parquet``, so neither pyarrow.dataset nor ``*.parquet`` globs see it.
    Returns the temporary path and the number of rows written.
    """
    schema, rows = SCHEMAS[name], _ROW_GROUP[name]
    tmp = directory / f"{TMP_PREFIX}{uuid.uuid4().hex}.parquet.partial"
    n, buf = 0, []
    try:
        with open(tmp, "wb") as f:
            with pq.ParquetWriter(
                f,
                schema,
                compression="zstd",
                write_statistics=True,
                write_page_checksum=True,
            ) as writer:
                for part in parts:
                    buf.append(part)
                    if sum(p.num_rows for p in buf) >= rows:
                        t = pa.concat_tables(buf).cast(schema)
                        writer.write_table(t, row_group_size=rows)
                        n, buf = n + t.num_rows, []
                if buf:
                    t = pa.concat_tables(buf).cast(schema)
                    writer.write_table(t, row_group_size=rows)
                    n += t.num_rows
                writer.add_key_value_metadata(meta(n))
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, n


def write_parquet_atomic(table: pa.Table, path: Path, name: str, unit: str, **extra: Any) -> None:
    """Write ``table`` to ``path`` via a temporary name in the same directory."""
    tmp, _ = stage_parquet([table], path.parent, name, lambda n: file_meta(name, unit, n, **extra))
    os.replace(tmp, path)
    fsync_dir(path.parent)


@dataclass
class FileInfo:
    """What the footer (and for runs, the run_id column) of one part says."""

    path: Path
    table: str
    size: int
    num_rows: int = 0
    meta: dict[str, str] = field(default_factory=dict)
    run_ids: pa.Array | None = None
    failed_ids: frozenset[str] = frozenset()  # rows with status "failed" (older versions)
    error: str | None = None


@dataclass
class Unit:
    """A committed unit: its files by table and its runs file's bookkeeping."""

    stem: str
    files: dict[str, FileInfo]
    n_stalls: int
    n_curves: int
    chunks: list[str]
    sources: list[str]


@dataclass
class Scan:
    """A directory listing sorted into committed units and pending cleanup actions."""

    units: dict[str, Unit]
    tmp: list[Path]
    hidden_delete: list[Path]  # sources of a committed compact unit
    hidden_restore: list[tuple[Path, Path]]  # (hidden, original) of undone compactions
    quarantine: list[Path]
    delete: list[Path]


def inspect(path: Path, table: str, stem: str, cache: dict) -> FileInfo:
    """Read and check the footer (and runs' run_id column); never raises but FileNotFound."""
    key = _key(path)
    if key in cache:
        return cache[key]
    info = FileInfo(path=path, table=table, size=key[2])
    try:
        with pq.ParquetFile(path, page_checksum_verification=True) as pf:
            md = pf.metadata
            meta = {
                k[len(_PREFIX) :].decode(): v.decode()
                for k, v in (md.metadata or {}).items()
                if k.startswith(_PREFIX)
            }
            if meta.get("table") != table or meta.get("unit") != stem:
                raise ValueError(f"footer says table={meta.get('table')} unit={meta.get('unit')}")
            if int(meta["n_rows"]) != md.num_rows:
                raise ValueError(f"footer says {meta['n_rows']} rows, file has {md.num_rows}")
            if table == "runs":
                t = pf.read(columns=["run_id", "status"])
                ids = t.column(0).combine_chunks()
                if len(ids) != md.num_rows or ids.null_count:
                    raise ValueError("run_id column does not match the row count")
                info.run_ids = ids
                failed = pc.equal(t.column(1), "failed")
                if pc.any(failed).as_py():  # written by an older version: not done
                    info.failed_ids = frozenset(t.column(0).filter(failed).to_pylist())
                for k in ("n_stalls", "n_curves"):
                    int(meta[k])
                for k in ("chunks", "sources"):
                    if not isinstance(json.loads(meta[k]), list):
                        raise ValueError(f"footer key {k} is not a list")
        info.num_rows, info.meta = md.num_rows, meta
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException, ValueError, KeyError, UnicodeDecodeError) as e:
        info.error = f"{type(e).__name__}: {e}"
    cache[key] = info
    return info


def _key(path: Path) -> tuple:
    st = os.stat(path)
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def _prefetch(files: list[tuple[Path, str, str]], cache: dict) -> None:
    """Inspect many new files at once: footer reads are I/O-bound and release the GIL."""
    todo = []
    for f in files:
        try:
            if _key(f[0]) not in cache:
                todo.append(f)
        except FileNotFoundError:
            pass  # gone since listed; the caller's own inspect() reports it
    if len(todo) < 16:
        return
    with ThreadPoolExecutor(_THREADS) as pool:
        for f in [pool.submit(inspect, p, name, stem, cache) for p, name, stem in todo]:
            try:
                f.result()
            except FileNotFoundError:
                pass


def _evaluate(
    files: dict[str, dict[str, Path]], cache: dict
) -> tuple[dict[str, Unit], list[Path], list[Path]]:
    """Committed units among ``files`` (table -> stem -> path), plus paths to
    quarantine (corrupt or inconsistent) and to delete (uncommitted, stale or
    superseded by a compact unit)."""
    units: dict[str, Unit] = {}
    quarantine: list[Path] = []
    delete: list[Path] = []
    for stem, path in files["runs"].items():
        info = inspect(path, "runs", stem, cache)
        if info.error:  # the unit's other files go with it (kept for inspection)
            quarantine.append(path)
            quarantine.extend(files[n][stem] for n in ("stalls", "curves") if stem in files[n])
            continue
        m = info.meta
        unit = Unit(
            stem,
            {"runs": info},
            int(m["n_stalls"]),
            int(m["n_curves"]),
            json.loads(m["chunks"]),
            json.loads(m["sources"]),
        )
        broken = False
        for name, need in (("stalls", unit.n_stalls), ("curves", unit.n_curves)):
            p = files[name].get(stem)
            if p is None:
                broken |= need > 0
            elif need == 0:
                delete.append(p)  # left over from an earlier write of this chunk
            else:
                other = inspect(p, name, stem, cache)
                if other.error or other.num_rows != need:
                    broken = True
                unit.files[name] = other
        if broken:  # the runs file promises rows that are not there: redo the unit
            quarantine.extend(i.path for i in unit.files.values())
        else:
            units[stem] = unit
    superseded = {src for u in units.values() for src in u.sources} & units.keys()
    for stem in superseded:
        delete.extend(i.path for i in units.pop(stem).files.values())
    handled = set(quarantine) | set(delete)
    for name in ("stalls", "curves"):
        for stem, p in files[name].items():
            if stem not in units and p not in handled:
                delete.append(p)  # orphan: its runs file never got written
    return units, quarantine, delete


def scan(out: Path, cache: dict) -> Scan:
    """Classify every file of the results directory ``out`` without changing any."""
    tmp: list[Path] = []
    hidden: list[tuple[str, str, str, Path]] = []
    visible: dict[str, dict[str, Path]] = {name: {} for name in TABLES}
    for name in TABLES:
        d = out / name
        if not d.is_dir():
            continue
        with os.scandir(d) as it:
            for entry in it:
                n = entry.name
                if n.startswith(TMP_PREFIX):
                    tmp.append(Path(entry.path))
                elif m := HIDDEN.match(n):
                    hidden.append((name, m[1], m[2], Path(entry.path)))
                elif n.endswith(".parquet") and entry.is_file():
                    visible[name][n[: -len(".parquet")]] = Path(entry.path)
    if out.is_dir():
        tmp += [p for p in out.iterdir() if p.name.startswith(TMP_PREFIX)]
    _prefetch([(p, n, stem) for n, v in visible.items() for stem, p in v.items()], cache)
    committed, _, _ = _evaluate(visible, cache) if hidden else ({}, [], [])
    files = {name: dict(v) for name, v in visible.items()}
    hidden_delete, conflicts = [], []
    for name, unit, stem, path in hidden:
        if unit in committed:
            hidden_delete.append(path)
        elif stem in files[name]:
            conflicts.append(path)  # a visible file took its name back: keep that one
        else:
            files[name][stem] = path
    units, quarantine, delete = _evaluate(files, cache)
    restore = [
        (i.path, i.path.with_name(f"{u.stem}.parquet"))
        for u in units.values()
        for i in u.files.values()
        if i.path.name != f"{u.stem}.parquet"
    ]
    seen = {str(i.path) for u in units.values() for i in u.files.values()}
    for key in [k for k in cache if k[0] not in seen]:
        del cache[key]
    return Scan(units, tmp, hidden_delete, restore, quarantine + conflicts, delete)


def dedupe_plan(units: list[tuple[str, pa.Array]]) -> dict[str, np.ndarray] | None:
    """Rows to keep per unit so each run_id appears once: the first unit in the
    given order wins. None when no run_id repeats (the usual case, checked fast)."""
    total = sum(len(ids) for _, ids in units)
    if total == 0:
        return None
    everything = pa.chunked_array([ids for _, ids in units], type=pa.string())
    if pc.count_distinct(everything).as_py() == total:
        return None
    seen: set[str] = set()
    plan = {}
    for stem, ids in units:
        mask = np.ones(len(ids), dtype=bool)
        for i, rid in enumerate(ids.to_pylist()):
            if rid in seen:
                mask[i] = False
            seen.add(rid)
        plan[stem] = mask
    return plan


def read_unit_table(
    unit: Unit, name: str, columns: list[str] | None, plan: dict[str, np.ndarray] | None
) -> pa.Table:
    """One table of one unit, without the rows ``plan`` (see ``dedupe_plan``) drops."""
    mask = None if plan is None else plan[unit.stem]
    filtering = mask is not None and not mask.all()
    cols = columns
    if filtering and columns is not None and "run_id" not in columns:
        cols = [*columns, "run_id"]
    with pq.ParquetFile(unit.files[name].path, page_checksum_verification=True) as pf:
        t = pf.read(columns=cols).replace_schema_metadata(None)
    if filtering:
        if name == "runs":
            t = t.filter(pa.array(mask))
        else:  # drop rows of runs whose kept copy is in another unit
            ids = unit.files["runs"].run_ids.to_numpy(zero_copy_only=False)
            lost = sorted(set(ids[~mask]) - set(ids[mask]))
            t = t.filter(pc.invert(pc.is_in(t.column("run_id"), pa.array(lost, pa.string()))))
        if columns is not None:
            t = t.select(columns)
    return t


def _retrying(fn: Callable[[], Any], out: Path) -> Any:
    for _ in range(5):  # files may vanish under us while a writer compacts: rescan
        try:
            return fn()
        except FileNotFoundError:
            continue
    raise StoreError(f"{out} kept changing while being read; try again")


def committed(s: Scan) -> tuple[list[Unit], dict[str, np.ndarray] | None]:
    """The committed units in name order and their ``dedupe_plan``."""
    units = [s.units[stem] for stem in sorted(s.units)]
    return units, dedupe_plan([(u.stem, u.files["runs"].run_ids) for u in units])


def _read(out_dir: str | os.PathLike, name: str, columns, cache) -> pa.Table:
    out = Path(out_dir)
    schema = SCHEMAS[name]
    if columns is not None:
        unknown = [c for c in columns if c not in schema.names]
        if unknown:
            raise ValueError(f"unknown {name} column(s) {unknown}; valid: {schema.names}")
        schema = pa.schema([schema.field(c) for c in columns])

    def read() -> pa.Table:
        units, keep = committed(scan(out, {} if cache is None else cache))
        units = [u for u in units if name in u.files]
        with ThreadPoolExecutor(_THREADS) as pool:
            parts = list(pool.map(lambda u: read_unit_table(u, name, columns, keep), units))
        return pa.concat_tables(parts).cast(schema) if parts else schema.empty_table()

    return _retrying(read, out)


def read_runs(
    out_dir: str | os.PathLike, columns: list[str] | None = None, *, _cache=None
) -> pa.Table:
    """All committed runs of a results directory as one table (``RUNS_SCHEMA``).

    Never changes a file. Ignores temporaries, corrupt files and uncommitted
    chunks, and returns one row per run_id even in the middle of a crashed
    compaction.
    """
    return _read(out_dir, "runs", columns, _cache)


def read_stalls(
    out_dir: str | os.PathLike, columns: list[str] | None = None, *, _cache=None
) -> pa.Table:
    """All stalls of committed runs (``STALLS_SCHEMA``); see :func:`read_runs`."""
    return _read(out_dir, "stalls", columns, _cache)


def read_curves(
    out_dir: str | os.PathLike, columns: list[str] | None = None, *, _cache=None
) -> pa.Table:
    """All curve points of committed runs (``CURVES_SCHEMA``); see :func:`read_runs`."""
    return _read(out_dir, "curves", columns, _cache)


def _lock_holder(out: Path) -> dict[str, Any] | None:
    """Who holds (or, if it died, last held) the lock, without touching the lock."""
    try:
        text = (out / LOCK).read_text().strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {"raw": text}
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder["pid"]), 0)
            holder["alive"] = True
        except ProcessLookupError:
            holder["alive"] = False
        except (PermissionError, KeyError, ValueError):
            holder["alive"] = None
    return holder


def manifest_version(manifest: Mapping[str, Any]) -> str | None:
    """The package version whose run ids a directory holds (older manifests: the
    sweepengine version recorded at creation)."""
    change = manifest.get("version_change")
    if isinstance(change, dict):
        return change.get("to")
    return manifest.get("package_version") or (manifest.get("versions") or {}).get("sweepengine")


def status(out_dir: str | os.PathLike, *, _cache=None) -> dict[str, Any]:
    """A summary of a results directory, read-only.

    Keys: ``out_dir``, ``spec_hash``, ``sweep`` (spec name if any), ``created``,
    ``updated``, ``package_version`` and ``run_id_scheme`` (whose run ids the
    directory holds), ``previous_versions`` (results of earlier versions kept
    under ``OUT/previous/``), ``runs_done`` (distinct run ids done: ``failed``
    rows of older versions excluded), ``rows``, ``failed_runs`` and ``failed``
    (failure records of runs not done: chunk, runs, error, attempts),
    ``by_status`` (count per run status),
    ``tables`` (per table: ``parts``, ``rows``, ``bytes`` of committed files),
    ``pending_cleanup`` (files the next :meth:`Store.recover` will touch),
    ``quarantined`` (files in quarantine) and ``lock`` (holder pid/host/since
    and, on the same host, whether it is alive; None when unlocked).
    """
    out = Path(out_dir)
    manifest = json.loads((out / MANIFEST).read_text())

    def read() -> tuple[Scan, pa.Table]:
        s = scan(out, {} if _cache is None else _cache)
        units, keep = committed(s)
        parts = [read_unit_table(u, "runs", ["status"], keep) for u in units]
        empty = pa.table({"status": pa.array([], pa.string())})
        return s, pa.concat_tables(parts) if parts else empty

    s, statuses = _retrying(read, out)
    by_status = dict.fromkeys(RUN_STATUSES, 0)
    for v in statuses.column("status").value_counts().to_pylist():
        by_status[v["values"]] = by_status.get(v["values"], 0) + v["counts"]
    tables = {}
    for name in TABLES:
        infos = [u.files[name] for u in s.units.values() if name in u.files]
        tables[name] = {
            "parts": len(infos),
            "rows": sum(i.num_rows for i in infos),
            "bytes": sum(i.size for i in infos),
        }
    q = out / QUARANTINE
    done: set[str] = set()
    for u in s.units.values():
        info = u.files["runs"]
        done.update(set(info.run_ids.to_pylist()) - info.failed_ids)
    failures = []
    for rec in read_failures(out):
        left = [r for r in rec["run_ids"] if r not in done]
        if left:
            failures.append({
                "chunk_id": rec.get("chunk_id"), "runs": len(left), "error": rec.get("error"),
                "attempts": rec.get("attempts"), "at": rec.get("at"),
            })  # fmt: skip
    spec = manifest.get("spec") or {}
    sweep = spec.get("name", spec.get("sweep")) if isinstance(spec, dict) else None
    if isinstance(sweep, dict):
        sweep = sweep.get("name")
    return {
        "out_dir": str(out),
        "spec_hash": manifest.get("spec_hash"),
        "sweep": sweep,
        "created": manifest.get("created"),
        "updated": manifest.get("updated"),
        "package_version": manifest_version(manifest),
        "run_id_scheme": manifest.get("run_id_scheme"),
        "previous_versions": manifest.get("previous_versions", []),
        "runs_done": len(done),
        "rows": statuses.num_rows,
        "failed_runs": sum(f["runs"] for f in failures),
        "failed": failures,
        "by_status": by_status,
        "tables": tables,
        "pending_cleanup": {
            "tmp": len(s.tmp),
            "hidden": len(s.hidden_delete) + len(s.hidden_restore),
            "remove": len(s.delete),
            "quarantine": len(s.quarantine),
        },
        "quarantined": sum(1 for p in q.rglob("*") if p.is_file()) if q.exists() else 0,
        "lock": _lock_holder(out),
    }


# -- verification of whole files (page checksums, and the digest recorded at write) --


def stat_key(path: Path) -> tuple[int, int]:
    """(size, mtime_ns): what the verified log remembers a checked file by."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, expect_sha: str | None = None) -> tuple[str | None, str]:
    """Read every page of a Parquet file with page checksum verification.

    Returns (error or None, sha256 of the bytes). With ``expect_sha`` (the digest
    recorded when the file was written), any differing byte is an error too, so
    a flip in the footer's statistics, which no page checksum covers, is caught.
    """
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if expect_sha is not None and sha != expect_sha:
        return f"sha256 {sha[:12]} differs from the {expect_sha[:12]} recorded at write", sha
    if data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        return "not a Parquet file (magic bytes)", sha
    try:
        with pq.ParquetFile(pa.BufferReader(data), page_checksum_verification=True) as pf:
            for i in range(pf.metadata.num_row_groups):
                pf.read_row_group(i)
    except (OSError, pa.ArrowException, ValueError, KeyError, IndexError) as e:
        return f"{type(e).__name__}: {e}", sha
    return None, sha


def read_verified(out: Path) -> dict[str, tuple[int, int, str]]:
    """The verified log: table/name -> (size, mtime_ns, sha256); later lines win.

    A torn last line (a crash while appending) is ignored: its file is simply
    verified again.
    """
    got: dict[str, tuple[int, int, str]] = {}
    try:
        text = (out / VERIFIED).read_text()
    except FileNotFoundError:
        return got
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and len(parts[3]) == 64:
            with contextlib.suppress(ValueError):
                got[parts[0]] = (int(parts[1]), int(parts[2]), parts[3])
    return got


def append_verified(out: Path, entries: Mapping[str, tuple[int, int, str]]) -> None:
    """Append entries to the verified log (one write; not fsynced: losing it only
    means verifying those files again)."""
    if not entries:
        return
    text = "".join(f"{k}\t{s}\t{m}\t{h}\n" for k, (s, m, h) in entries.items())
    fd = os.open(out / VERIFIED, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def rewrite_verified(out: Path, entries: Mapping[str, tuple[int, int, str]]) -> None:
    tmp = out / f"{TMP_PREFIX}{uuid.uuid4().hex}.log.partial"
    with open(tmp, "w") as f:
        f.write("".join(f"{k}\t{s}\t{m}\t{h}\n" for k, (s, m, h) in sorted(entries.items())))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out / VERIFIED)
    fsync_dir(out)


# -- failure records ---------------------------------------------------------------


def read_failures(out: Path) -> list[dict[str, Any]]:
    """Every failure record (``OUT/failed/<chunk_id>.json``), by chunk id."""
    d = out / FAILED
    if not d.is_dir():
        return []
    records = []
    for p in sorted(d.glob("*.json")):
        with contextlib.suppress(OSError, json.JSONDecodeError):
            rec = json.loads(p.read_text())
            if isinstance(rec, dict) and isinstance(rec.get("run_ids"), list):
                records.append(rec)
    return records
