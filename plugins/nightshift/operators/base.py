"""What every Nightshift operator shares: the spec it runs for, the run's dates, failure classes.

An operator is small: `template_fields` for what may vary per run (the pipeline and the upstream
tasks' XCom dicts, which Airflow resolves before `execute`), and an `execute` that calls one plain
step function. Heavy libraries load inside the step, never at DAG parse time.

Failures are classified once, here: a bad spec, bad data or a missing model fails the task at once
(no retry can fix it); anything else is an outage that Airflow retries with backoff.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from nightshift.spec import Pipeline, find_spec

log = logging.getLogger(__name__)


def deterministic_errors() -> tuple[type[BaseException], ...]:
    """Exception types that no retry can fix (see README "Which failures are retried"); imported lazily so
    parsing a DAG stays light. Everything else is an outage that Airflow retries with backoff."""
    from nightshift.io.snowflake import AccessDenied
    from nightshift.io.sql import SchemaMismatch
    from nightshift.io.s3 import S3ConnectionMissing
    from nightshift.io.storage import OutsideRoots
    from nightshift.io.tracking import UntrustedModel
    from nightshift.spec import SpecError
    from nightshift.steps import ingest, score, validate

    return (SpecError, ingest.IngestError, validate.ValidationFailed, score.ModelNotFound, SchemaMismatch, AccessDenied,
            OutsideRoots, UntrustedModel, S3ConnectionMissing)


@contextmanager
def fail_fast() -> Iterator[None]:
    """Turn deterministic failures into AirflowFailException (no retries); let outages through."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except deterministic_errors() as exc:
        raise AirflowFailException(str(exc)) from exc


def leave_message(context: Any, task_id: str, message: str) -> None:
    """Write a failed task's message where `nightshift run` prints it from; nothing when no CLI asked (a deployed
    task's message is its log and the notifier, and a rejected input writes no file)."""
    from nightshift import config

    folder = os.environ.get(config.FAILURES_DIR_VAR)
    if not folder:
        return
    index = getattr(context.get("ti"), "map_index", -1)
    name = task_id if index is None or index < 0 else f"{task_id}[{index}]"
    (Path(folder) / f"{name}.txt").write_text(message)


def run_id(context: Any) -> str:
    return context["run_id"]


def params(context: Any) -> dict:
    return dict(context.get("params") or {})


def param_date(context: Any, name: str) -> date | None:
    value = params(context).get(name)
    return date.fromisoformat(str(value)) if value else None


def interval(context: Any) -> tuple[datetime, datetime]:
    """The run's data interval. Runs without one (API triggers without a logical date, asset-triggered
    runs) cover the latest complete UTC day before they were triggered: [midnight - 1 day, midnight)."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None:
        moment = context["dag_run"].run_after
        midnight = datetime(moment.year, moment.month, moment.day, tzinfo=timezone.utc)
        return midnight - timedelta(days=1), midnight
    return start, end


def scoring_interval(context: Any) -> tuple[datetime, datetime]:
    """The days a scoring run covers: its data interval, or the trigger form's `interval_start`/`interval_end`."""
    start, end = interval(context)
    return param_date(context, "interval_start") or start, param_date(context, "interval_end") or end


def pinned_scored_at(model_ref: dict, context: Any) -> datetime:
    """The run's SCORED_AT, fixed once by resolve_model (older pins fall back to the run's start)."""
    return datetime.fromisoformat(model_ref["scored_at"]) if model_ref.get("scored_at") else context["dag_run"].start_date


def check_tracking_store(spec: Pipeline) -> None:
    """An embedded MLflow store that is missing or empty while the warehouse holds this pipeline's scores is an
    outage (TrackingStoreMissing, retried), never a fresh registry that reports "no champion" or a new version 1."""
    from nightshift.io import tracking
    from nightshift.io.warehouse import get_warehouse

    if tracking.store_path() is None:
        return
    has_history = bool(get_warehouse(spec.scoring.warehouse_conn_id).rows_per_partition(spec.scoring.output_table, spec.name))
    tracking.check_store(expect_existing=has_history)


