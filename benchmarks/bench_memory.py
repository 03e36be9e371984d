"""Memory flatness: peak RSS of ONE scoring shard over 1M and 10M rows, each in a fresh process.

The parent trains a small champion, writes one snapshot per size chunk by chunk (never the whole
frame in memory; row groups as the ingest step writes them, all in one shard), then runs
`python bench_memory.py --child ...` once per size. The child imports everything, loads the model
once (its baseline), then runs nightshift.steps.score.score_shard over every row group and reports
ru_maxrss (resource.getrusage(RUSAGE_SELF), the kernel's own peak). The parent cross-checks with
RUSAGE_CHILDREN. Usage: python benchmarks/bench_memory.py [--rows 1000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import common


def child(snapshot: str, model_uri: str, run_dir: str) -> None:
    """One shard, every row group, in this fresh process; prints baseline and peak RSS as JSON."""
    common.quiet_logs()
    import mlflow.sklearn
    import pyarrow.parquet as pq

    from nightshift.io import tracking
    from nightshift.steps import score

    spec = common.spec()
    tracking.client()
    mlflow.sklearn.load_model(model_uri)  # imports and first-load caches: part of the baseline, not of the data
    model_ref = score.resolve_model(spec)
    baseline_rss, baseline_peak = common.rss_mib(), common.peak_rss_mib()
    groups = pq.ParquetFile(snapshot).metadata.num_row_groups
    shard = {"index": 0, "row_groups": list(range(groups))}
    with common.Timer() as t:
        result = score.score_shard(spec, snapshot, shard, model_ref, "bench__memory", datetime.now(timezone.utc), run_dir)
    print(json.dumps({"rows": result["rows"], "row_groups": groups, "seconds": t.seconds, "baseline_rss_mib": baseline_rss,
                      "baseline_peak_mib": baseline_peak, "peak_rss_mib": common.peak_rss_mib(), "final_rss_mib": common.rss_mib()}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs=2, default=[1_000_000, 10_000_000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("SNAPSHOT", "MODEL_URI", "RUN_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child)

    import resource

    runs = {}
    with common.workdir("memory", keep=args.keep) as work:
        env = common.isolate(work)
        common.quiet_logs()
        spec = common.spec()
        model_ref = common.train_champion(spec, args.train_rows)
        model_ref.pop("fitted")
        factory = common.RowFactory()
        for rows in args.rows:
            with common.Timer() as gen:
                snapshot = common.write_snapshot(work / f"snapshot-{rows}.parquet", rows, spec.scoring.batch_rows, shards=1,
                                                 chunk_rows=500_000, factory=factory)
            done = subprocess.run([sys.executable, __file__, "--child", str(snapshot), model_ref["model_uri"], str(work / f"run-{rows}")],
                                  capture_output=True, text=True, env={**__import__("os").environ, **env}, timeout=1800)
            if done.returncode != 0:
                raise SystemExit(f"child for {rows} rows failed:\n{done.stderr[-3000:]}")
            report = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
            report["children_maxrss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # max over children so far
            report["generate_seconds"] = gen.seconds
            report["snapshot_mib"] = snapshot.stat().st_size / 2**20
            snapshot.unlink()
            runs[rows] = report

    small, large = (runs[n] for n in args.rows)
    for run in (small, large):
        if run["rows"] not in args.rows:
            raise SystemExit(f"a shard scored {run['rows']} rows, expected one of {args.rows}")
    growth = lambda r: r["peak_rss_mib"] - r["baseline_rss_mib"]  # noqa: E731
    figures = {"rows_small": args.rows[0], "rows_large": args.rows[1], "batch_rows": spec.scoring.batch_rows}
    for label, run in (("small", small), ("large", large)):
        figures.update({
            f"{label}_peak_rss_mib": round(run["peak_rss_mib"], 1), f"{label}_baseline_rss_mib": round(run["baseline_rss_mib"], 1),
            f"{label}_growth_mib": round(growth(run), 1), f"{label}_seconds": round(run["seconds"], 2),
            f"{label}_rows_per_s": common.rate(run["rows"], run["seconds"]), f"{label}_row_groups": run["row_groups"],
            f"{label}_snapshot_mib": round(run["snapshot_mib"], 1), f"{label}_children_maxrss_mib": round(run["children_maxrss_mib"], 1),
        })
    figures["ratio_peak_large_to_small"] = round(large["peak_rss_mib"] / small["peak_rss_mib"], 3)
    figures["ratio_growth_large_to_small"] = round(growth(large) / growth(small), 3) if growth(small) > 0 else None
    common.emit("memory", figures)


if __name__ == "__main__":
    main()
