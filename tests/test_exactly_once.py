"""Exactly once at the store level: crashes at every step, flipped bytes, version changes.

Real files under tmp_path and, for crashes, real processes: a child process
writes chunks and compacts, and exits (``os._exit``, no clean-up of any kind)
just before its K-th file-system step (rename, unlink, fsync, link, truncate,
write); the parent then resumes as a sweep would (the spec's chunks whose run
ids are not done are written again) and compares every table with a clean
run's, row for row.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from sweepengine import _version
from sweepengine.store import directory as st
from tests.test_store import SPEC, chunk, rows

REPO = Path(__file__).resolve().parents[1]
# (chunk_id, runs); c1 is written twice (a retried chunk replaces its part)
PLAN = [("c0", 3), ("c1", 2), ("c2", 4), ("c1", 2), ("c3", 1)]
TABLES = ("runs", "stalls", "curves")


def tables_of(cid: str, n: int) -> dict[str, pa.Table]:
    r, s, c = chunk(cid, n)
    return {"runs": r, "stalls": s, "curves": c}


def expected_tables() -> dict[str, pa.Table]:
    parts = [tables_of(cid, n) for cid, n in dict(PLAN).items()]
    return {t: pa.concat_tables([p[t] for p in parts]) for t in TABLES}


def assert_equal_to_clean(out: Path) -> None:
    exp = expected_tables()
    for name, read in (("runs", st.read_runs), ("stalls", st.read_stalls),
                       ("curves", st.read_curves)):  # fmt: skip
        assert rows(read(out)) == rows(exp[name]), name
    # a plain reader sees exactly one row per run: nothing stray, nothing doubled
    ids = ds.dataset(out / "runs", format="parquet").to_table(["run_id"])["run_id"].to_pylist()
    assert sorted(ids) == sorted(exp["runs"]["run_id"].to_pylist())


def resume(out: Path, compact: bool = True) -> None:
    """What a sweep does on restart: write every chunk with a run not done, compact."""
    store = st.open_store(out, SPEC)
    with store.lock():
        done = store.done_run_ids()
        for cid, n in dict(PLAN).items():
            t = tables_of(cid, n)
            if not set(t["runs"]["run_id"].to_pylist()) <= done:
                store.write_chunk(cid, t["runs"], t["stalls"], t["curves"])
        if compact:
            store.compact(target_rows=1000)


CHILD = textwrap.dedent("""
    import os, sys
    import pyarrow as pa
    from sweepengine.store import directory as st

    out, crash_at, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    spec = {spec!r}
    plan = {plan!r}
    with pa.ipc.open_file(data) as f:
        t = f.read_all()
    count = 0

    def counted(fn):
        def step(*a, **k):
            global count
            count += 1
            if count == crash_at:
                os._exit(77)  # a crash: no flush, no finally, no atexit
            return fn(*a, **k)
        return step

    store = st.open_store(out, spec)
    with store.lock():
        for name in ("replace", "rename", "unlink", "fsync", "link", "ftruncate", "write"):
            setattr(os, name, counted(getattr(os, name)))
        for cid, n in plan:
            mine = lambda name: t.filter(pa.compute.equal(t["chunk"], cid + "/" + name))
            tabs = {{}}
            for name in ("runs", "stalls", "curves"):
                col = mine(name)["blob"]
                tabs[name] = pa.ipc.open_stream(col[0].as_py()).read_all()
            store.write_chunk(cid, tabs["runs"], tabs["stalls"], tabs["curves"])
        store.compact(target_rows=1000)
    print("steps", count)
""")


@pytest.fixture(scope="module")
def child(tmp_path_factory) -> tuple[Path, Path]:
    """The child script and its input: every chunk's tables as Arrow IPC blobs."""
    root = tmp_path_factory.mktemp("child")
    keys, blobs = [], []
    for cid, n in dict(PLAN).items():
        for name, tab in tables_of(cid, n).items():
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, tab.schema) as w:
                w.write_table(tab)
            keys.append(f"{cid}/{name}")
            blobs.append(sink.getvalue().to_pybytes())
    data = root / "chunks.arrow"
    table = pa.table({"chunk": keys, "blob": pa.array(blobs, pa.binary())})
    with pa.ipc.new_file(data, table.schema) as w:
        w.write_table(table)
    script = root / "child.py"
    script.write_text(CHILD.format(spec=SPEC, plan=PLAN))
    return script, data


