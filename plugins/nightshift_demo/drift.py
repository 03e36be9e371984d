"""The demo's drift act: score a day generated with --drift-from and print the monitor's verdict."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Callable

from nightshift import config


def monitoring_rows(pipeline: str, day: date) -> list[tuple]:
    """(FEATURE, PSI, PSI_NOISE_FLOOR, KS, STATUS, MODEL_VERSION) of one date, most drifted first (embedded warehouse)."""
    from nightshift.io.warehouse import DuckDBWarehouse
    from nightshift.spec import find_spec
    from nightshift.steps.monitor import monitoring_table

    table = monitoring_table(find_spec(pipeline))
    with DuckDBWarehouse().connect(read_only=True) as con:
        return con.execute(f"SELECT FEATURE, PSI, PSI_NOISE_FLOOR, KS, STATUS, MODEL_VERSION FROM {table} "
                           "WHERE MODEL_NAME = ? AND PARTITION_DATE = ? ORDER BY PSI DESC NULLS LAST", [pipeline, day]).fetchall()


def verdict_text(pipeline: str, day: date) -> str:
    from nightshift.ml.drift import worst

    rows = monitoring_rows(pipeline, day)
    if not rows:
        return f"no monitoring rows for {day}"
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"monitor verdict for {day} against v{rows[0][5]}'s training reference: {worst([r[4] for r in rows]).upper()}",
             f"  {'column':<18}{'PSI':>8}{'noise floor':>13}{'KS':>8}  status"]
    lines += [f"  {f:<18}{fmt(psi):>8}{fmt(floor):>13}{fmt(ks):>8}  {status}" for f, psi, floor, ks, status, _ in rows]
    return "\n".join(lines)


def latest_report(pipeline: str, day: date) -> str:
    reports = sorted((config.local_dir() / "artifacts" / pipeline / "score").glob(f"*/monitor/{day}/report.html"),
                     key=lambda p: p.stat().st_mtime)
    return str(reports[-1].relative_to(config.project_root())) if reports else "-"


def alert_line(dag_id: str, logical_date: str) -> str:
    """The alert the monitor logged, read back from the run's log."""
    log_file = config.local_dir() / "logs" / f"{dag_id}-{logical_date}.log"
    lines = [line for line in log_file.read_text().splitlines() if "DRIFT ALERT" in line] if log_file.exists() else []
    return lines[0][lines[0].index("DRIFT ALERT"):].split(". Report:")[0] if lines else "(no alert logged)"


def drift_demo(pipeline: str, day: str, airflow_dags_test: Callable[..., bool]) -> None:
    """Score the drifted day; the monitor alerts and fails the run, while the day's scores stay published."""
    start = date.fromisoformat(day)
    after = (start + timedelta(days=1)).isoformat()
    print(f"\nscoring {day}, generated with --drift-from {day} (lower incomes, higher utilization, worse grades)")
    succeeded = airflow_dags_test(f"{pipeline}_score", after, conf={"interval_start": day, "interval_end": after}, may_fail=True)
    print("\n" + verdict_text(pipeline, start))
    print(f"\n  {alert_line(f'{pipeline}_score', after)}")
    outcome = "the run succeeded" if succeeded else "the monitor task failed the run (PSI >= fail, above the noise floor)"
    print(f"\n{outcome}; the alert went to the task log (monitoring.notify adds an Airflow notifier: Slack, e-mail).\n"
          f"{day}'s scores stay published (monitoring.block_publish_on: fail would have stopped them).\n"
          f"report: {latest_report(pipeline, start)}")
