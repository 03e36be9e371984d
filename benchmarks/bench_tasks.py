"""Per-task overhead: wall time of `<name>_score` on `--rows` rows, split by task, via dag.test().

Temporary setup: its own Airflow home (`airflow db migrate`), MLflow store, warehouse and landing
zone with one day (2026-02-02) of `--rows` credit applications; a champion trained on
`--train-rows` rows and registered in a separate process, so the measuring process starts cold.
Then build_score_dag(spec).test() runs twice for that day:
  cold  the first run in this process: each task also pays the imports it is the first to need
        (in a deployment every task is a fresh process and pays its imports every time);
  warm  the same day again (publish replaces the day's rows): the steady-state cost of each task.
Durations are the task instances' own (start to end); `overhead` is the dag.test() wall time not
spent inside any task (scheduling, state, XCom). dag.test() runs tasks one after another in
process, so the four mapped `score` shards are sequential here. Also reported: a cold
`import nightshift.operators.base` in a fresh interpreter, the fixed cost each task process pays first.
Usage: python benchmarks/bench_tasks.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import datetime, timezone

import common

INTERVAL = {"interval_start": "2026-02-02", "interval_end": "2026-02-03"}


def write_landing(root, rows: int) -> None:
    from nightshift.steps.score import PARTITION_COLUMN

    path = root / f"dt={common.SCORE_DAY.isoformat()}" / "part-0.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    common.RowFactory().frame(0, rows).drop(columns=[PARTITION_COLUMN]).to_parquet(path, index=False)


def setup(rows: int, train_rows: int) -> None:
    """Child process: landing data and a registered champion."""
    common.quiet_logs()
    write_landing(common.Path(os.environ["NIGHTSHIFT_CREDIT_SOURCE_URI"]), rows)
    common.train_champion(common.spec(), train_rows, pyfunc_predict_fn="predict")  # as Nightshift logs it


def run_once(dag) -> dict:
    with common.Timer() as wall:
        dag_run = dag.test(logical_date=datetime(2026, 2, 3, 2, tzinfo=timezone.utc), run_conf=INTERVAL)
    tasks: dict[str, dict] = {}
    for ti in dag_run.get_task_instances():
        seconds = (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else 0.0
        entry = tasks.setdefault(ti.task_id, {"seconds": 0.0, "instances": 0, "states": []})
        entry["seconds"] += seconds
        entry["instances"] += 1
        entry["states"].append(str(ti.state))
    if dag_run.state != "success":
        raise SystemExit(f"scoring DAG run ended {dag_run.state}: {tasks}")
    in_tasks = sum(t["seconds"] for t in tasks.values())
    return {"wall_seconds": wall.seconds, "task_seconds": in_tasks, "overhead_seconds": wall.seconds - in_tasks,
            "tasks": {k: {"seconds": round(v["seconds"], 3), "instances": v["instances"]} for k, v in tasks.items()}}


def cold_import_seconds() -> float:
    code = "import time; t = time.perf_counter(); import nightshift.operators.base; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setup:
        return setup(args.rows, args.train_rows)

    with common.workdir("tasks", keep=args.keep) as work:
        env = common.isolate(work)
        os.environ["NIGHTSHIFT_CREDIT_SOURCE_URI"] = str(work / "landing" / "credit_applications")
        airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
        with common.Timer() as migrate:
            done = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SystemExit(f"airflow db migrate failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        with common.Timer() as prepare:
            done = subprocess.run([sys.executable, __file__, "--setup", "--rows", str(args.rows), "--train-rows", str(args.train_rows)],
                                  capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise SystemExit(f"setup failed:\n{done.stderr[-3000:]}")
        import_seconds = cold_import_seconds()

        common.quiet_logs()
        from nightshift.io.warehouse import DuckDBWarehouse
        from nightshift.render import build_score_dag
        from nightshift.spec import find_spec

        dag = build_score_dag(find_spec(common.PIPELINE))
        cold = run_once(dag)
        warm = run_once(dag)
        published = DuckDBWarehouse().rows_per_partition("CREDIT_DEFAULT_SCORES", common.PIPELINE)
    if sum(r[2] for r in published) != args.rows:
        raise SystemExit(f"published {published}, expected {args.rows} rows")

    figures = {"rows": args.rows, "train_rows": args.train_rows, "airflow_db_migrate_seconds": round(migrate.seconds, 2),
               "setup_seconds": round(prepare.seconds, 2), "cold_import_runtime_seconds": round(import_seconds, 3)}
    for label, run in (("cold", cold), ("warm", warm)):
        figures[f"{label}_wall_seconds"] = round(run["wall_seconds"], 3)
        figures[f"{label}_task_seconds"] = round(run["task_seconds"], 3)
        figures[f"{label}_overhead_seconds"] = round(run["overhead_seconds"], 3)
        figures[f"{label}_rows_per_s"] = common.rate(args.rows, run["wall_seconds"])
        figures[f"{label}_tasks"] = run["tasks"]
    common.emit("tasks", figures)


if __name__ == "__main__":
    main()
