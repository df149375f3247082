"""``sweepengine`` command line: run, status, summary, report, compact, warmup,
selfcheck.

sweepengine run SPEC [--out DIR] [--scheduler ADDR | --cluster slurm|pbs [--jobs N]]
                     [--workers N] [--threads T] [--chunk N] [-q] [--no-report]
sweepengine status DIR [--json]
sweepengine summary DIR
sweepengine report DIR
sweepengine compact DIR
sweepengine warmup [--cache-dir DIR] [--nonlinear]
sweepengine selfcheck

Exit codes: 0 success, 1 a sweep left incomplete or a failed self-check, 2 a
usage error (one line on stderr, before anything starts), 130 interrupted (Ctrl-C).
This module imports only the standard library at start; each command imports
what it needs, and only ``warmup`` and ``selfcheck`` load Numba in this process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

log = logging.getLogger("sweepengine")

MANIFEST = "manifest.json"  # = sweepengine.store.parts.MANIFEST
CONNECT_TIMEOUT_S = 5.0  # --scheduler: how long to try before calling it unreachable


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2)."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


# -- run ---------------------------------------------------------------------------


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a directory")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"--out {out}: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK) and not out.exists():
                raise UsageError(f"--out {out}: cannot create it, {parent} is not writable")
            break


def _check_scheduler(address: str) -> None:
    """One TCP connection to the scheduler, with a short timeout: an address that
    cannot be reached is a usage error, before anything starts."""
    import socket
    from urllib.parse import urlsplit

    scheme = address.split("://", 1)[0] if "://" in address else "tcp"
    if scheme not in ("tcp", "tls"):
        return  # inproc://, ucx://, ...: leave it to Dask
    try:
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise UsageError(f"--scheduler {address}: not an address ({e})") from None
    if not host or port is None:
        raise UsageError(f"--scheduler {address}: expected tcp://HOST:PORT")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {reason}") from None
    if scheme == "tcp":  # something listens: is it a Dask scheduler? (tls: needs credentials)
        import asyncio

        async def handshake() -> None:
            from distributed.comm import connect

            comm = await connect(f"tcp://{host}:{port}", timeout=CONNECT_TIMEOUT_S)
            await comm.close()

        try:  # the handshake itself has no timeout in distributed: bound it here
            asyncio.run(asyncio.wait_for(handshake(), 2 * CONNECT_TIMEOUT_S))
        except Exception as e:  # refused, timed out, or not speaking Dask's protocol
            raise UsageError(
                f"cannot reach the Dask scheduler at {address}: no Dask handshake "
                f"({type(e).__name__})"
            ) from None


def _check_run_args(args: argparse.Namespace) -> None:
    if args.jobs is not None and not args.cluster:
        raise UsageError("--jobs needs --cluster slurm|pbs")
    if args.scheduler and args.cluster:
        raise UsageError("--scheduler and --cluster exclude each other")
    if args.scheduler or args.cluster:
        local = [o for o, v in (("--workers", args.workers), ("--threads", args.threads),
                                ("--in-process", args.in_process is True),
                                ("--processes", args.in_process is False)) if v]  # fmt: skip
        if local:
            where = "--scheduler" if args.scheduler else "--cluster"
            raise UsageError(f"{' and '.join(local)} set the embedded cluster: not with {where}")


def _resume_command(args: argparse.Namespace, out: Path) -> str:
    import shlex

    cmd = ["sweepengine", "run", args.spec, "--out", str(out)]
    for opt in ("scheduler", "cluster", "jobs", "workers", "threads", "chunk"):
        value = getattr(args, opt)
        if value is not None:
            cmd += [f"--{opt}", str(value)]
    return shlex.join(cmd)


class _Interrupt:
    """Ctrl-C during a sweep: the first one raises KeyboardInterrupt in the main thread
    (the sweep then unwinds: the embedded cluster closes, the lock is released) and
    silences Dask's shutdown chatter; a second one exits at once."""

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        self.hit = False
        return self

    def _handle(self, signum, frame):
        if self.hit:
            os._exit(130)
        self.hit = True
        for name in ("distributed", "tornado", "asyncio", "dask_jobqueue"):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)
        return False


def _close_progress_bars() -> None:
    """Close the interrupted sweep's progress bar now, not at exit after our last line."""
    try:
        from tqdm import tqdm

        for bar in list(getattr(tqdm, "_instances", ())):
            bar.close()
    except Exception:  # cosmetic only
        pass


