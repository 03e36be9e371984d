"""Late data waits: a sensor in reschedule mode before scoring's ingest, releasing its worker slot between checks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from nightshift.operators.base import fail_fast, scoring_interval
from nightshift.spec import Pipeline, find_spec


class DataLandedSensor(BaseSensorOperator):
    """Waits until every input of the run's scoring interval has landed (partition folders, `score_uri` files,
    or Snowflake rows with `source.wait.require_rows`); on time-out fails with what it looked for and notifies.

    :param pipeline: the spec's name or a `Pipeline`; its `source.wait` sets the poke interval and time-out.
    """

    template_fields: Sequence[str] = ("pipeline",)
    ui_color = "#fff4d6"

    def __init__(self, *, pipeline: str | Pipeline, wait: Any = None, **kwargs: Any) -> None:
        wait = wait if wait is not None else getattr(getattr(pipeline, "source", None), "wait", None)
        if wait is not None:
            kwargs.setdefault("poke_interval", timedelta(minutes=wait.poke_minutes))
            kwargs.setdefault("timeout", timedelta(hours=wait.timeout_hours))
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self._missing: list[str] = []

    @property
    def spec(self) -> Pipeline:
        return self.pipeline if isinstance(self.pipeline, Pipeline) else find_spec(self.pipeline)

    def poke(self, context: Any) -> bool:
        from nightshift.steps import landing

        with fail_fast():
            self._missing = landing.missing_inputs(self.spec, *scoring_interval(context))
        if self._missing:
            self.log.info("waiting for %d input(s), e.g. %s", len(self._missing), self._missing[0])
        return not self._missing

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            from nightshift.operators import alerts

            day = scoring_interval(context)[0].strftime("%Y-%m-%d")
            hours = self.timeout / 3600
            looked = ", ".join(self._missing[:5]) or "the run's input"
            message = f"data for {day} has not landed after {hours:g} h (looked for {looked})"
            alerts.send(self.spec, context, message)
            raise AirflowFailException(message) from exc
