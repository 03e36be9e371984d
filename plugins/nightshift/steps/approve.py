"""Human approval: what the approver is shown, and what their answer does to the registry.

Airflow's HITL operator collects the answer (see nightshift.render.approval); these plain functions turn
the promotion summary into the request, and the answer into registry state: approve moves
`champion`, reject (or a timeout that rejects) leaves it and records who decided and why.
"""

from __future__ import annotations

import logging

from nightshift.io import tracking
from nightshift.spec import Pipeline
from nightshift.steps.report import REPORT_ARTIFACT, metric_rows

log = logging.getLogger(__name__)
APPROVE, REJECT = "Approve", "Reject"


def request(spec: Pipeline, promotion: dict, evaluation: dict, run_id: str) -> tuple[str, str]:
    """Subject and markdown body of the approval request: key metrics, gate outcomes, where the report is."""
    version, champion = promotion["version"], evaluation.get("champion_version")
    subject = f"Promote {spec.name} version {version} to champion?"
    label = f"champion v{champion}" if champion else "champion (none yet)"
    metrics = "\n".join(
        f"| {r['metric']} | {_n(r['challenger'])} | {_n(r['champion'])} | {_n(r['difference'])} |" for r in metric_rows(spec, evaluation)
    )
    gates = "\n".join(f"- {'PASS' if g['passed'] else 'FAIL'} {g['reason']}" for g in promotion["gates"]) or "- none declared"
    timeout = f"No answer within {spec.promotion.timeout_hours:g} h: **{spec.promotion.on_timeout}**."
    suspect = promotion.get("suspect_labels") or []
    warning = ("**The new labels look suspect; check them before you approve:**\n" + "\n".join(f"- {r}" for r in suspect) + "\n\n"
               if suspect else "")
    every = "every other gate" if suspect else "every gate"
    body = f"""{warning}Version **{version}** of `{spec.name}` passed {every}. **Approve** moves alias `champion` to it;
**Reject** keeps {label} and leaves version {version} as `challenger`. Give a reason either way.

| metric | version {version} | {label} | difference |
|---|---|---|---|
{metrics}

**Gates**
{gates}

**Evaluation report:** `{evaluation.get('report_uri', 'n/a')}` (also MLflow run `{run_id}`, artifact `{REPORT_ARTIFACT}`;
model card: artifact `model_card.html`)

{timeout}
"""
    return subject, body


def decision(spec: Pipeline, response: dict) -> dict:
    """The HITL answer as a record; no responding user means the timeout default was applied."""
    chosen = (response.get("chosen_options") or [spec.promotion.on_timeout.capitalize()])[0]
    user = response.get("responded_by_user")
    reason = ((response.get("params_input") or {}).get("reason") or "").strip()
    if user is None and not reason:
        reason = f"no answer within {spec.promotion.timeout_hours:g} h (on_timeout: {spec.promotion.on_timeout})"
    return {
        "decision": "approved" if chosen == APPROVE else "rejected",
        "by": (user or {}).get("name") or "timeout", "by_id": (user or {}).get("id"),
        "at": str(response.get("responded_at") or ""), "reason": reason, "timed_out": user is None,
    }


def apply(spec: Pipeline, version: str, record: dict) -> dict:
    """Approve: `champion` moves to the version. Reject: champion stays; the version keeps `challenger`."""
    client = tracking.client()
    approved = record["decision"] == "approved"
    tags = {
        "nightshift.approval": record["decision"], "nightshift.approval.by": record["by"],
        "nightshift.approval.at": record["at"], "nightshift.approval.reason": record["reason"][:5000] or "none given",
        "nightshift.promotion": "promoted" if approved else "rejected",
        "nightshift.reason": f"{record['decision']} by {record['by']}: {record['reason'] or 'no reason given'}"[:5000],
    }
    for key, value in tags.items():
        client.set_model_version_tag(spec.name, version, key, value)
    if approved:
        tracking.move_champion(spec.name, version, by=record["by"], via="approval")
        _drop_alias_if_on(spec.name, tracking.CHALLENGER, version)
    else:
        client.set_registered_model_alias(spec.name, tracking.CHALLENGER, version)
    log.info("%s v%s %s by %s: %s", spec.name, version, record["decision"], record["by"], record["reason"])
    return {"version": version, "alias": tracking.CHAMPION if approved else tracking.CHALLENGER, **record}


def _drop_alias_if_on(name: str, alias: str, version: str) -> None:
    """An approved version is no longer a challenger."""
    from mlflow.exceptions import MlflowException

    client = tracking.client()
    try:
        if str(client.get_model_version_by_alias(name, alias).version) == str(version):
            client.delete_registered_model_alias(name, alias)
    except MlflowException:
        pass


def _n(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.4f}"