def run_child(child, out: Path, crash_at: int) -> subprocess.CompletedProcess:
    script, data = child
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(script), str(out), str(crash_at), str(data)],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def test_crash_at_every_step_of_writing_and_compacting(child, tmp_path):
    clean = run_child(child, tmp_path / "clean", 0)
    assert clean.returncode == 0, clean.stderr
    n_steps = int(clean.stdout.split()[-1])
    assert n_steps > 40  # 5 chunk writes of 3 files and a compaction: many steps
    assert_equal_to_clean(tmp_path / "clean")

    def crash_and_resume(k: int) -> None:
        out = tmp_path / f"crash-{k}"
        proc = run_child(child, out, k)
        assert proc.returncode == 77, (k, proc.stderr)
        resume(out)
        assert_equal_to_clean(out)
        assert not [p for t in TABLES if (out / t).is_dir() for p in (out / t).glob(".*")], k
        shutil.rmtree(out)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:  # one child per core
        for f in [pool.submit(crash_and_resume, k) for k in range(1, n_steps + 1)]:
            f.result()


# -- flipped bytes -----------------------------------------------------------------


def write_clean(out: Path) -> None:
    store = st.open_store(out, SPEC)
    with store.lock():
        for cid, n in dict(PLAN).items():
            t = tables_of(cid, n)
            store.write_chunk(cid, t["runs"], t["stalls"], t["curves"])


