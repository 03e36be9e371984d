"""`nightshift run`: one pipeline DAG in this process, for the day a person names, with a readable summary.

Day semantics (the same as the trigger form and backfills, see README "Which days a run covers"):
- `--score --date D` scores exactly the UTC day D (the form's interval_start=D, interval_end=D+1);
  without `--date`, the latest complete day (yesterday, UTC).
- `--train --date D` trains on the window ending at D minus `training.label_delay_days` (so every
  label in it had matured by D); without `--date`, today.
Airflow's own log lines go to `.local/logs/cli/<dag>-<date>.log`; the terminal shows one line per
task and the summary.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from nightshift import config
from nightshift.cli import summary


def run_conf(spec: Any, day: date, score: bool, extra: dict | None) -> dict:
    """The trigger-form parameters that make the run cover exactly the day asked for."""
    if score:
        base = {"interval_start": day.isoformat(), "interval_end": (day + timedelta(days=1)).isoformat()}
    else:
        base = {"window_end": (day - timedelta(days=spec.training.label_delay_days)).isoformat()}
    return {**base, **(extra or {})}


def default_day(score: bool, today: date | None = None) -> date:
    today = today or datetime.now(timezone.utc).date()
    return today - timedelta(days=1) if score else today


class _Progress(logging.Handler):
    """One terminal line per task as dag.test() starts and ends it."""

    def __init__(self, out) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "[DAG TEST] starting task_id=" in message:
            task = message.split("task_id=")[1].split()[0]
            index = message.split("map_index=")[1].split()[0] if "map_index=" in message else "-1"
            self.out.write(f"  -> {task}{'' if index == '-1' else f'[{index}]'} ...\n")
            self.out.flush()


@contextlib.contextmanager
def output_to(log_file: Path) -> Iterator[Any]:
    """Send this process's stdout and stderr (Airflow's logs included) to a file; yield the terminal."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    try:  # the terminal is fd 1, unless something (a test's capture, a caller) already replaced sys.stdout
        own = sys.stdout.fileno() == 1
    except (AttributeError, ValueError, OSError):
        own = False
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1) if own else sys.stdout
    with log_file.open("a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            if own:
                terminal.close()


class AlreadyRunning(RuntimeError):
    """Another `nightshift run` of the same DAG holds its lock."""


@contextlib.contextmanager
def exclusive(dag_id: str, day: date) -> Iterator[None]:
    """One `nightshift run` per DAG at a time on this machine (they share one embedded metadata database and
    warehouse file); a second one refuses at once, naming the run that holds the lock."""
    import fcntl

    lock_file = config.local_dir() / "locks" / f"{dag_id}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise AlreadyRunning(f"{dag_id} is already running here ({holder}); wait for it to finish, then run again "
                                 f"(lock: {lock_file})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"nightshift run for {day.isoformat()}, pid {os.getpid()}, started "
                     f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(spec: Any, *, score: bool, day: date, extra_conf: dict | None = None) -> int:
    """Build the DAG, run it with dag.test() quietly, print task states and the summary; 0 on success."""
    from nightshift.render import build_score_dag, build_train_dag

    dag = build_score_dag(spec) if score else build_train_dag(spec)
    with exclusive(dag.dag_id, day):
        return _run(spec, dag, score, day, extra_conf)


def _run(spec: Any, dag: Any, score: bool, day: date, extra_conf: dict | None) -> int:
    """One run in this process; a failed task leaves its message in a folder of this run's own, printed at the end."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nightshift-failures-") as folder:
        saved = os.environ.get(config.FAILURES_DIR_VAR)
        os.environ[config.FAILURES_DIR_VAR] = folder
        try:
            return _run_and_summarize(spec, dag, score, day, extra_conf, Path(folder))
        finally:
            if saved is None:
                os.environ.pop(config.FAILURES_DIR_VAR, None)
            else:
                os.environ[config.FAILURES_DIR_VAR] = saved


def _run_and_summarize(spec: Any, dag: Any, score: bool, day: date, extra_conf: dict | None, failures_dir: Path) -> int:
    conf = run_conf(spec, day, score, extra_conf)
    log_file = config.local_dir() / "logs" / "cli" / f"{dag.dag_id}-{day.isoformat()}.log"
    print(f"running {dag.dag_id} for {day.isoformat()} (Airflow's log: {log_file})", flush=True)
    logical = datetime.now(timezone.utc)
    with output_to(log_file) as terminal:
        handler = _Progress(terminal)
        logging.getLogger("airflow.sdk.definitions.dag").addHandler(handler)
        try:
            dag_run = dag.test(logical_date=logical, run_conf=conf)
        finally:
            logging.getLogger("airflow.sdk.definitions.dag").removeHandler(handler)
    states: dict[str, set[str]] = {}
    for ti in dag_run.get_task_instances():
        states.setdefault(ti.task_id, set()).add(str(ti.state))
    for task_id, task_states in states.items():
        print(f"  {task_id:<14} {', '.join(sorted(task_states))}")
    print(f"{dag.dag_id} {dag_run.state}: {json.dumps(conf)}")
    print()
    print(summary.score_summary(spec, conf, config.run_dir(spec.name, "score", dag_run.run_id)) if score
          else summary.train_summary(spec.name, dag_run.run_id))
    if dag_run.state != "success":
        failures = {p.stem: p.read_text() for p in sorted(failures_dir.glob("*.txt"))}
        for task_id, message in failures.items():
            print(f"\nFAILED {task_id}: {message}")
        where = "Airflow's full log" if failures else "the failing task's message is in Airflow's log"
        print(f"\nthe run failed; {where}: {log_file}")
    return 0 if dag_run.state == "success" else 1