def _cmd_run(args: argparse.Namespace) -> int:
    from .sweep import SpecError, load_spec

    _check_run_args(args)
    try:
        spec = load_spec(args.spec)
    except SpecError as e:
        return _fail(str(e))
    except FileNotFoundError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot read {args.spec}: {e.strerror or e}")
    out = Path(args.out or Path("sweep-out") / spec.name)
    _check_out(out)
    if args.scheduler:
        _check_scheduler(args.scheduler)
    from .store import SpecMismatchError, StoreLockedError, VersionMismatchError
    from .sweep import run_sweep

    print(spec.summary())
    print(f"results -> {out}")
    client = cluster = None
    with _Interrupt():
        try:
            if args.cluster:
                from .sweep.clusters import batch_cluster

                try:
                    cluster = batch_cluster(args.cluster, jobs=args.jobs or 1)
                except ImportError as e:
                    return _fail(str(e))
                from distributed import Client

                client = Client(cluster)
            report = run_sweep(
                spec, out, client=client, scheduler=args.scheduler, n_workers=args.workers,
                threads_per_worker=args.threads or 1, max_chunk=args.chunk,
                progress=not args.quiet, retries=args.retries, retry_failed=args.retry_failed,
                allow_version_change=args.allow_version_change, in_process=args.in_process,
            )  # fmt: skip
        except (SpecMismatchError, StoreLockedError, VersionMismatchError) as e:
            return _fail(str(e))
        except KeyboardInterrupt:
            _close_progress_bars()
            try:
                saved = _spec_progress(out, {})
                done, left = saved["spec_runs_done"], saved["pending"]
            except Exception:  # nothing written yet
                done, left = 0, spec.n_runs
            print(
                f"interrupted: {done} runs saved, {left} left; "
                f"resume with: {_resume_command(args, out)}",
                file=sys.stderr,
            )
            return 130
        finally:
            if client is not None:
                client.close()
            if cluster is not None:  # cancels the batch jobs; closing the client does not
                cluster.close()
    rate = report.trained / report.wall_s if report.wall_s else 0.0
    print(
        f"{report.trained} runs trained in {report.chunks} chunks, {report.wall_s:.1f} s "
        f"({rate:.1f} runs/s); {report.already_done} were already done; "
        f"{len(report.failed_chunks)} chunks failed"
    )
    if report.failed_runs:
        how = (f"{report.skipped_failed} failed before and were skipped; "
               if report.skipped_failed else "")  # fmt: skip
        print(
            f"{report.failed_runs} runs failed ({how}see `sweepengine status {out}` for the "
            "errors; rerun with --retry-failed to train them again)",
            file=sys.stderr,
        )
    if report.already_done + report.trained:
        from .store.summary import format_summary

        print(format_summary(out))
        if not args.no_report:
            try:
                _write_report(out)
            except Exception as e:  # the sweep's results stand without their report
                print(f"warning: report not written: {e}", file=sys.stderr)
    return 0 if report.complete else 1


def _write_report(out: Path) -> int:
    from .analysis import AnalysisError
    from .analysis.report import write_report

    try:
        index = write_report(out)
    except (AnalysisError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print((index.parent / "headline.txt").read_text().strip())
    print(f"report -> {index}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    return _write_report(_results_dir(args.dir))


# -- results directories -----------------------------------------------------------


def _results_dir(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"no such directory: {p}")
    if not p.is_dir():
        raise UsageError(f"{p} is a file, not a results directory")
    if not (p / MANIFEST).is_file():
        raise UsageError(f"{p} is not a sweepengine results directory (no {MANIFEST})")
    return p


def progress_info(out_dir: str | os.PathLike) -> dict:
    """``store.status`` plus the sweep's progress against its spec (from the manifest),
    by run id with this version's ids: ``expected`` runs, ``done``, ``failed`` (recorded
    failures, never counted as done), ``remaining`` and ``complete``. ``expected`` and
    ``remaining`` are None when the stored spec no longer validates."""
    from .store import status

    info = status(out_dir)
    info["failures"] = info.pop("failed", [])  # the records; "failed" becomes their count
    manifest = json.loads((Path(out_dir) / MANIFEST).read_text())
    try:
        version = manifest.get("package_version")
    except AttributeError:
        version = None
    info.setdefault("package_version", version)
    prog = _spec_progress(Path(out_dir), info)
    info.update(prog)
    if "spec_runs" in prog:  # by run id, with this version's ids
        info.update(expected=prog["spec_runs"], done=prog["spec_runs_done"],
                    failed=prog["spec_runs_failed"], remaining=prog["pending"])  # fmt: skip
    else:  # a spec this version cannot read
        info.update(expected=None, done=info["runs_done"], remaining=None,
                    failed=info["by_status"].get("failed", 0))  # fmt: skip
    info["complete"] = bool(prog.get("complete"))
    return info


def _format_status(info: dict) -> str:
    expected = "?" if info["expected"] is None else info["expected"]
    remaining = "?" if info["remaining"] is None else info["remaining"]
    state = "complete" if info["complete"] else "incomplete"
    by = ", ".join(f"{k} {v}" for k, v in sorted(info["by_status"].items()))
    tables = "; ".join(
        f"{name} {t['parts']} parts, {t['rows']} rows, {t['bytes']} bytes"
        for name, t in sorted(info["tables"].items())
    )
    lock = info["lock"]
    lock_text = "none" if lock is None else ", ".join(f"{k} {v}" for k, v in lock.items())
    cleanup = sum(info["pending_cleanup"].values())
    return "\n".join([
        f"sweep {info['sweep']} in {info['out_dir']}: {state}",
        f"runs: {expected} expected, {info['done']} done ({info['failed']} failed), "
        f"{remaining} remaining",
        f"by status: {by}",
        f"tables: {tables}",
        f"lock: {lock_text}; pending cleanup: {cleanup} files; quarantined: "
        f"{info['quarantined']} files",
    ])  # fmt: skip


def _cmd_status(args: argparse.Namespace) -> int:
    out = _results_dir(args.dir)
    info = progress_info(out)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True, default=str))
    else:
        print(_format_status(info))
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    """The table per depth and optimizer, then the answer as text (headline, notes and
    the analysis tables: ``analysis.summary_text``), all exact statistics."""
    out = _results_dir(args.dir)
    from .analysis import AnalysisError
    from .analysis.report import summary_text
    from .store.summary import format_summary

    print(format_summary(out))
    print()
    try:
        print(summary_text(out), end="")
    except AnalysisError as e:
        return _fail(str(e))
    return 0


