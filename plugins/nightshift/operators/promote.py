"""Promote operator: register the challenger; `champion` moves only when every gate (checked by evaluate) passed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nightshift.operators.base import NightshiftOperator, params
from nightshift.operators.lineage import LineageMixin, model_dataset


def card_data(ingested: dict, trained: dict) -> dict:
    return {"source": ingested.get("source"), "rows": ingested.get("rows"), "train_rows": trained.get("train_rows"),
            "train_rows_available": trained.get("train_rows_available")}


class PromoteOperator(LineageMixin, NightshiftOperator):
    """Register the version and set its alias from `evaluated['gates']`; write its model card.
    A `dry_run` trigger leaves the registry untouched; `promote_backfill` lets a backfill (window ending before the
    current champion's) become champion when its gates pass; `as_challenger` registers a passing version as `challenger`
    (shadow-scored, champion unchanged)."""

    template_fields: Sequence[str] = ("pipeline", "ingested", "trained", "evaluated")
    ui_color = "#fde8e8"

    def __init__(self, *, ingested: Any, trained: Any, evaluated: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingested, self.trained, self.evaluated = ingested, trained, evaluated

    def run_step(self, context: Any) -> dict:
        from nightshift.steps import model_card, promote

        spec, ingested = self.spec, self.ingested
        promoted = promote.promote(spec, self.trained["model_uri"], ingested["mlflow_run_id"], self.evaluated,
                                   dry_run=bool(params(context).get("dry_run")),
                                   promote_backfill=bool(params(context).get("promote_backfill")), owner=self.spec_owner(),
                                   as_challenger=bool(params(context).get("as_challenger")))
        if not promoted.get("version"):
            return promoted
        self.record_lineage(outputs=[(*model_dataset(spec.name, promoted["version"]), None)])
        run = ingested["mlflow_run_id"]
        text = model_card.card_markdown(spec, promoted["version"], self.evaluated, promoted, card_data(ingested, self.trained),
                                        model_card.lineage(run))
        return {**promoted, "model_card": model_card.publish(spec, promoted["version"], run, text)}
