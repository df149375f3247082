"""``sweepengine`` command line: run, status, compact, selfcheck.

sweepengine run SPEC [--out DIR] [--scheduler ADDR] [--workers N] [--threads T]
sweepengine status DIR
sweepengine compact DIR
sweepengine selfcheck
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("sweepengine")


def _cmd_run(args: argparse.Namespace) -> int:
    from .store import SpecMismatchError, StoreLockedError, VersionMismatchError
    from .sweep import SpecError, load_spec, run_sweep

    try:
        spec = load_spec(args.spec)
    except (SpecError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out or Path("sweep-out") / spec.name)
    print(spec.summary())
    print(f"results -> {out}")
    client = cluster = None
    if args.cluster:
        from .sweep.clusters import batch_cluster

        try:
            cluster = batch_cluster(args.cluster, jobs=args.jobs)
        except ImportError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        from distributed import Client

        client = Client(cluster)
    try:
        report = run_sweep(
            spec, out, client=client, scheduler=args.scheduler, n_workers=args.workers,
            threads_per_worker=args.threads, max_chunk=args.chunk, progress=not args.quiet,
            retries=args.retries, retry_failed=args.retry_failed,
            allow_version_change=args.allow_version_change,
        )  # fmt: skip
    except (SpecMismatchError, StoreLockedError, VersionMismatchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
    return 0 if report.complete else 1


def _cmd_status(args: argparse.Namespace) -> int:
    from .store import status

    try:
        info = status(args.dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info.update(_spec_progress(Path(args.dir), info))
    print(json.dumps(info, indent=2, sort_keys=True, default=str))
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

    try:
        store = open_store(args.dir, create=False)
        with store.lock():
            info = store.compact()
    except (FileNotFoundError, StoreLockedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0


def _cmd_selfcheck(args: argparse.Namespace) -> int:
    from .selfcheck import selfcheck

    ok = selfcheck(print)
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sweepengine",
        description="Sweeps of deep linear network training runs: how bad saddles slow "
        "gradient training. Results go to Parquet (OUT/runs, OUT/stalls, OUT/curves).",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser(
        "run",
        help="run a sweep spec (TOML); resumes if OUT already holds part of it",
        description="Run every run of SPEC that OUT does not hold yet, on an embedded "
        "Dask LocalCluster (default), an existing cluster (--scheduler) or a batch "
        "system (--cluster slurm|pbs, configured through dask.config 'jobqueue.*').",
    )
    r.add_argument("spec", help="sweep spec, a TOML file (see docs/spec.md and sweeps/)")
    r.add_argument("--out", help="results directory (default: sweep-out/<sweep name>)")
    r.add_argument("--scheduler", help="address of a running Dask scheduler to join")
    r.add_argument("--cluster", choices=["slurm", "pbs"], help="start workers as batch jobs")
    r.add_argument("--jobs", type=int, default=1, help="batch jobs to request (with --cluster)")
    r.add_argument("--workers", type=int, help="local worker processes (default: cores)")
    r.add_argument("--threads", type=int, default=1, help="threads per local worker")
    r.add_argument("--chunk", type=int, help="runs per Dask task (default: adaptive)")
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
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("status", help="runs done by status, parts and bytes in a results dir")
    s.add_argument("dir")
    s.set_defaults(func=_cmd_status)

    c = sub.add_parser("compact", help="merge small Parquet parts of a results dir")
    c.add_argument("dir")
    c.set_defaults(func=_cmd_compact)

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
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
