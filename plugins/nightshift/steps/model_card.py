"""Model card: one short document per registered version, for people who did not train it.

Written as markdown (diffable, readable in the MLflow UI) and rendered to HTML by the reporting layer
with raw HTML off (markdown-it), so tags in a description, a category value or an approval reason
arrive in `model_card.html` as text.
It is logged with the version's run as `model_card.md` / `model_card.html` and the version carries
the tag `nightshift.model_card` pointing at it. It is rewritten when an approval decision lands.
"""

from __future__ import annotations

import logging
from typing import Any

from nightshift.ml import governance
from nightshift.reporting import html as pages
from nightshift.reporting.formatting import bounds, training_rows
from nightshift.spec import Pipeline
from nightshift.steps.report import metric_rows

log = logging.getLogger(__name__)
CARD_MD, CARD_HTML = "model_card.md", "model_card.html"
CARD_TAG = "nightshift.model_card"
LINEAGE_TAGS = ("spec_hash", "git_commit", "dag_run_id", "data_hash", "window_start", "window_end", "train_source")


def _n(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value).replace("|", "\\|")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_n(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def features_text(spec: Pipeline) -> str:
    f = spec.features
    kinds = [("numeric", f.numeric.columns), ("categorical", f.categorical.columns), ("datetime", f.datetime.columns),
             ("passthrough", f.passthrough)]

    def named(column: str) -> str:
        declared = spec.columns.get(column)
        rule = bounds(declared.min, declared.max) if declared is not None else None
        return f"`{column}` ({rule})" if rule else f"`{column}`"

    lines = [f"- {kind}: " + ", ".join(named(c) for c in cols) for kind, cols in kinds if cols]
    lines += [f"- derived: `{d.name} = {d.expr}`" for d in f.derived]
    lines += ["- never used: " + ", ".join(f"`{c}`" for c in f.drop)] if f.drop else []
    return "\n".join(lines)


def slices_text(spec: Pipeline, evaluation: dict) -> str:
    parts = []
    for column, groups in (evaluation.get("slices") or {}).items():
        rows = [[g["group"], g["rows"], *(g["metrics"].get(m) for m in spec.metrics), "yes" if g["gated"] else "no (too few rows)"]
                for g in groups]
        parts.append(f"**{column}**\n\n" + _table(["group", "rows", *spec.metrics, "gates"], rows))
    for attribute, groups in (evaluation.get("fairness") or {}).items():
        rows = [[g["group"], g["rows"], g["tpr"], g["fpr"], g["positive_rate"]] for g in groups]
        parts.append(f"**{attribute}** (rates at threshold {spec.evaluation.threshold})\n\n"
                     + _table(["group", "rows", "TPR", "FPR", "positive rate"], rows))
    return "\n\n".join(parts) or "No slices declared."


def approval_text(spec: Pipeline, approval: dict | None, promotion: dict) -> str:
    if spec.promotion.approval == "none":
        return "Not required: the champion moves when every gate passes."
    if not promotion.get("passed"):
        return "Not asked: a gate failed."
    if approval is None:
        return (f"**Pending.** Waiting up to {spec.promotion.timeout_hours:g} h in Airflow (Required Actions); "
                f"no answer means {spec.promotion.on_timeout}.")
    who = "nobody answered in time (timeout)" if approval["timed_out"] else approval["by"]
    return f"**{approval['decision'].capitalize()}** by {who} at {approval['at']}. Reason: {approval['reason'] or 'none given'}."


def card_markdown(spec: Pipeline, version: str, evaluation: dict, promotion: dict, data: dict, lineage: dict,
                  approval: dict | None = None) -> str:
    """The card's markdown: what, for whom, on which data, how good, which gates, who decided."""
    status = (approval or {}).get("decision") or ("promoted" if promotion.get("alias") == "champion" else
                                                 "pending approval" if promotion.get("awaiting_approval") else
                                                 "backfill, champion unchanged" if promotion.get("backfill") and not promotion.get("alias")
                                                 else "rejected")
    champion = evaluation.get("champion_version")
    metrics = _table(["metric", "this version", f"champion v{champion}" if champion else "champion", "difference"],
                     [[r["metric"], r["challenger"], r["champion"], r["difference"]] for r in metric_rows(spec, evaluation)])
    gates = _table(["gate", "value", "threshold", "outcome", "reason"],
                   [[governance.gate_name(g), g.get("value"), g.get("threshold"), "PASS" if g["passed"] else "FAIL", g["reason"]]
                    for g in promotion.get("gates") or []]) if promotion.get("gates") else "No gates declared."
    model = spec.model.estimator or "xgboost"
    return f"""# Model card: {spec.name} version {version}

**Status:** {status} · **owner:** {spec.owner} · **task:** {spec.target.task} on `{spec.target.column}`

{spec.description}

## Intended use
{spec.intended_use or "Not declared in the spec (`intended_use`)."}

## Model
`{model}` with parameters `{dict(spec.model.params)}`{' after tuning' if spec.model.tuning else ''}.

## Training data
- source: {data.get('source') or lineage.get('train_source') or 'n/a'}
- window: {lineage.get('window_start') or 'whole source'} .. {lineage.get('window_end') or ''}
- rows: {data.get('rows', 'n/a')} in window, {training_rows(data)} for training, {evaluation.get('test_rows', 'n/a')} held out
- data hash: `{lineage.get('data_hash', 'n/a')}`

## Features
{features_text(spec)}

## Metrics on held-out rows
{metrics}

## Slices
{slices_text(spec, evaluation)}

## Gates
{gates}

## Lineage
- spec hash: `{lineage.get('spec_hash', 'n/a')}`
- git commit: `{lineage.get('git_commit') or 'n/a'}`
- DAG run: `{lineage.get('dag_run_id', 'n/a')}`
- MLflow run: `{lineage.get('mlflow_run_id', 'n/a')}`
- evaluation report: `{evaluation.get('report_uri', 'n/a')}` (MLflow artifact `evaluation/report.html`)

## Approval
{approval_text(spec, approval, promotion)}
"""


def card_html(spec: Pipeline, text: str) -> str:
    """The card's markdown as an HTML page; raw HTML in the text is shown as text, never run."""
    return pages.render("model_card.html", spec=spec, body=pages.markdown_html(text))


def lineage(run_id: str) -> dict:
    """The lineage tags the train step wrote to the version's run."""
    from nightshift.io import tracking

    tags = tracking.client().get_run(run_id).data.tags
    return {**{k: tags.get(f"nightshift.{k}") for k in LINEAGE_TAGS}, "mlflow_run_id": run_id}


def publish(spec: Pipeline, version: str, run_id: str, text: str) -> str:
    """Log the card with the version's run and point the version at it."""
    from nightshift.io import tracking

    client = tracking.client()
    client.log_text(run_id, text, CARD_MD)
    client.log_text(run_id, card_html(spec, text), CARD_HTML)
    uri = f"runs:/{run_id}/{CARD_HTML}"
    client.set_model_version_tag(spec.name, version, CARD_TAG, uri)
    log.info("model card of %s v%s: %s", spec.name, version, uri)
    return uri