def _spec_progress(out: Path, info: dict) -> dict:
    """Progress against the directory's own spec, by run id with this version's ids:
    ``spec_runs``, ``pending`` (neither done nor failed), ``not_in_spec`` (done ids
    that are not the spec's) and ``complete``. After a package version change none
    of the old ids is this version's, so the directory is not complete."""
    from ._version import package_version
    from .store import open_store
    from .sweep import SpecError, validate

    manifest = open_store(out, create=False).manifest
    try:
        spec = validate(manifest["spec"], default_name=manifest["spec"].get("name", out.name))
    except (SpecError, KeyError, TypeError, AttributeError) as e:
        return {"complete": None, "spec_error": str(e)}
    import pyarrow.compute as pc

    from .store import read_runs
    from .store.parts import read_failures

    done = read_runs(out, ["run_id", "status"])
    ok = set(done.filter(pc.not_equal(done["status"], "failed"))["run_id"].to_pylist())
    failed = {r for rec in read_failures(out) for r in rec["run_ids"]} - ok
    ids = {r.run_id for r in spec.runs()}
    version = info.get("package_version")
    out_info = {
        "spec_runs": len(ids),
        "spec_runs_done": len(ids & ok),
        "spec_runs_failed": len(ids & failed),
        "pending": len(ids - ok - failed),
        "not_in_spec": len(ok - ids),
        "complete": not (ids - ok),
    }
    if version != package_version():
        out_info["version_note"] = (
            f"made by sweepengine {version}, this is {package_version()}: its run ids are "
            "not this version's (run with --allow-version-change or a new OUT)"
        )
    return out_info


def _cmd_compact(args: argparse.Namespace) -> int:
    from .store import StoreLockedError, open_store

    out = _results_dir(args.dir)
    try:
        store = open_store(out, create=False)
        with store.lock():
            info = store.compact()
    except StoreLockedError as e:
        return _fail(str(e))
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0


# -- kernels -----------------------------------------------------------------------


def _cmd_warmup(args: argparse.Namespace) -> int:
    if args.cache_dir:  # before Numba is imported: it reads the variable once
        os.environ["NUMBA_CACHE_DIR"] = str(Path(args.cache_dir).resolve())
    t0 = time.perf_counter()
    from .sweep import worker

    est = worker.WARMUP_ALL_S + (worker.WARMUP_NONLINEAR_S if args.nonlinear else 0)
    print(f"compiling kernels, one-time, about {est} s (instant if already cached) ...",
          flush=True)  # fmt: skip
    seconds = worker.warm_up()
    if args.nonlinear:
        seconds += worker.warm_up(worker.NONLINEAR)
    import numba

    where = numba.config.CACHE_DIR or "__pycache__ beside the sources"
    print(f"kernels ready in {time.perf_counter() - t0:.1f} s ({seconds:.1f} s compile or "
          f"cache load); cache: {where}")  # fmt: skip
    return 0


