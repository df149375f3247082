"""Docs that run: every shell and Python block in README.md and docs/*.md is executed.

Blocks run in a scratch directory holding ``sweeps/`` (a link to the repository's),
a finished quick sweep in ``out/quick`` (also reachable as ``sweep-out/quick`` and
``OUT``), in document order within each file. Python blocks run as scripts in a
fresh interpreter; shell blocks with ``bash -e`` and this environment's ``bin``
first on PATH. An HTML comment on the line before a block changes that:

- ``<!-- not-run: REASON -->``: not executed (the test is skipped with the reason);
- ``<!-- slow -->``: executed only with ``-m slow``;
- ``<!-- slurm-example: NAME -->``: a block of the worked SLURM example, run by
  ``tests/test_slurm.py`` on a real SLURM (skipped here);
- ``<!-- output-of: COMMAND -->`` before a ``text`` block: COMMAND runs and its
  output must match the block line by line, ``...`` standing for any text.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT = 900  # a cold compile fits; conftest.compiled compiles first anyway
RUNNABLE = {"python", "bash", "sh"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
MARK = re.compile(r"<!--\s*(not-run|slow|output-of|slurm-example)\s*:?\s*(.*?)\s*-->\s*$")

pytestmark = pytest.mark.usefixtures("compiled")


class Block:
    def __init__(self, path: Path, line: int, lang: str, body: str, mark: tuple | None):
        self.path, self.line, self.lang, self.body, self.mark = path, line, lang, body, mark

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mk = MARK.search(before)
        mark = (mk.group(1), mk.group(2)) if mk else None
        lang = m.group(1)
        if lang in RUNNABLE or (mark and mark[0] == "output-of"):
            out.append(Block(path, line, lang, m.group(2), mark))
    return out


ALL = [b for path in DOCS for b in blocks(path)]


def _params():
    for b in ALL:
        marks = []
        if b.mark and b.mark[0] == "not-run":
            marks.append(pytest.mark.skip(reason=f"not-run: {b.mark[1]}"))
        elif b.mark and b.mark[0] == "slurm-example":  # needs a batch system
            marks.append(pytest.mark.skip(reason="run by tests/test_slurm.py on a real SLURM"))
        if b.mark and b.mark[0] == "slow":
            marks.append(pytest.mark.slow)
        yield pytest.param(b, id=b.id, marks=marks)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[v] = "1"
    return env


def _sh(cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-e", "-c", cmd], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A scratch directory with ``sweeps/`` and a finished quick sweep."""
    d = tmp_path_factory.mktemp("docs")
    (d / "sweeps").symlink_to(ROOT / "sweeps", target_is_directory=True)
    proc = _sh("sweepengine run sweeps/quick.toml --out out/quick -q", d)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (d / "sweep-out").mkdir()
    (d / "sweep-out" / "quick").symlink_to(d / "out" / "quick", target_is_directory=True)
    (d / "OUT").symlink_to(d / "out" / "quick", target_is_directory=True)
    return d


def test_every_block_is_found_and_known():
    langs = {b.lang for b in ALL}
    assert {"python", "bash"} <= langs
    ids = [b.id for b in ALL]
    assert len(ids) == len(set(ids)) and len(ids) >= 20


def _matches(expected: str, actual: str) -> bool:
    exp = [line.rstrip() for line in expected.strip("\n").splitlines()]
    act = [line.rstrip() for line in actual.strip("\n").splitlines()]
    if len(exp) != len(act):
        return False
    for e, a in zip(exp, act, strict=True):
        pattern = ".*".join(re.escape(part) for part in e.split("..."))
        if not re.fullmatch(pattern, a):
            return False
    return True


@pytest.mark.parametrize("block", list(_params()))
def test_doc_block_runs(block: Block, workdir: Path):
    if block.mark and block.mark[0] == "output-of":
        proc = _sh(block.mark[1], workdir)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert _matches(block.body, proc.stdout), (
            f"{block.id}: the output of `{block.mark[1]}` changed:\n{proc.stdout}"
        )
        return
    if block.lang == "python":
        script = workdir / f"snippet_{block.path.stem}_{block.line}.py"
        script.write_text(block.body)
        proc = subprocess.run([sys.executable, script.name], cwd=workdir, env=_env(),
                              capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    else:
        proc = _sh(block.body, workdir)
    assert proc.returncode == 0, f"{block.id} failed:\n{proc.stdout}\n{proc.stderr}"


def test_marks_are_honoured(tmp_path):
    md = tmp_path / "x.md"
    md.write_text(
        "<!-- not-run: needs a SLURM cluster -->\n```bash\nsbatch x\n```\n\n"
        "<!-- slow -->\n```python\nprint(1)\n```\n\n```json\n{}\n```\n"
    )
    found = blocks(md)
    assert [(b.lang, b.mark) for b in found] == [
        ("bash", ("not-run", "needs a SLURM cluster")),
        ("python", ("slow", "")),
    ]
    assert _matches("a ... c\nd", "a bb c\nd") and not _matches("a ... c", "a b d")
    shutil.rmtree(tmp_path, ignore_errors=True)
