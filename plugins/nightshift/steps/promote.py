"""Promote: register the challenger and move alias `champion` only when every gate passes.

A worse model never replaces the champion: non-regression gates compare both models on the same
held-out rows, and a champion that could not be evaluated fails them (fail closed). Re-running the
task for the same DAG run reuses its version instead of registering a second one.

Historical retraining is judged fairly: gates vs the champion use the version that was champion as of the run's
window end, and a backfill (window ending before the current champion's) never moves `champion` unless asked.
"""

from __future__ import annotations

import json
import logging

from nightshift.io import tracking
from nightshift.ml import governance, guards, metrics
from nightshift.spec import Gate, Pipeline
from nightshift.spec.loader import REGISTRY_OWNER_TAG, check_registry_owner, registry_owner_id

log = logging.getLogger(__name__)
LABEL_PREVALENCE_TAG = "nightshift.label_prevalence"
PROMOTION_TAG = "nightshift.promotion"  # promoted, rejected, backfill, pending_approval or pending_live
PENDING_LIVE = "pending_live"  # passed every gate; nightshift.steps.live_promotion decides on live evidence


def _rule(gate: Gate) -> tuple[str, float]:
    for name in ("min", "max", "min_delta_vs_champion", "max_relative_drop_vs_champion"):
        if getattr(gate, name) is not None:
            return name, getattr(gate, name)
    raise AssertionError("a gate always has one rule")  # guaranteed by the spec model


def _num(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) >= 1e-4 or value == 0 else f"{value:.2e}"


def check_gate(gate: Gate, evaluation: dict, not_comparable: str = "fail") -> dict:
    """One gate's value, threshold and outcome, with the reason in plain words.

    A failing reason states the rule that was broken ("roc_auc 0.6100 below the floor 0.65"); a passing one reads
    as a satisfied comparison ("roc_auc 0.8258 ≥ 0.65"). Gates vs the champion compare with the version that was
    champion as of the run's window end (nightshift.steps.evaluate.champion_metrics); when that version has seen
    this run's held-out rows the gate says `not comparable` and follows `evaluation.not_comparable`."""
    rule, threshold = _rule(gate)
    value = evaluation["challenger"].get(gate.metric, float("nan"))
    outcome = {"metric": gate.metric, "rule": rule, "threshold": threshold, "value": value}
    if value != value:
        return {**outcome, "passed": False, "reason": f"{gate.metric} is undefined on the held-out rows"}
    if rule == "min":
        passed = value >= threshold
        return {**outcome, "passed": passed, "reason": f"{gate.metric} {value:.4f} ≥ {_num(threshold)}" if passed else
                f"{gate.metric} {value:.4f} below the floor {_num(threshold)}"}
    if rule == "max":
        passed = value <= threshold
        return {**outcome, "passed": passed, "reason": f"{gate.metric} {value:.4f} ≤ {_num(threshold)}" if passed else
                f"{gate.metric} {value:.4f} above the ceiling {_num(threshold)}"}
    version = evaluation.get("champion_version")
    if version is None:
        as_of = tracking.moment(evaluation.get("window_end")) if evaluation.get("current_champion_version") else None
        when = f"as of {as_of:%Y-%m-%d}" if as_of is not None else "yet"
        return {**outcome, "passed": True, "reason": f"no champion {when}: nothing to regress against"}
    if evaluation.get("not_comparable"):
        passed = not_comparable == "pass"
        return {**outcome, "value": None, "passed": passed, "not_comparable": True,
                "reason": f"not comparable with the champion (v{version}): {evaluation['not_comparable']}; "
                          f"evaluation.not_comparable is {not_comparable}, so this gate {'passes' if passed else 'fails'}"}
    champion = (evaluation.get("champion") or {}).get(gate.metric)
    if champion is None or champion != champion:
        reason = evaluation.get("champion_error") or f"champion {gate.metric} is undefined"
        return {**outcome, "passed": False, "reason": f"champion v{version} could not be compared: {reason}"}
    gain = metrics.improvement(gate.metric, value, champion)
    outcome["champion_value"] = champion
    if rule == "min_delta_vs_champion":
        passed = gain >= threshold
        said = f"{gate.metric} improvement over the champion (v{version}) {gain:+.4f}"
        return {**outcome, "value": gain, "passed": passed,
                "reason": f"{said} ≥ {threshold:+.4f}" if passed else f"{said}; at least {threshold:+.4f} required"}
    relative_drop = -gain / abs(champion) if champion else (0.0 if gain >= 0 else float("inf"))
    passed = relative_drop <= threshold
    if relative_drop <= 0:
        reason = f"{gate.metric} {-relative_drop:.1%} better than the champion (v{version}); at most {threshold:.1%} worse allowed"
    elif passed:
        reason = f"{gate.metric} {relative_drop:.1%} worse than the champion (v{version}), within the {threshold:.1%} allowed"
    else:
        reason = f"{gate.metric} {relative_drop:.1%} worse than the champion (v{version}); at most {threshold:.1%} allowed"
    return {**outcome, "value": relative_drop, "passed": passed, "reason": reason}


