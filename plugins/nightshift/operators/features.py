"""Features operator: split the training snapshot into training and held-out rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nightshift.operators.base import NightshiftOperator


class FeaturesOperator(NightshiftOperator):
    """Split `ingested`'s snapshot (by time or seeded at random) and save both halves to the run folder."""

    template_fields: Sequence[str] = ("pipeline", "ingested")

    def __init__(self, *, ingested: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingested = ingested

    def run_step(self, context: Any) -> dict:
        from nightshift.steps import features

        try:
            return features.prepare(self.spec, self.ingested["snapshot_uri"], self.ingested["run_dir"],
                                    window=self.ingested.get("window"))
        except ValueError as exc:  # e.g. classes only in the held-out rows: the data, not an outage
            from nightshift.steps.ingest import IngestError

            raise IngestError(str(exc)) from exc
