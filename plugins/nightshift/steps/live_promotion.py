"""Live promotion: a challenger waiting for live evidence becomes champion once it beat the champion on live rows.

`promotion.live` makes promote hold a version that passed every offline gate as `challenger` (tag
`nightshift.promotion=pending_live`). `scoring.shadow: [challenger]` scores it next to the champion on the same rows
every night, and performance realizes both when the labels mature. After each scoring run this step reads those
realized rows (`<OUTPUT_TABLE>_PERFORMANCE`, ROLE served vs shadow) and moves `champion` when the challenger has at
least `min_days` dates after its own training window (earlier dates are its training labels, not evidence) and its
mean daily improvement clears `min_delta_vs_champion`. A challenger that failed an offline gate is never promoted here.
"""

from __future__ import annotations

import json
import logging
from datetime import date

from nightshift.io import tracking
from nightshift.spec import Pipeline
from nightshift.steps import performance
from nightshift.steps.promote import PENDING_LIVE, PROMOTION_TAG

log = logging.getLogger(__name__)
EVIDENCE_TAG = "nightshift.live_evidence"


def evidence(spec: Pipeline, challenger_version: str, champion_version: str, last: date) -> dict:
    """The duel of the challenger with the champion on the realized dates up to `last`, after the challenger's window."""
    window_end = tracking.moment(tracking.version_window(spec.name, challenger_version)["window_end"])
    after = {challenger_version: window_end.date()} if window_end is not None else {}
    days = max(performance.HISTORY_DAYS, 3 * spec.promotion.live.min_days + spec.training.label_delay_days)
    duels = performance.live_comparison(spec, performance.history(spec, last, days), after)
    duel = next((d for d in duels if d["shadow_version"] == challenger_version), None)
    if duel is None or champion_version not in duel["served_versions"]:
        return {"days": 0, "improvement": None, "dates": [], "metric": performance.deciding_metric(spec)}
    return duel


def decide(spec: Pipeline, duel: dict) -> tuple[bool, str]:
    """(promote?, the reason in plain words)."""
    live = spec.promotion.live
    metric, days, gain = duel["metric"], duel["days"], duel["improvement"]
    if days < live.min_days:
        return False, f"{days} of {live.min_days} live dates with realized {metric} for both versions: waiting"
    said = f"{metric} mean daily improvement over the champion on {days} live dates {gain:+.4f}"
    if gain >= live.min_delta_vs_champion:
        return True, f"{said} ≥ {live.min_delta_vs_champion:+.4f}"
    return False, f"{said}; at least {live.min_delta_vs_champion:+.4f} required: champion stays"


def promote_live(spec: Pipeline, last: date, dag_run_id: str) -> dict:
    """Move `champion` to a pending-live challenger whose live evidence clears `promotion.live`; record the evidence."""
    champion, challenger = tracking.champion(spec.name), tracking.version_by_alias(spec.name, tracking.CHALLENGER)
    if champion is None or challenger is None or str(challenger.version) == str(champion.version):
        return {"decision": "no_challenger", "reason": "no challenger beside the champion"}
    if (challenger.tags or {}).get(PROMOTION_TAG) != PENDING_LIVE:
        return {"decision": "not_pending", "challenger": str(challenger.version),
                "reason": f"challenger v{challenger.version} is not waiting for live evidence (it failed a gate or was set by hand)"}
    duel = evidence(spec, str(challenger.version), str(champion.version), last)
    promote, reason = decide(spec, duel)
    client = tracking.client()
    client.set_model_version_tag(spec.name, challenger.version, EVIDENCE_TAG, json.dumps({**duel, "reason": reason})[:5000])
    summary = {"decision": "promoted" if promote else "waiting", "challenger": str(challenger.version),
               "champion": str(champion.version), "reason": reason, **{k: duel[k] for k in ("days", "improvement", "dates")}}
    log.info("live promotion of v%s vs champion v%s: %s", challenger.version, champion.version, reason)
    if promote:
        tracking.move_champion(spec.name, str(challenger.version), by=f"DAG run {dag_run_id}", via="promote_live")
        client.set_model_version_tag(spec.name, challenger.version, PROMOTION_TAG, "promoted_live")
        client.set_model_version_tag(spec.name, challenger.version, "nightshift.reason", reason[:5000])
        client.delete_registered_model_alias(spec.name, tracking.CHALLENGER)
    return summary