def release_memory() -> None:
    """Hand back to the OS what a finished task freed. A deployed task runs in its own process and exits; but where one
    process runs every task of a run (`nightshift run`, `dag.test`), glibc's heap and Arrow's mimalloc pool keep the
    freed pages, so each task started from the previous task's peak and the run's peak grew with the day's rows.
    Both calls take well under a millisecond; a full gc.collect() here cost 0.4 s per task and moved the CLI's
    2M/0.5M peak ratio only from 1.24 to 1.19, so it is left to the steps that make cycles (validate's GX batches)."""
    import ctypes
    import sys

    if "pyarrow" in sys.modules:  # never import it just for this
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


class NightshiftOperator(BaseOperator):
    """Base of the pipeline steps' operators.

    :param pipeline: the spec's `name` (looked up in the specs folder when the task runs) or a
        `Pipeline` built in Python, for hand-written DAGs without a YAML file.
    """

    template_fields: Sequence[str] = ("pipeline",)
    ui_color = "#e8f0fe"
    pins_after_step = False  # a first task that must write nothing when it fails (resolve_model) pins after its step

    def __init__(self, *, pipeline: str | Pipeline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self._run_spec: Pipeline | None = None

    @property
    def spec(self) -> Pipeline:
        """The spec this task runs for: the run's pinned copy while executing, else resolved by name."""
        if isinstance(self.pipeline, Pipeline):
            return self.pipeline
        return self._run_spec or find_spec(self.pipeline)

    def spec_owner(self) -> str | None:
        """The spec file that declares this pipeline (its registry owner); None for a Pipeline built in Python."""
        if isinstance(self.pipeline, Pipeline):
            return None
        from nightshift.spec import spec_path

        path = spec_path(self.pipeline)
        return str(path) if path else None

    def check_params(self, context: Any) -> None:
        """Refuse bad trigger-form values before the task touches any file or store (operators override it)."""

    def execute(self, context: Any) -> Any:
        try:
            return self._execute(context)
        except Exception as exc:
            self.report_failure(context, exc)
            raise
        finally:
            release_memory()

    def report_failure(self, context: Any, exc: BaseException) -> None:
        """Say what failed once, in the same bounded words everywhere: the task log has the exception, `nightshift run`
        prints the message in its summary, and a failure no retry can fix also goes to the spec's notifier. Best
        effort: reporting never hides the failure itself."""
        from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, AirflowSkipException, TaskDeferred

        if isinstance(exc, (AirflowSkipException, AirflowRescheduleException, TaskDeferred)) or isinstance(self.pipeline, Pipeline):
            return
        from nightshift.spec.errors import bounded

        message = bounded(f"{self.pipeline} {self.task_id} failed: {exc}")
        try:
            leave_message(context, self.task_id, message)
            from nightshift.operators import alerts

            if isinstance(exc, AirflowFailException) and not isinstance(exc, alerts.AlertedFailure):
                alerts.send(self.spec, context, message)
        except Exception as reporting:  # noqa: BLE001 - the task's own failure matters, not the report's
            log.warning("could not report the failure of %s: %s", self.task_id, reporting)

    def _execute(self, context: Any) -> Any:
        with fail_fast():
            self.check_params(context)
            if isinstance(self.pipeline, Pipeline):
                return self.run_step(context)
            from nightshift.steps.run_spec import pin_spec, run_spec

            dag_id = getattr(context.get("dag_run"), "dag_id", None) or self.dag_id
            self._run_spec = run_spec(self.pipeline, dag_id, run_id(context), pin=not self.pins_after_step)
            result = self.run_step(context)
            if self.pins_after_step:
                pin_spec(self._run_spec, dag_id, run_id(context))
            return result

    def run_step(self, context: Any) -> Any:  # pragma: no cover - every operator overrides it
        raise NotImplementedError