def _cmd_selfcheck(args: argparse.Namespace) -> int:
    from .selfcheck import selfcheck

    ok = selfcheck(print)
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="sweepengine",
        description="Sweeps of deep linear network training runs: how bad saddles slow "
        "gradient training. Results go to Parquet (OUT/runs, OUT/stalls, OUT/curves). "
        "Exit codes: 0 done, 1 incomplete sweep or failed self-check, 2 usage error, "
        "130 interrupted.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser(
        "run",
        help="run a sweep spec (TOML); resumes if OUT already holds part of it",
        description="Run every run of SPEC that OUT does not hold yet, on an embedded "
        "Dask LocalCluster (default), an existing cluster (--scheduler) or a batch "
        "system (--cluster slurm|pbs, configured through dask.config 'jobqueue.*'). "
        "Ctrl-C stops cleanly (exit 130) and prints the command that resumes.",
    )
    r.add_argument("spec", help="sweep spec, a TOML file (see docs/spec.md and sweeps/)")
    r.add_argument("--out", help="results directory (default: sweep-out/<sweep name>); "
                   "must not be a file")  # fmt: skip
    r.add_argument("--scheduler", metavar="ADDR",
                   help="address of a running Dask scheduler to join, tcp://HOST:PORT "
                   f"(checked first, {CONNECT_TIMEOUT_S:.0f} s timeout)")  # fmt: skip
    r.add_argument("--cluster", choices=["slurm", "pbs"], help="start workers as batch jobs")
    r.add_argument("--jobs", type=_positive_int, metavar="N",
                   help="batch jobs to request, >= 1 (only with --cluster; default 1)")  # fmt: skip
    r.add_argument("--workers", type=_positive_int, metavar="N",
                   help="local worker processes, >= 1 (default: cores // threads)")  # fmt: skip
    r.add_argument("--threads", type=_positive_int, metavar="T",
                   help="threads per local worker, >= 1 (default 1)")  # fmt: skip
    where = r.add_mutually_exclusive_group()
    where.add_argument("--in-process", dest="in_process", action="store_const", const=True,
                       help="the embedded cluster's workers are threads of this process "
                       "(default for a short sweep on a warm kernel cache: no worker "
                       "processes to start)")  # fmt: skip
    where.add_argument("--processes", dest="in_process", action="store_const", const=False,
                       help="the embedded cluster's workers are processes (default for "
                       "longer sweeps and a cold kernel cache)")  # fmt: skip
    r.add_argument("--chunk", type=_positive_int, metavar="N",
                   help="at most N runs per Dask task, >= 1 (default: adaptive)")  # fmt: skip
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.add_argument("--retries", type=int, default=2,
                   help="further attempts of a chunk after an error that may not recur "
                   "(default 2)")  # fmt: skip
    r.add_argument(
        "--retry-failed",
        action="store_true",
        help="train runs recorded as failed again (they are skipped otherwise)",
    )
    r.add_argument("--allow-version-change", action="store_true",
                   help="OUT was made by another sweepengine version: move its results "
                   "to OUT/previous/<version>/ and run the sweep here again")  # fmt: skip
    r.add_argument("--no-report", action="store_true", help="do not write OUT/report/")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser(
        "status", help="expected, done, failed, remaining runs; parts and bytes of a results dir"
    )
    s.add_argument("dir")
    s.add_argument("--json", action="store_true", help="print JSON (every field)")
    s.set_defaults(func=_cmd_status)

    m = sub.add_parser(
        "summary",
        help="per depth and optimizer: runs, converged %%, median steps, stalls; then "
        "the answer as text (how often bad saddles slowed training, with intervals)",
    )
    m.add_argument("dir")
    m.set_defaults(func=_cmd_summary)

    rp = sub.add_parser("report", help="(re)write DIR/report/index.html and its figures")
    rp.add_argument("dir")
    rp.set_defaults(func=_cmd_report)

    c = sub.add_parser("compact", help="merge small Parquet parts of a results dir")
    c.add_argument("dir")
    c.set_defaults(func=_cmd_compact)

    w = sub.add_parser(
        "warmup",
        help="compile the trainer ahead of time (e.g. on a cluster before a job array)",
        description="Compile (or load from the Numba cache) the kernels a sweep worker "
        "uses, once, so that later sweeps start at once. The cache is NUMBA_CACHE_DIR "
        "if set (or --cache-dir), else __pycache__ beside the sources.",
    )
    w.add_argument("--cache-dir", metavar="DIR", help="set NUMBA_CACHE_DIR for this command "
                   "(workers must then use the same NUMBA_CACHE_DIR)")  # fmt: skip
    w.add_argument("--nonlinear", action="store_true", help="also the nonlinear trainer "
                   "(sweeps with an activation other than linear or weight decay; about "
                   "50 s more cold)")  # fmt: skip
    w.set_defaults(func=_cmd_warmup)

    k = sub.add_parser(
        "selfcheck", help="check the compiled kernels against analytic results (quick)"
    )
    k.set_defaults(func=_cmd_selfcheck)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:  # keep Dask's per-worker INFO chatter out of the terminal
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        return args.func(args)
    except UsageError as e:
        return _fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
