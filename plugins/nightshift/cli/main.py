"""The `nightshift` command (also `python -m nightshift`).

    new NAME --from FILE --target COL   draft a spec from a data file
    validate [--deep] [FILE ...]        check specs; the loader's errors, file by file (--deep: import-time checks)
    schema                              print the spec's JSON Schema
    run NAME --date D [--train|--score] run a pipeline's DAG in-process (Airflow's dag.test)
    status NAME                         champion, recent runs, recent partitions
    rollback NAME --to VERSION          move the champion alias to an earlier version
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, timezone
from pathlib import Path

from nightshift import config
from nightshift.spec import SpecError, deep_check, find_spec, json_schema, load_spec, parse_spec, spec_files


def cmd_validate(args: argparse.Namespace) -> int:
    """Load each spec and print the loader's errors; non-zero exit when any spec is invalid."""
    files = args.files or spec_files(config.pipelines_dir())
    bad = 0
    for path in files:
        try:
            spec = load_spec(path)
            if getattr(args, "deep", False) and (problems := deep_check(spec)):
                raise SpecError(path, problems, pipeline=spec.name)
            print(f"ok       {path}: {spec.name} ({spec.target.task}, {len(spec.feature_columns)} input columns)")
        except SpecError as exc:
            bad += 1
            print(f"INVALID  {exc}")
    return 1 if bad else 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    """Write a drafted spec, checked by the same loader Airflow uses."""
    from nightshift.cli import draft

    out = Path(args.out) if args.out else config.pipelines_dir() / f"{args.name}.yaml"
    if out.exists() and not args.force:
        print(f"{out} exists; pass --force to overwrite", file=sys.stderr)
        return 1
    spec = draft.draft_spec(args.name, Path(args.source), args.target, args.key, args.uri)
    text = draft.to_yaml(spec)
    parse_spec(__import__("yaml").safe_load(text), out)  # refuse to write a draft that would not load
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}: {spec['target']['task']} on '{args.target}', key {spec['source']['entity_key']}, "
          f"{len(spec['schema'])} columns. Review it, then: nightshift run {args.name} --date YYYY-MM-DD --train")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run `<name>_train` or `<name>_score` for the day asked for, in this process (see nightshift.cli.run)."""
    from nightshift.cli import run

    spec = find_spec(args.name)
    day = date.fromisoformat(args.date) if args.date else run.default_day(args.score)
    return run.run(spec, score=args.score, day=day, extra_conf=json.loads(args.conf) if args.conf else None)


def cmd_status(args: argparse.Namespace) -> int:
    """Champion version, recent training runs and recent partitions in the warehouse."""
    from nightshift.io import tracking
    from nightshift.io.warehouse import get_warehouse

    spec = find_spec(args.name)
    champion = tracking.champion(spec.name)
    print(f"{spec.name}: champion {'version ' + str(champion.version) if champion else 'none (run ' + spec.train_dag_id + ')'}")
    client = tracking.client()
    runs = client.search_runs([tracking.experiment_id(spec.name)], max_results=args.limit, order_by=["start_time DESC"])
    print("recent training runs:")
    for run in runs:
        metric = spec.metrics[0]
        value = run.data.metrics.get(f"test_{metric}")
        started = datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
        print(f"  {started}  {run.data.tags.get(tracking.DAG_RUN_TAG, '-'):<45} {metric}={value if value is None else round(value, 4)}")
    partitions = get_warehouse(spec.scoring.warehouse_conn_id).rows_per_partition(spec.scoring.output_table, spec.name)
    print(f"recent partitions in {spec.scoring.output_table}:")
    for day, version, rows in partitions[-args.limit:]:
        print(f"  {day}  version {version}  {rows} rows")
    from nightshift.cli.summary import drift_summary, performance_summary

    print(drift_summary(spec.name))
    print(performance_summary(spec.name))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Move `champion` to a registered version; the next scoring run resolves it."""
    from mlflow.exceptions import MlflowException

    from nightshift.io import tracking

    spec = find_spec(args.name)
    client = tracking.client()
    try:
        client.get_model_version(spec.name, str(args.to))
    except MlflowException:
        print(f"{spec.name} has no version {args.to}", file=sys.stderr)
        return 1
    import getpass

    before = tracking.champion(spec.name)
    tracking.move_champion(spec.name, str(args.to), by=getpass.getuser(), via="rollback")
    client.set_model_version_tag(spec.name, str(args.to), "nightshift.rollback_from", str(before.version if before else "none"))
    print(f"{spec.name}@champion: version {before.version if before else 'none'} -> {args.to}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="nightshift", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = root.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="draft a spec from a data file")
    new.add_argument("name")
    new.add_argument("--from", dest="source", required=True, help="CSV or parquet file")
    new.add_argument("--target", required=True, help="label column")
    new.add_argument("--key", help="entity key column (default: inferred)")
    new.add_argument("--uri", help="source uri to write in the spec (default: the file's path)")
    new.add_argument("--out", help="where to write (default: include/pipelines/NAME.yaml)")
    new.add_argument("--force", action="store_true")
    new.set_defaults(func=cmd_new)
    validate = sub.add_parser("validate", help="check pipeline specs")
    validate.add_argument("files", nargs="*", help="spec files (default: every spec in the pipelines folder)")
    validate.add_argument("--deep", action="store_true",
                          help="also import the estimator and the expectations (slower): estimator kind vs target.task, arguments")
    validate.set_defaults(func=cmd_validate)
    sub.add_parser("schema", help="print the spec's JSON Schema").set_defaults(func=cmd_schema)
    run = sub.add_parser("run", help="run a pipeline's DAG in-process")
    run.add_argument("name")
    run.add_argument("--date", help="--score: the UTC day to score (default yesterday); --train: train on the window "
                     "ending at DATE minus the label delay (default today)")
    which = run.add_mutually_exclusive_group()
    which.add_argument("--train", action="store_true", help="run <name>_train (default)")
    which.add_argument("--score", action="store_true", help="run <name>_score")
    run.add_argument("--conf", help='trigger parameters as JSON, e.g. \'{"dry_run": true}\'')
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="champion, recent runs, recent partitions")
    status.add_argument("name")
    status.add_argument("--limit", type=int, default=10)
    status.set_defaults(func=cmd_status)
    rollback = sub.add_parser("rollback", help="move the champion alias to another version")
    rollback.add_argument("name")
    rollback.add_argument("--to", required=True, help="version number")
    rollback.set_defaults(func=cmd_rollback)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command in ("run", "status", "rollback"):  # these touch Airflow or the embedded stores
        from nightshift.cli import environment

        environment.set_defaults()
        if args.command == "run":
            environment.ensure_metadata_database()
    try:
        return args.func(args)
    except (SpecError, LookupError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
