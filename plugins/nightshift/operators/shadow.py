"""Shadow scoring operator: the listed challenger versions score the run's rows into `<table>_SHADOW`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nightshift.operators.base import NightshiftOperator, pinned_scored_at, run_id
from nightshift.operators.lineage import LineageMixin, model_dataset, table_dataset


class ShadowScoreOperator(LineageMixin, NightshiftOperator):
    """Score `scoring.shadow` (aliases or versions, each pinned once) on the same snapshot as the champion; runs
    after publish, so a shadow problem never holds the champion's scores back."""

    template_fields: Sequence[str] = ("pipeline", "ingested", "model_ref")
    ui_color = "#eeeeee"

    def __init__(self, *, ingested: Any, model_ref: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingested, self.model_ref = ingested, model_ref

    def run_step(self, context: Any) -> dict:
        from nightshift.steps import shadow

        pinned = self.model_ref
        scored_at = pinned_scored_at(pinned, context)
        result = shadow.score_shadows(self.spec, self.ingested, pinned, run_id(context), scored_at)
        spec = self.spec
        self.record_lineage([model_dataset(spec.name, v) for v in result["versions"]],
                            [(*table_dataset(result["table"], spec.scoring.warehouse_conn_id), result["rows"])])
        return result
