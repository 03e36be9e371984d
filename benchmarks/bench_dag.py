"""The whole scoring DAG at scale: per-task wall time and peak RSS, each task in a fresh process.

For each `--rows` size: its own MLflow store, warehouse and landing zone with one day (2026-02-02) of
credit applications in parquet files of at most 1M rows, a champion trained on `--train-rows` rows (in a
separate process), then the `credit_default_score` tasks in DAG order, resolve_model → ingest → validate →
plan_shards → score ×shards → publish → monitor, each one a fresh `python bench_dag.py --task ...` child
that calls the step exactly as its operator does and passes its result on (a JSON file plays XCom), as a
deployment runs every task in its own process. Per task: the step's own seconds, the child's wall seconds
(interpreter start and imports included) and its peak RSS (ru_maxrss). Derived:
  marginal DAG rows/s  (rows_large - rows_small) / (step seconds large - step seconds small), all tasks;
  in-memory predict    the champion's predict_proba on up to --predict-rows snapshot rows already in memory;
  bare booster         XGBoost's inplace_predict on the transformed matrix of those rows.
Usage: python benchmarks/bench_dag.py [--rows 1000000 10000000] [--train-rows 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import common

RUN_ID = "bench__dag"
FILE_ROWS = 1_000_000
PREDICT_REPEATS = 5
TASKS = ["resolve_model", "ingest", "validate", "plan_shards", "score", "publish", "monitor"]


# --- children -----------------------------------------------------------------------------------

def write_landing(root: Path, rows: int) -> None:
    from nightshift.steps.score import PARTITION_COLUMN

    folder = root / f"dt={common.SCORE_DAY.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    factory = common.RowFactory()
    for i, start in enumerate(range(0, rows, FILE_ROWS)):
        frame = factory.frame(start, min(rows, start + FILE_ROWS)).drop(columns=[PARTITION_COLUMN])
        frame.to_parquet(folder / f"part-{i:03d}.parquet", index=False)


def setup(rows: int, train_rows: int) -> None:
    common.quiet_logs()
    write_landing(Path(os.environ["NIGHTSHIFT_CREDIT_SOURCE_URI"]), rows)
    from nightshift.ml import metrics
    from nightshift.steps import features, profile

    spec = common.spec()
    champion = common.train_champion(spec, train_rows, pyfunc_predict_fn="predict")
    frame = common.training_rows(train_rows)  # the same rows: the training reference monitor compares against
    scores = metrics.predict_scores(champion["fitted"], features.model_input(frame, spec.feature_columns), spec.target.task)
    profile.save_profile(spec, frame, profile.top_scores(spec, scores), champion["mlflow_run_id"], os.environ["NIGHTSHIFT_ARTIFACTS"])
    print("{}")


def run_task(task: str, state_file: Path, shard: int | None) -> None:
    """One task, as its operator calls the step; prints {seconds, peak_rss_mib, baseline_rss_mib}."""
    import resource
    import tempfile

    common.quiet_logs()
    from nightshift import config
    from nightshift.steps import monitor, publish, score, validate

    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    spec = common.spec()
    run_dir = config.run_dir(spec.name, "score", RUN_ID)
    baseline = common.rss_mib()
    with common.Timer() as t:
        if task == "resolve_model":
            out = score.resolve_model(spec)
        elif task == "ingest":
            start = datetime.combine(common.SCORE_DAY, datetime.min.time(), timezone.utc)
            out = {**score.ingest_scoring(spec, start, start + timedelta(days=1), run_dir), "run_dir": run_dir}
        elif task == "validate":
            ingested = state["ingest"]
            with tempfile.TemporaryDirectory() as docs:
                out = validate.validate_snapshot(ingested["snapshot_uri"], spec, include_target=False, source=ingested["source"],
                                                 docs_dir=docs, files=ingested.get("file_rows"), run_dir=run_dir,
                                                 drop=(score.PARTITION_COLUMN,))
            out = {"success": out["success"], "rows": out["rows"]}
        elif task == "plan_shards":
            out = score.plan_shards(spec, state["ingest"]["snapshot_uri"])
        elif task == "score":
            out = score.score_shard(spec, state["ingest"]["snapshot_uri"], state["plan_shards"][shard], state["resolve_model"],
                                    RUN_ID, datetime.now(timezone.utc), run_dir)
        elif task == "publish":
            out = publish.publish(spec, state["score"], state["ingest"]["partition_dates"], state["resolve_model"])
        elif task == "monitor":
            out = monitor.monitor(spec, {**state["ingest"], "run_dir": run_dir}, state["score"], state["resolve_model"], RUN_ID,
                                  datetime.now(timezone.utc))
            out = {"verdict": out["verdict"], "rows_written": out["rows_written"]}
        else:
            raise SystemExit(f"unknown task {task}")
    print(json.dumps({"task": task, "seconds": t.seconds, "baseline_rss_mib": baseline,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "out": out}, default=str))


def predict_limit(predict_rows: int) -> None:
    """The champion's in-memory predict_proba and the bare booster on the transformed matrix, best of PREDICT_REPEATS
    interleaved calls each: with 2, one pipeline call's fresh allocations of the 1M-row matrices moved the ratio
    between 0.4 and 0.75 from run to run."""
    import mlflow.sklearn
    import pandas as pd
    import pyarrow.parquet as pq

    common.quiet_logs()
    from nightshift import config
    from nightshift.steps import features, score

    spec = common.spec()
    model = mlflow.sklearn.load_model(score.resolve_model(spec)["model_uri"])
    snapshot = f"{config.run_dir(spec.name, 'score', RUN_ID)}/ingest/snapshot.parquet"
    reader = pq.ParquetFile(snapshot)
    frames, n = [], 0
    for batch in reader.iter_batches(batch_size=65_536):
        frames.append(batch.to_pandas())
        n += batch.num_rows
        if n >= predict_rows:
            break
    inputs = features.model_input(pd.concat(frames, ignore_index=True).head(predict_rows),
                                  list(getattr(model, "feature_names_in_", spec.feature_columns)))
    timings = {"pipeline": [], "transform": [], "booster": []}
    booster = model[-1].get_booster()
    for _ in range(PREDICT_REPEATS):
        with common.Timer() as whole:
            model.predict_proba(inputs)
        with common.Timer() as transform:
            matrix = model[:-1].transform(inputs)
        with common.Timer() as trees:
            booster.inplace_predict(matrix)
        timings["pipeline"].append(whole.seconds)
        timings["transform"].append(transform.seconds)
        timings["booster"].append(trees.seconds)
    print(json.dumps({"rows": len(inputs), **{k: min(v) for k, v in timings.items()}}))


# --- the parent -----------------------------------------------------------------------------------

def child(args: list[str], timeout: float = 3600) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"bench_dag child {args} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def one_size(rows: int, train_rows: int, predict_rows: int, keep: bool) -> dict:
    with common.workdir(f"dag-{rows}", keep=keep) as work:
        common.isolate(work)
        os.environ["NIGHTSHIFT_CREDIT_SOURCE_URI"] = str(work / "landing" / "credit_applications")
        with common.Timer() as prepare:
            child(["--setup", "--rows", str(rows), "--train-rows", str(train_rows)])
        state_file = work / "state.json"
        state: dict = {}
        tasks: dict[str, dict] = {}
        for task in TASKS:
            shards = range(len(state["plan_shards"])) if task == "score" else [None]
            for shard in shards:
                with common.Timer() as wall:
                    result = child(["--task", task, "--state", str(state_file), *([] if shard is None else ["--shard", str(shard)])])
                entry = tasks.setdefault(task, {"instances": 0, "seconds": 0.0, "wall_seconds": 0.0, "peak_rss_mib": 0.0,
                                                "baseline_rss_mib": 0.0})
                entry["instances"] += 1
                entry["seconds"] += result["seconds"]
                entry["wall_seconds"] += wall.seconds
                entry["peak_rss_mib"] = max(entry["peak_rss_mib"], result["peak_rss_mib"])
                entry["baseline_rss_mib"] = max(entry["baseline_rss_mib"], result["baseline_rss_mib"])
                if task == "score":
                    state.setdefault("score", []).append(result["out"])
                else:
                    state[task] = result["out"]
                state_file.write_text(json.dumps(state, default=str))
        published = sum(s["rows"] for s in state["score"])
        if published != rows or state["ingest"]["rows"] != rows:
            raise SystemExit(f"{rows} rows landed, {state['ingest']['rows']} ingested, {published} scored")
        limit = child(["--predict", "--predict-rows", str(predict_rows)])
    return {"rows": rows, "setup_seconds": round(prepare.seconds, 1),
            "tasks": {k: {**v, **{f: round(v[f], 2) for f in ("seconds", "wall_seconds", "peak_rss_mib", "baseline_rss_mib")}}
                      for k, v in tasks.items()},
            "step_seconds": round(sum(v["seconds"] for v in tasks.values()), 2),
            "wall_seconds": round(sum(v["wall_seconds"] for v in tasks.values()), 2), "predict": limit}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000], help="two sizes (one for --setup)")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--predict-rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--shard", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--predict", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setup:
        return setup(args.rows[0], args.train_rows)
    if args.task:
        return run_task(args.task, args.state, args.shard)
    if args.predict:
        return predict_limit(args.predict_rows)

    small, large = (one_size(n, args.train_rows, args.predict_rows, args.keep) for n in args.rows)
    marginal = common.rate(large["rows"] - small["rows"], large["step_seconds"] - small["step_seconds"])
    predict = large["predict"]
    predict_rate = common.rate(predict["rows"], predict["pipeline"])
    booster_rate = common.rate(predict["rows"], predict["booster"])
    ratios = {task: round(large["tasks"][task]["peak_rss_mib"] / small["tasks"][task]["peak_rss_mib"], 2) for task in small["tasks"]}
    common.emit("dag", {
        "small": small, "large": large, "peak_rss_ratio_by_task": ratios, "worst_peak_rss_ratio": max(ratios.values()),
        "worst_peak_rss_task": max(ratios, key=ratios.get), "marginal_rows_per_s": marginal,
        "predict_rows_per_s": predict_rate, "booster_rows_per_s": booster_rate,
        "ratio_marginal_to_predict": round(marginal / predict_rate, 3),
        "ratio_predict_to_booster": round(predict_rate / booster_rate, 3),
    })


if __name__ == "__main__":
    main()