def check_gates(spec: Pipeline, evaluation: dict) -> list[dict]:
    """Metric gates, slice and fairness gates (nightshift.ml.governance), then the guards (nightshift.ml.guards: target
    leak, plausibility, label sanity)."""
    policy = spec.evaluation.not_comparable
    return [*(check_gate(gate, evaluation, policy) for gate in spec.evaluation.gates), *governance.check_gates(spec, evaluation),
            *guards.check_gates(spec, evaluation)]


def label_tags(spec: Pipeline, evaluation: dict) -> dict[str, str]:
    """The version's training label stats (what a later run's label guard compares with)."""
    stats = evaluation.get("label_stats") or {}
    names = {"prevalence": LABEL_PREVALENCE_TAG, "mean": "nightshift.label_mean", "std": "nightshift.label_std"}
    return {tag: f"{stats[key]:.6g}" for key, tag in names.items() if stats.get(key) is not None}


def backfill_reason(spec: Pipeline, evaluation: dict) -> str | None:
    """Why this run is a backfill (its window ends before the current champion's), or None."""
    mine = tracking.moment(evaluation.get("window_end"))
    current = tracking.champion(spec.name)
    if mine is None or current is None:
        return None
    theirs = tracking.moment(tracking.version_window(spec.name, current)["window_end"])
    if theirs is None or mine >= theirs:
        return None
    return (f"backfill: training window ends {mine:%Y-%m-%d}, before the window of the current champion "
            f"(v{current.version}, {theirs:%Y-%m-%d})")


def _version_of_run(name: str, run_id: str):
    """The version already registered for this MLflow run, if a previous try got that far."""
    found = tracking.client().search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return found[0] if found else None


def live_hold_reason(spec: Pipeline, as_challenger: bool) -> str | None:
    """Why a version that passed every gate becomes `challenger` rather than champion, or None: the trigger form's
    `as_challenger`, or `promotion.live` while a champion exists (the first model has nothing to be compared with live)."""
    if as_challenger:
        return "registered as challenger (as_challenger): it is shadow-scored, champion unchanged"
    live = spec.promotion.live
    if live is None or tracking.champion(spec.name) is None:
        return None
    return (f"waiting for live evidence: promote_live moves champion after {live.min_days} realized dates on the same rows "
            f"as the champion, improving by at least {live.min_delta_vs_champion:+g}")


