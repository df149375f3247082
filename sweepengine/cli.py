"""``sweepengine`` command line: run, status, summary, report, compact, selfcheck.

sweepengine run SPEC [--out DIR] [--scheduler ADDR] [--workers N] [--threads T] [--no-report]
sweepengine status DIR
sweepengine summary DIR
sweepengine report DIR
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
    from .store import SpecMismatchError, StoreLockedError
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
        )  # fmt: skip
    except (SpecMismatchError, StoreLockedError) as e:
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
    return _write_report(Path(args.dir))


def _cmd_summary(args: argparse.Namespace) -> int:
    from .analysis import AnalysisError
    from .analysis.report import summary_text

    try:
        print(summary_text(args.dir), end="")
    except AnalysisError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from .store import status

    try:
        info = status(args.dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2, sort_keys=True, default=str))
    return 0


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
    r.add_argument("--no-report", action="store_true", help="do not write OUT/report/")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("status", help="runs done by status, parts and bytes in a results dir")
    s.add_argument("dir")
    s.set_defaults(func=_cmd_status)

    sm = sub.add_parser("summary", help="text summary of a results dir (exact statistics)")
    sm.add_argument("dir")
    sm.set_defaults(func=_cmd_summary)

    rp = sub.add_parser("report", help="(re)write DIR/report/index.html and its figures")
    rp.add_argument("dir")
    rp.set_defaults(func=_cmd_report)

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
