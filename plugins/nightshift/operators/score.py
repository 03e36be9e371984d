"""Scoring operators: pin one model version, plan shards, score each shard (mapped), summarise the run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from nightshift.operators.base import NightshiftOperator, check_tracking_store, params, pinned_scored_at, run_id
from nightshift.operators.lineage import LineageMixin, location_dataset, model_dataset


class ResolveModelOperator(NightshiftOperator):
    """Turn the form's `model` (default `champion`) into one registry version, pinned for every shard.

    Also fixes `scored_at`, the time this run scores, once: every row of the run carries the same
    `SCORED_AT`, even when a shard is cleared and retried."""

    ui_color = "#fde8e8"
    pins_after_step = True  # an outage here must leave no file behind

    def check_params(self, context: Any) -> None:
        from nightshift.steps import score

        score.check_model_reference(params(context).get("model"))

    def run_step(self, context: Any) -> dict:
        from nightshift.steps import score

        check_tracking_store(self.spec)
        try:
            pinned = score.resolve_model(self.spec, params(context).get("model"))
        except ValueError as exc:
            raise score.ModelNotFound(str(exc)) from exc
        return {**pinned, "scored_at": datetime.now(timezone.utc).isoformat()}


class PlanShardsOperator(NightshiftOperator):
    """Spread the snapshot's row groups over `scoring.shards` shards (the mapped `score` tasks)."""

    template_fields: Sequence[str] = ("pipeline", "ingested", "validated")

    def __init__(self, *, ingested: Any, validated: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingested, self.validated = ingested, validated

    def run_step(self, context: Any) -> list[dict]:
        from nightshift.steps import score

        return score.plan_shards(self.spec, self.ingested["snapshot_uri"])


class ScoreShardOperator(LineageMixin, NightshiftOperator):
    """Stream one shard's row groups through the pinned model into a staging file (mapped over `shard`)."""

    template_fields: Sequence[str] = ("pipeline", "shard", "ingested", "model_ref")
    ui_color = "#e8f0fe"

    def __init__(self, *, shard: Any, ingested: Any, model_ref: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard, self.ingested, self.model_ref = shard, ingested, model_ref

    def run_step(self, context: Any) -> dict:
        from nightshift.steps import score

        pinned = self.model_ref
        scored_at = pinned_scored_at(pinned, context)
        result = score.score_shard(self.spec, self.ingested["snapshot_uri"], self.shard, pinned, run_id(context), scored_at,
                                   self.ingested["run_dir"])
        self.record_lineage([location_dataset(self.ingested["snapshot_uri"]), model_dataset(pinned["model_name"], pinned["model_version"])],
                            [(*location_dataset(result["uri"]), result["rows"])])
        return result


class SummaryOperator(NightshiftOperator):
    """One log line and XCom a person (or the CLI) reads: dates, rows read and published, model."""

    template_fields: Sequence[str] = ("pipeline", "ingested", "model_ref", "published")

    def __init__(self, *, ingested: Any, model_ref: Any, published: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingested, self.model_ref, self.published = ingested, model_ref, published

    def run_step(self, context: Any) -> dict:
        published = self.published or {"rows": 0, "dry_run": bool(params(context).get("dry_run"))}
        summary = {
            "partition_dates": self.ingested["partition_dates"], "rows_read": self.ingested["rows"],
            "rows_published": published["rows"], "dry_run": published.get("dry_run", False),
            "model": f"{self.model_ref['model_name']} v{self.model_ref['model_version']}",
            "resolved_from": self.model_ref["resolved_from"],
        }
        self.log.info("scoring summary: %s", summary)
        return summary