def promote(spec: Pipeline, model_uri: str, run_id: str, evaluation: dict, dry_run: bool = False,
            promote_backfill: bool = False, owner: str | None = None, as_challenger: bool = False) -> dict:
    """Register the challenger; move `champion` when all gates pass, else tag why and set `challenger`.

    With `promotion.approval: required` a passing version gets `challenger` and waits for a person
    (nightshift.render.approval); the summary says so in `awaiting_approval`. A backfill (window ending before the
    current champion's) is registered and tagged `nightshift.backfill=true`, but leaves every alias alone unless
    `promote_backfill` (trigger form) asks for it. Every move of `champion` is recorded in its history.
    """
    gates = evaluation["gates"] if "gates" in evaluation else check_gates(spec, evaluation)  # evaluate checked them once
    suspect = [g for g in gates if not g["passed"] and g.get("approvable")]  # suspect labels: a person decides with the evidence
    failed = [g for g in gates if not g["passed"] and not g.get("approvable")]
    backfill = backfill_reason(spec, evaluation)
    held = backfill is not None and not promote_backfill  # registered and reported, never promoted
    awaiting = not failed and not held and spec.promotion.approval == "required"  # a person decides after the gates
    live_hold = None if failed or held or awaiting else live_hold_reason(spec, as_challenger)
    leaks = [g["leak"] for g in gates if not g["passed"] and g.get("leak")]
    summary = {"gates": gates, "passed": not failed, "dry_run": dry_run, "version": None, "alias": None,
               "awaiting_approval": awaiting and not dry_run, "backfill": backfill, "promote_backfill": promote_backfill,
               "suspect_labels": [g["reason"] for g in suspect], "live_hold": live_hold}
    for g in gates:
        log.info("gate %s %s: %s", "PASS" if g["passed"] else "FAIL", g["metric"], g["reason"])
    for g in gates:
        if not g["passed"] and g.get("kind") in (guards.LEAK, guards.PLAUSIBLE, guards.LABELS):
            log.warning("%s: %s", spec.name, g["reason"])
    if backfill:
        log.info("%s; %s", backfill, "promote_backfill is set: it may become champion" if promote_backfill else "champion stays")
    if dry_run:
        log.info("dry run: registry left untouched")
        return summary
    client = tracking.client()
    tracking.ensure_registered_model(spec.name, spec.description)
    if owner:  # the spec file that registers first owns the name; check_owner refused any other at ingest
        check_registry_owner(spec.name, owner, tracking.registered_model_tag(spec.name, REGISTRY_OWNER_TAG))
        client.set_registered_model_tag(spec.name, REGISTRY_OWNER_TAG, registry_owner_id(owner))
    version = _version_of_run(spec.name, run_id) or client.create_model_version(
        spec.name, model_uri, run_id=run_id, description=f"Trained by DAG run {evaluation.get('dag_run_id', '')}"
    )
    reason = "; ".join(g["reason"] for g in failed) if failed else (
        "all gates passed; waiting for approval" if awaiting else "all gates passed")
    if suspect and not failed:
        reason = "; ".join(g["reason"] for g in suspect) + ("; waiting for approval" if awaiting else "")
    if held:
        reason = f"{backfill}; champion unchanged (trigger with promote_backfill to promote it); {reason}"
    if live_hold:
        reason = f"{reason}; {live_hold}"
    tags = {
        "nightshift.gates": json.dumps(gates, default=str, ensure_ascii=False)[:5000],
        PROMOTION_TAG: "backfill" if held else "rejected" if failed else (
            "pending_approval" if awaiting else PENDING_LIVE if live_hold else "promoted"),
        "nightshift.reason": reason[:5000],
        **{key: evaluation[field] for key, field in ((tracking.WINDOW_END_TAG, "window_end"), (tracking.FIT_END_TAG, "fit_end"))
           if evaluation.get(field)},
        **({tracking.BACKFILL_TAG: "true", f"{tracking.BACKFILL_TAG}.reason": backfill[:5000]} if backfill else {}),
        **governance.gate_tags(gates),
        **label_tags(spec, evaluation),
        **({"nightshift.leak": "; ".join(leaks)[:5000]} if leaks else {}),
        **({"nightshift.label_check": "; ".join(g["reason"] for g in suspect)[:5000]} if suspect else {}),
    }
    for key, value in tags.items():
        client.set_model_version_tag(spec.name, version.version, key, value)
    alias = None if held else tracking.CHALLENGER if failed or awaiting or live_hold else tracking.CHAMPION
    if alias == tracking.CHAMPION:
        tracking.move_champion(spec.name, version.version, by=f"DAG run {evaluation.get('dag_run_id') or run_id}", via="promote",
                               window_end=evaluation.get("window_end"))
    elif alias is not None:
        client.set_registered_model_alias(spec.name, alias, version.version)
    summary.update(version=version.version, alias=alias)
    log.info("version %s of %s: alias %s (%s)", version.version, spec.name, alias or "unchanged", tags["nightshift.reason"])
    return summary


def check_owner(spec: Pipeline, owner: str | None) -> None:
    """Before training: the registered model `spec.name` must belong to this spec file (or to nobody yet), so a
    renamed or copied file cannot adopt another pipeline's registry history silently (SpecError otherwise)."""
    if owner:
        check_registry_owner(spec.name, owner, tracking.registered_model_tag(spec.name, REGISTRY_OWNER_TAG))
