"""Promote: register the challenger and move alias `champion` only when every gate passes.

A worse model never replaces the champion: non-regression gates compare both models on the same
held-out rows, and a champion that could not be evaluated fails them (fail closed). Re-running the
task for the same DAG run reuses its version instead of registering a second one.
"""

from __future__ import annotations

import json
import logging

from nightshift.io import tracking
from nightshift.ml import governance, metrics
from nightshift.spec import Gate, Pipeline

log = logging.getLogger(__name__)


def _rule(gate: Gate) -> tuple[str, float]:
    for name in ("min", "max", "min_delta_vs_champion", "max_relative_drop_vs_champion"):
        if getattr(gate, name) is not None:
            return name, getattr(gate, name)
    raise AssertionError("a gate always has one rule")  # guaranteed by the spec model


def check_gate(gate: Gate, evaluation: dict) -> dict:
    """One gate's value, threshold and outcome, with the reason in plain words."""
    rule, threshold = _rule(gate)
    value = evaluation["challenger"].get(gate.metric, float("nan"))
    outcome = {"metric": gate.metric, "rule": rule, "threshold": threshold, "value": value}
    if value != value:
        return {**outcome, "passed": False, "reason": f"{gate.metric} is undefined on the held-out rows"}
    if rule == "min":
        return {**outcome, "passed": value >= threshold, "reason": f"{gate.metric} {value:.4f} >= {threshold}"}
    if rule == "max":
        return {**outcome, "passed": value <= threshold, "reason": f"{gate.metric} {value:.4f} <= {threshold}"}
    if evaluation.get("champion_version") is None:
        return {**outcome, "passed": True, "reason": "no champion yet: nothing to regress against"}
    champion = (evaluation.get("champion") or {}).get(gate.metric)
    if champion is None or champion != champion:
        reason = evaluation.get("champion_error") or f"champion {gate.metric} is undefined"
        return {**outcome, "passed": False, "reason": f"champion v{evaluation['champion_version']} could not be compared: {reason}"}
    gain = metrics.improvement(gate.metric, value, champion)
    outcome["champion_value"] = champion
    if rule == "min_delta_vs_champion":
        return {**outcome, "value": gain, "passed": gain >= threshold,
                "reason": f"{gate.metric} improvement over champion {gain:+.4f} >= {threshold}"}
    relative_drop = -gain / abs(champion) if champion else (0.0 if gain >= 0 else float("inf"))
    return {**outcome, "value": relative_drop, "passed": relative_drop <= threshold,
            "reason": f"{gate.metric} relative drop vs champion {relative_drop:.2%} <= {threshold:.2%}"}


def check_gates(spec: Pipeline, evaluation: dict) -> list[dict]:
    """Metric gates, then slice and fairness gates (nightshift.ml.governance)."""
    return [*(check_gate(gate, evaluation) for gate in spec.evaluation.gates), *governance.check_gates(spec, evaluation)]


def _version_of_run(name: str, run_id: str):
    """The version already registered for this MLflow run, if a previous try got that far."""
    found = tracking.client().search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return found[0] if found else None


def promote(spec: Pipeline, model_uri: str, run_id: str, evaluation: dict, dry_run: bool = False) -> dict:
    """Register the challenger; move `champion` when all gates pass, else tag why and set `challenger`.

    With `promotion.approval: required` a passing version gets `challenger` and waits for a person
    (nightshift.render.approval); the summary says so in `awaiting_approval`.
    """
    gates = evaluation["gates"] if "gates" in evaluation else check_gates(spec, evaluation)  # evaluate checked them once
    failed = [g for g in gates if not g["passed"]]
    awaiting = not failed and spec.promotion.approval == "required"  # a person decides after the gates
    summary = {"gates": gates, "passed": not failed, "dry_run": dry_run, "version": None, "alias": None,
               "awaiting_approval": awaiting and not dry_run}
    for g in gates:
        log.info("gate %s %s: %s", "PASS" if g["passed"] else "FAIL", g["metric"], g["reason"])
    if dry_run:
        log.info("dry run: registry left untouched")
        return summary
    client = tracking.client()
    tracking.ensure_registered_model(spec.name, spec.description)
    version = _version_of_run(spec.name, run_id) or client.create_model_version(
        spec.name, model_uri, run_id=run_id, description=f"Trained by DAG run {evaluation.get('dag_run_id', '')}"
    )
    tags = {
        "nightshift.gates": json.dumps(gates, default=str)[:5000],
        "nightshift.promotion": "rejected" if failed else ("pending_approval" if awaiting else "promoted"),
        "nightshift.reason": "; ".join(g["reason"] for g in failed)[:5000] if failed else
        ("all gates passed; waiting for approval" if awaiting else "all gates passed"),
        **governance.gate_tags(gates),
    }
    for key, value in tags.items():
        client.set_model_version_tag(spec.name, version.version, key, value)
    alias = tracking.CHALLENGER if failed or awaiting else tracking.CHAMPION
    client.set_registered_model_alias(spec.name, alias, version.version)
    summary.update(version=version.version, alias=alias)
    log.info("version %s of %s: alias %s (%s)", version.version, spec.name, alias, tags["nightshift.reason"])
    return summary
