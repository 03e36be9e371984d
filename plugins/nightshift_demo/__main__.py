"""`python -m nightshift_demo`: sample data, the demo run, and the summary it prints.

    generate      write deterministic synthetic data under data/landing/
    run           train credit_default with `airflow dags test`, then print a summary
    write-schema  regenerate include/pipeline.schema.json and docs/spec.md from the spec models
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import date, timedelta

from nightshift import config
from nightshift.cli.summary import partitions_summary, performance_summary, train_summary

from nightshift_demo.generate import add_generate_arguments, run_generate

PIPELINE = "credit_default"


def airflow_dags_test(dag_id: str, logical_date: str, conf: dict | None = None, may_fail: bool = False) -> bool:
    """Run one DAG in-process through Airflow's own CLI; its log goes to .local/logs/. True if the run succeeded."""
    log_dir = config.local_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{dag_id}-{logical_date}.log"
    extra = ["-c", json.dumps(conf)] if conf else []
    print(f"running `airflow dags test {dag_id} {logical_date}{' -c ' + repr(json.dumps(conf)) if conf else ''}` "
          f"(log: {log_file.relative_to(config.project_root())})", flush=True)
    with log_file.open("w") as out:
        done = subprocess.run(["airflow", "dags", "test", dag_id, logical_date, *extra], stdout=out, stderr=subprocess.STDOUT)
    text = log_file.read_text()
    failed = done.returncode != 0 or "state=failed" in text or "DagRunState.FAILED" in text
    if failed and not may_fail:
        print("\n".join(text.splitlines()[-40:]))
        raise SystemExit(f"{dag_id} failed for {logical_date}; full log: {log_file}")
    return not failed


def how_to_look() -> str:
    root = config.project_root()
    return (
        "\nLook around:\n"
        f"  MLflow UI:   .venv/bin/mlflow ui --backend-store-uri {config.mlflow_tracking_uri()} --port 5000\n"
        f"  Airflow UI:  AIRFLOW_HOME={root}/.local/airflow .venv/bin/airflow standalone   (see README)\n"
    )


def performance_dates(last: str) -> tuple[date, date]:
    """(a day to score after the demo's scoring runs, the day label_delay_days before it, to backfill first)."""
    from nightshift.spec import find_spec

    matured = date.fromisoformat(last)
    return matured, matured - timedelta(days=find_spec(PIPELINE).training.label_delay_days)


def score_day(day: date) -> bool:
    """Score exactly one UTC day (the form's interval), as a backfill or a late run would."""
    after = (day + timedelta(days=1)).isoformat()
    return airflow_dags_test(f"{PIPELINE}_score", after, conf={"interval_start": day.isoformat(), "interval_end": after})


def run_demo(args: argparse.Namespace) -> None:
    airflow_dags_test(f"{PIPELINE}_train", args.train_date)
    print()
    print(train_summary(PIPELINE))
    if args.challenger_date:
        print(f"\ntraining a challenger at {args.challenger_date} with the form's as_challenger: it is shadow-scored next to "
              "the champion (scoring.shadow), which stays")
        airflow_dags_test(f"{PIPELINE}_train", args.challenger_date, conf={"as_challenger": True})
        print()
        print(train_summary(PIPELINE))
    print()
    matured, backfill = performance_dates(args.score_dates[-1])
    print(f"backfilling {PIPELINE}_score for {backfill}: its labels mature by {matured} (training.label_delay_days)")
    score_day(backfill)
    for day in args.score_dates:  # each run scores exactly that UTC day, as `nightshift run --score --date` does
        score_day(date.fromisoformat(day))
    before = partitions_summary(PIPELINE)
    print("\n" + before)
    rerun = args.score_dates[1]
    print(f"\nrerunning {PIPELINE}_score for {rerun}: the date's rows are replaced, not duplicated")
    score_day(date.fromisoformat(rerun))
    after = partitions_summary(PIPELINE)
    print("\n" + after)
    print("\nrerun changed no counts" if after == before else "\nWARNING: counts changed after the rerun")
    print(f"\nthe run for {matured} estimated its own performance from the scores (labels arrive in "
          f"{(matured - backfill).days} days) and realized {backfill}'s, whose labels have matured, for the served "
          "champion and the shadow challenger on the same rows:")
    print("\n" + performance_summary(PIPELINE))
    if args.drift_date:
        from nightshift_demo.drift import drift_demo

        drift_demo(PIPELINE, args.drift_date, airflow_dags_test)
    print(how_to_look())


def write_schema(args: argparse.Namespace) -> None:
    from nightshift.spec import docs as specdoc
    from nightshift.spec import json_schema

    target = config.project_root() / "include" / "pipeline.schema.json"
    target.write_text(json.dumps(json_schema(), indent=2) + "\n")
    reference = config.project_root() / "docs" / "spec.md"
    reference.parent.mkdir(exist_ok=True)
    reference.write_text(specdoc.render() + "\n")
    print(f"wrote {target} and {reference}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nightshift_demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    generate = sub.add_parser("generate", help="write sample data")
    add_generate_arguments(generate)
    generate.set_defaults(func=run_generate)
    run = sub.add_parser("run", help="train the demo pipeline and print a summary")
    run.add_argument("--train-date", required=True, help="logical date of the training run (YYYY-MM-DD)")
    run.add_argument("--challenger-date", default=None,
                     help="logical date of a second training run registered as challenger (shadow-scored), or none")
    run.add_argument("--score-dates", nargs=3, required=True, metavar="DATE", help="logical dates of three scoring runs")
    run.add_argument("--drift-date", default=None, help="a day generated with --drift-from: score it and print the monitor's verdict")
    run.set_defaults(func=run_demo)
    sub.add_parser("write-schema", help="regenerate include/pipeline.schema.json").set_defaults(func=write_schema)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