def offsets(path: Path) -> dict[str, tuple[int, bool]]:
    """Byte offsets worth flipping -> (offset, covered by page checksums or the magic
    bytes): inside data and dictionary pages of several columns, the middle of
    column chunks (page headers: their statistics are covered only by the digest
    recorded at write), the footer (statistics, key-value metadata, length) and the
    magic bytes."""
    md = pq.ParquetFile(path).metadata
    size = path.stat().st_size
    out = {"magic head": (1, True), "magic tail": (size - 2, True),
           "footer length": (size - 6, False),
           "footer middle": (size - 8 - md.serialized_size // 2, False)}  # fmt: skip
    rg = md.row_group(0)
    for i in (0, rg.num_columns // 2, rg.num_columns - 1):
        col = rg.column(i)
        first = col.dictionary_page_offset or col.data_page_offset
        end = first + col.total_compressed_size
        out[f"data page body of {col.path_in_schema}"] = (end - 2, True)
        out[f"middle of {col.path_in_schema}"] = (first + col.total_compressed_size // 2, False)
        if col.dictionary_page_offset:
            out[f"dictionary page body of {col.path_in_schema}"] = (col.data_page_offset - 2, True)
    return out


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


@pytest.mark.parametrize("forget", [False, True], ids=["recorded", "unrecorded"])
@pytest.mark.parametrize("table", TABLES)
def test_flipped_byte_is_detected_and_redone(tmp_path, table, forget):
    """``recorded``: the store wrote the file and logged its sha256; ``unrecorded``:
    the verified log is gone (say, a directory from an older version), so only the
    page checksums and the footer can tell."""
    clean = tmp_path / "clean"
    write_clean(clean)
    victim = f"{table}/part-c2.parquet"
    lost = set(tables_of("c2", 4)["runs"]["run_id"].to_pylist())
    for what, (offset, by_pages) in offsets(clean / victim).items():
        if forget and not by_pages:
            continue  # header or footer bytes: only the recorded digest is sure to see them
        out = tmp_path / "flipped"
        shutil.copytree(clean, out)
        if forget:
            (out / "verified.log").unlink()
        flip(out / victim, offset)
        store = st.open_store(out, SPEC)
        done = store.done_run_ids()  # takes the lock: recovery verifies, quarantines
        assert not lost & done, what
        assert len(done) == 10 - 4
        q = sorted(p.parent.name for p in (out / "quarantine").rglob("*.corrupt"))
        assert q == ["curves", "runs", "stalls"], (what, q)  # the whole unit
        resume(out, compact=False)
        assert_equal_to_clean(out)
        for t in TABLES:  # the part written again is byte for byte the clean one
            assert (out / t / "part-c2.parquet").read_bytes() == (
                clean / t / "part-c2.parquet"
            ).read_bytes(), (what, t)
        shutil.rmtree(out)


def test_verification_is_remembered(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_clean(out)
    calls = []
    real = st.verify_file
    monkeypatch.setattr(st, "verify_file", lambda *a: calls.append(a[0]) or real(*a))
    st.open_store(out, SPEC).done_run_ids()
    assert calls == []  # written here: logged with its digest when written
    (out / "verified.log").unlink()
    st.open_store(out, SPEC).done_run_ids()
    assert len(calls) == 4 * 3  # every file read once ...
    st.open_store(out, SPEC).done_run_ids()
    assert len(calls) == 4 * 3  # ... and not again
    os.utime(out / "runs" / "part-c0.parquet", ns=(1, 1))  # touched: checked again
    st.open_store(out, SPEC).done_run_ids()
    assert [p.name for p in calls[12:]] == ["part-c0.parquet"]


# -- package versions ------------------------------------------------------------------


@pytest.fixture
def old_version(monkeypatch):
    """Run ids and manifests as an older sweepengine would write them."""
    monkeypatch.setattr(_version, "package_version", lambda: "0.0.9")
    yield "0.0.9"
    monkeypatch.undo()


def test_manifest_records_version_and_id_scheme(tmp_path):
    write_clean(tmp_path / "out")
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["package_version"] == _version.package_version()
    assert m["run_id_scheme"] == _version.RUN_ID_SCHEME
    info = st.status(tmp_path / "out")
    assert info["package_version"] == m["package_version"] and info["previous_versions"] == []


def test_other_version_is_refused_or_moved_aside(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(_version, "package_version", lambda: "0.0.9")
    write_clean(out)
    monkeypatch.undo()
    now = _version.package_version()
    with pytest.raises(st.VersionMismatchError) as e:
        st.open_store(out, SPEC)
    msg = str(e.value)
    assert "0.0.9" in msg and now in msg and "--allow-version-change" in msg
    assert "new output directory" in msg
    assert len(st.read_runs(out)) == 10  # refused: nothing moved
    st.open_store(out)  # spec=None (status, analysis): any version
    store = st.open_store(out, SPEC, allow_version_change=True)
    assert store.done_run_ids() == set()  # old rows are never this version's
    assert len(st.read_runs(out)) == 0
    old = out / "previous" / "0.0.9"
    assert len(st.read_runs(old)) == 10 and st.status(old)["package_version"] == "0.0.9"
    m = json.loads((out / "manifest.json").read_text())
    assert m["package_version"] == now and "version_change" not in m
    assert [p["version"] for p in m["previous_versions"]] == ["0.0.9"]
    st.open_store(out, SPEC)  # now this version's directory


def test_interrupted_version_change_is_finished(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(_version, "package_version", lambda: "0.0.9")
    write_clean(out)
    monkeypatch.undo()
    real, moved = os.replace, []

    def crash_after_first_table(src, dst):
        if Path(src).name in TABLES and moved:
            raise KeyboardInterrupt  # as if killed between two renames
        moved.append(src)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", crash_after_first_table)
    with pytest.raises(KeyboardInterrupt):
        st.open_store(out, SPEC, allow_version_change=True)
    monkeypatch.undo()
    assert "version_change" in json.loads((out / "manifest.json").read_text())
    st.open_store(out, SPEC).done_run_ids()  # the next lock finishes the move
    m = json.loads((out / "manifest.json").read_text())
    assert "version_change" not in m and m["package_version"] == _version.package_version()
    old = out / "previous" / "0.0.9"
    assert len(st.read_runs(old)) == 10 and len(st.read_stalls(old)) == 20
    assert len(st.read_runs(out)) == 0


# -- failure records ---------------------------------------------------------------------


def test_failures_are_recorded_never_done_and_dropped_once_done(tmp_path):
    out = tmp_path / "out"
    store = st.open_store(out, SPEC)
    t = tables_of("c0", 3)
    ids = t["runs"]["run_id"].to_pylist()
    store.write_failure("c0", ids, "OSError: disk on fire", 3)
    assert store.done_run_ids() == set() and store.failed_run_ids() == set(ids)
    info = st.status(out)
    assert info["failed_runs"] == 3 and info["runs_done"] == 0
    [rec] = info["failed"]
    assert rec["error"] == "OSError: disk on fire" and rec["attempts"] == 3
    with store.lock():
        store.write_chunk("c0", t["runs"], t["stalls"], t["curves"])
    assert store.failed_run_ids() == set()
    store.prune_failures()
    assert not list((out / "failed").glob("*.json"))


def test_failed_rows_of_older_versions_do_not_count_as_done(tmp_path):
    out = tmp_path / "out"
    store = st.open_store(out, SPEC)
    r, s, c = chunk("c0", 3, status="failed", error="MemoryError")
    with store.lock():
        store.write_chunk("c0", r, s, c)
    assert store.done_run_ids() == set()
    assert st.status(out)["runs_done"] == 0 and st.status(out)["by_status"]["failed"] == 3
