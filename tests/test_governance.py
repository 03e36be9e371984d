"""Model governance: evaluation report, slice and fairness gates, model card, approval, rollback."""

from __future__ import annotations

import copy
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nightshift.ml import governance
from nightshift.io import tracking
from nightshift_demo.generate import credit_applications_for_day
from nightshift.spec import SpecError, find_spec, parse_spec
from nightshift.steps import approve, features, ingest, model_card, promote, report, score, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """One MLflow store for this module's registry tests (each test uses its own model name): creating a
    store costs seconds."""
    local = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NIGHTSHIFT_LOCAL_DIR", str(local))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{local / 'mlflow.db'}")
        yield local


def renamed(spec, name: str):
    return spec.model_copy(update={"name": name})


def credit_doc() -> dict:
    return yaml.safe_load((ROOT / "include" / "pipelines" / "credit_default.yaml").read_text())


def governed_spec(**evaluation):
    """credit_default with a slice gate and a fairness gate on region (plus any overrides)."""
    doc = credit_doc()
    doc["evaluation"].update({"slices": ["region"], "slice_gates": [{"slice": "region", "metric": "roc_auc", "min": 0.6}],
                              "fairness": [{"attribute": "region", "metric": "tpr_gap", "max": 0.1}], **evaluation})
    return parse_spec(doc)


def multiclass_spec():
    """The credit data with `grade` as a multiclass target (a hand-made spec, no YAML file)."""
    doc = credit_doc()
    doc["target"] = {"column": "grade", "task": "multiclass"}
    doc["features"]["categorical"]["columns"] = ["region", "home_ownership"]
    doc["model"] = {"flavor": "sklearn", "estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}}
    doc["evaluation"] = {"slices": ["home_ownership"]}
    del doc["scoring"]["threshold"]
    return parse_spec(doc)


def credit_rows(days: int = 20, rows: int = 60) -> pd.DataFrame:
    return pd.concat([credit_applications_for_day(date(2025, 11, d + 1), rows=rows) for d in range(days)], ignore_index=True)


def fitted(spec, rows: pd.DataFrame):
    train_rows, test_rows = features.split(spec, rows)
    model = train.fit_pipeline(spec, train_rows)
    evaluation = {"challenger": train.score_model(spec, model, test_rows, spec.metrics), "champion": None,
                  "champion_version": None, "champion_error": None, "test_rows": len(test_rows)}
    return model, train_rows, test_rows, evaluation


# --- spec ----------------------------------------------------------------------------------------

def test_governance_fields_are_optional_and_cross_checked():
    spec = governed_spec(min_slice_rows=50)
    assert spec.evaluation.min_slice_rows == 50 and spec.promotion.approval == "none"
    assert find_spec("credit_default").promotion.on_timeout == "reject"  # defaults keep old specs valid
    doc = credit_doc()
    doc["evaluation"]["slice_gates"] = [{"slice": "grade", "metric": "rmse", "min": 0.5}]
    doc["evaluation"]["fairness"] = [{"attribute": "income", "metric": "tpr_gap", "max": 0.1}]
    doc["promotion"] = {"approval": "sometimes"}
    with pytest.raises(SpecError) as caught:
        parse_spec(doc)
    text = str(caught.value)
    assert "promotion.approval" in text
    doc["promotion"] = {"approval": "required"}
    with pytest.raises(SpecError) as caught:
        parse_spec(doc)
    text = str(caught.value)
    assert "evaluation.slice_gates[0].slice: 'grade' is not among evaluation.slices" in text
    assert "evaluation.slice_gates[0].metric: 'rmse' is not among evaluation.metrics" in text
    assert "evaluation.fairness[0].attribute: column 'income' has type float" in text


def test_fairness_needs_a_binary_task():
    doc = yaml.safe_load((ROOT / "include" / "pipelines" / "house_prices.yaml").read_text())
    doc["evaluation"]["fairness"] = [{"attribute": "condition", "metric": "positive_rate_gap", "max": 0.1}]
    with pytest.raises(SpecError, match="fairness gaps apply to binary tasks only"):
        parse_spec(doc)


# --- report --------------------------------------------------------------------------------------

def _check_report(html: str, titles: list[str], sections: list[str]) -> None:
    assert html.startswith("<!doctype html>")
    assert not re.search(r"(src|href)=['\"]https?:", html)  # self-contained
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", html)
    assert all(any(c.startswith(t) for c in captions) for t in titles), captions
    assert html.count("data:image/png;base64,") == len(captions)
    for section in sections:
        assert section in html, section


def test_report_binary_has_every_section_and_plot():
    spec = find_spec("credit_default")
    model, train_rows, test_rows, evaluation = fitted(spec, credit_rows())
    evaluation.update(champion={k: v - 0.01 for k, v in evaluation["challenger"].items()}, champion_version="1")
    data = {"rows": 1200, "window": {"start": "2025-11-01", "end": "2025-11-21"}, "data_hash": "abc123"}
    validation = {"success": True, "evaluated": 2, "rows": 1200, "results": [{"column": "income", "rule": ">= 0", "success": True}]}
    html, assessed, gates = report.build(spec, model, test_rows, train.target_values(spec, train_rows), evaluation, data, validation)
    _check_report(html, ["ROC curve", "Precision-recall curve", "Calibration", "Confusion matrix at 0.3", "Feature importance"],
                  ["Class balance", "Validation (Great Expectations)", "champion v1", "2025-11-01 .. 2025-11-21", "abc123",
                   "<h3>region</h3>", "<h3>home_ownership</h3>", "roc_auc.min_delta_vs_champion", "region.roc_auc.slice_min",
                   "<h2>Fairness</h2>", "region.positive_rate_gap.max"])
    assert "0.0100 ▲" in html  # challenger minus champion, better
    assert set(assessed["slices"]["region"][0]) >= {"group", "rows", "positives", "gated", "metrics"}
    assert [g["passed"] for g in gates] == [True, True, True, True], gates


def test_report_multiclass_from_a_hand_made_spec():
    spec = multiclass_spec()
    model, train_rows, test_rows, evaluation = fitted(spec, credit_rows())
    html, assessed, gates = report.build(spec, model, test_rows, train.target_values(spec, train_rows), evaluation, {})
    _check_report(html, ["ROC curves (one-vs-rest)", "Confusion matrix (most probable class)", "Feature importance"],
                  ["Class balance: grade", "<td>G</td>", "<h3>home_ownership</h3>", "f1_macro"])
    assert {g["group"] for g in assessed["slices"]["home_ownership"]} == {"mortgage", "own", "rent"}


def test_report_regression_shows_distribution_residuals_and_predictions(house_data):
    spec = find_spec("house_prices")
    rows, _ = ingest.read_rows(spec, None, with_target=True, require_all=True)
    model, train_rows, test_rows, evaluation = fitted(spec, rows.head(600))
    html, _, _ = report.build(spec, model, test_rows, train.target_values(spec, train_rows), evaluation, {"rows": 600})
    _check_report(html, ["Residuals", "Predicted vs actual"], ["Target distribution: price", "50%", "r2.min"])
    assert "Class balance" not in html and "<h2>Fairness</h2>" not in html


# --- slice and fairness gates ----------------------------------------------------------------------

def constructed(gap: bool) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Groups a and b (100 rows, 50 positives each) and a tiny group c; with `gap`, b's positives are all missed."""
    region = np.array(["north"] * 100 + ["south"] * 100 + ["east"] * 6)
    y = np.array(([1] * 50 + [0] * 50) * 2 + [1, 0] * 3)
    scores = np.where(y == 1, 0.9, 0.1).astype(float)
    if gap:
        scores[100:150] = 0.2  # south's positives ranked above its negatives (AUC 1) but below the 0.3 threshold
    scores[-6:] = [0.1, 0.9, 0.1, 0.9, 0.1, 0.9]  # tiny east: everything wrong, reported but never gating
    return pd.DataFrame({"region": region}), y, scores


def test_tiny_groups_are_reported_but_never_gate():
    spec = governed_spec()
    frame, y, scores = constructed(gap=False)
    assessed = governance.assess(spec, frame, y, scores)
    east = next(g for g in assessed["slices"]["region"] if g["group"] == "east")
    assert east["rows"] == 6 and east["gated"] is False and east["metrics"]["roc_auc"] == 0.0
    outcomes = governance.check_gates(spec, assessed)
    assert [g["passed"] for g in outcomes] == [True, True], outcomes
    assert outcomes[1]["value"] == 0.0 and "north" in outcomes[1]["reason"]


def test_fairness_gap_blocks_promotion_and_champion_stays(registry):
    spec = renamed(governed_spec(), "fairness_case")
    client = tracking.client()
    fair, unfair = (governance.assess(spec, *constructed(gap)) for gap in (False, True))
    metrics = {"challenger": {"roc_auc": 0.9, "pr_auc": 0.8, "log_loss": 0.2}, "champion": None, "champion_version": None,
               "champion_error": None}
    first = tracking.run_for_dag_run(spec.name, "run-1")
    assert promote.promote(spec, f"runs:/{first}/model", first, {**metrics, **fair})["alias"] == "champion"
    second = tracking.run_for_dag_run(spec.name, "run-2")
    challenger = {**metrics, "champion": metrics["challenger"], "champion_version": "1", **unfair}
    summary = promote.promote(spec, f"runs:/{second}/model", second, challenger)
    assert summary["passed"] is False and summary["alias"] == "challenger"
    assert str(tracking.champion(spec.name).version) == "1"
    tags = client.get_model_version(spec.name, "2").tags
    assert tags["nightshift.promotion"] == "rejected"
    assert "region: tpr_gap 1.0000 (north vs south) exceeds 0.1" in tags["nightshift.reason"]
    assert tags["nightshift.gate.3.region.tpr_gap.max"] == "fail"
    assert tags["nightshift.gate.3.region.tpr_gap.max.value"] == "1" and tags["nightshift.gate.3.region.tpr_gap.max.threshold"] == "0.1"
    assert tags["nightshift.gate.2.region.roc_auc.slice_min"] == "pass"  # the ranking is still perfect per group


def test_missing_slice_data_fails_closed():
    outcomes = governance.check_gates(governed_spec(), {"challenger": {}})
    assert [g["passed"] for g in outcomes] == [False, False]
    assert "fail closed" in outcomes[0]["reason"]


# --- aliases ---------------------------------------------------------------------------------------

def test_rollback_moves_champion_back_and_scoring_resolves_it(registry):
    spec = renamed(find_spec("credit_default"), "rollback_case")
    client = tracking.client()
    tracking.ensure_registered_model(spec.name, spec.description)
    runs = [tracking.run_for_dag_run(spec.name, f"run-{i}") for i in (1, 2)]
    for run in runs:
        version = client.create_model_version(spec.name, f"runs:/{run}/model", run_id=run)
        client.set_registered_model_alias(spec.name, tracking.CHAMPION, version.version)
    assert score.resolve_model(spec)["model_version"] == "2"
    client.set_registered_model_alias(spec.name, tracking.CHAMPION, "1")  # the rollback
    resolved = score.resolve_model(spec)
    assert (resolved["model_version"], resolved["mlflow_run_id"]) == ("1", runs[0])


# --- model card and approval ----------------------------------------------------------------------

def _card_inputs(spec):
    frame, y, scores = constructed(gap=False)
    evaluation = {"challenger": {"roc_auc": 0.81, "pr_auc": 0.5, "log_loss": 0.3}, "champion": {"roc_auc": 0.8, "pr_auc": 0.5,
                  "log_loss": 0.31}, "champion_version": "1", "test_rows": 206, "report_uri": "/runs/x/evaluate/report.html",
                  **governance.assess(spec, frame, y, scores)}
    promotion = {"version": "2", "alias": "challenger", "passed": True, "awaiting_approval": True,
                 "gates": promote.check_gates(spec, evaluation)}
    lineage = {"spec_hash": "s123", "git_commit": "c0ffee", "dag_run_id": "manual__x", "data_hash": "d456",
               "window_start": "2025-07-01", "window_end": "2025-12-28", "mlflow_run_id": "r789"}
    return evaluation, promotion, lineage


def test_model_card_contents_and_approval_record():
    spec = governed_spec(min_slice_rows=30).model_copy(update={"promotion": parse_spec(
        {**credit_doc(), "promotion": {"approval": "required"}}).promotion})
    evaluation, promotion, lineage = _card_inputs(spec)
    pending = model_card.card_markdown(spec, "2", evaluation, promotion, {"rows": 7000, "train_rows": 5600}, lineage)
    for expected in ["# Model card: credit_default version 2", "**Status:** pending approval", "## Intended use",
                     "manual review by the credit-risk team", "2025-07-01 .. 2025-12-28", "7000 in window, 5600 for training",
                     "`d456`", "`application_date`", "`debt_to_income = debt / income`", "| roc_auc | 0.8100 | 0.8000 | 0.0100 |",
                     "**region**", "region.tpr_gap.max", "`s123`", "`c0ffee`", "`manual__x`", "/runs/x/evaluate/report.html",
                     "**Pending.** Waiting up to 24 h"]:
        assert expected in pending, expected
    record = approve.decision(spec, {"chosen_options": ["Reject"], "params_input": {"reason": "slice east looks odd"},
                                     "responded_at": "2026-02-01T10:00:00+00:00", "responded_by_user": {"id": "ana", "name": "Ana"}})
    assert record == {"decision": "rejected", "by": "Ana", "by_id": "ana", "at": "2026-02-01T10:00:00+00:00",
                      "reason": "slice east looks odd", "timed_out": False}
    decided = model_card.card_markdown(spec, "2", evaluation, promotion, {}, lineage, record)
    assert "**Rejected** by Ana at 2026-02-01T10:00:00+00:00. Reason: slice east looks odd." in decided
    html = model_card.card_html(spec, decided)
    assert "<table>" in html and "<h2>Lineage</h2>" in html


def test_timeout_applies_the_declared_outcome():
    spec = governed_spec()
    timed_out = {"chosen_options": ["Reject"], "params_input": {"reason": ""}, "responded_at": "t", "responded_by_user": None}
    record = approve.decision(spec, timed_out)
    assert (record["decision"], record["by"], record["timed_out"]) == ("rejected", "timeout", True)
    assert "no answer within 24 h (on_timeout: reject)" in record["reason"]
    doc = credit_doc()
    doc["promotion"] = {"approval": "required", "timeout_hours": 2, "on_timeout": "approve", "approvers": ["ana"]}
    lenient = parse_spec(doc)
    assert approve.decision(lenient, {**timed_out, "chosen_options": ["Approve"]})["decision"] == "approved"
    from nightshift.render import build_train_dag

    dag = build_train_dag(lenient)
    ask = dag.task_dict["approve"]
    assert [t.task_id for t in dag.tasks][-3:] == ["promote", "approve", "apply_approval"]
    assert ask.defaults == ["Approve"] and ask.response_timeout.total_seconds() == 7200
    assert ask.assigned_users == [{"id": "ana", "name": "ana"}] and "reason" in ask.params


class FakeTI:
    def __init__(self, xcoms: dict):
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str):
        return self.xcoms.get(task_ids)


def test_approval_request_shows_metrics_gates_and_report_and_is_skipped_after_a_failed_gate():
    from airflow.sdk.exceptions import AirflowSkipException

    from nightshift.render.approval import PromotionApproval

    spec = governed_spec()
    evaluation, promotion, _ = _card_inputs(spec)
    subject, body = approve.request(spec, promotion, evaluation, "r789")
    assert subject == "Promote credit_default version 2 to champion?"
    for expected in ["| roc_auc | 0.8100 | 0.8000 | 0.0100 |", "champion v1", "- PASS region: tpr_gap", "/runs/x/evaluate/report.html",
                     "MLflow run `r789`", "No answer within 24 h: **reject**"]:
        assert expected in body, expected
    ask = PromotionApproval(task_id="approve", pipeline=spec.name, subject="?")
    with pytest.raises(AirflowSkipException, match="nothing to approve"):
        ask.execute({"ti": FakeTI({"promote": {**promotion, "passed": False, "awaiting_approval": False}})})


def test_model_card_is_logged_with_the_version(registry):
    spec = renamed(governed_spec(), "card_case")
    evaluation, promotion, _ = _card_inputs(spec)
    run = tracking.run_for_dag_run(spec.name, "run-1")
    tracking.ensure_registered_model(spec.name, spec.description)
    tracking.client().create_model_version(spec.name, f"runs:/{run}/model", run_id=run)
    text = model_card.card_markdown(spec, "1", evaluation, promotion, {}, model_card.lineage(run))
    uri = model_card.publish(spec, "1", run, text)
    client = tracking.client()
    assert {a.path for a in client.list_artifacts(run)} >= {"model_card.md", "model_card.html"}
    assert client.get_model_version(spec.name, "1").tags[model_card.CARD_TAG] == uri == f"runs:/{run}/model_card.html"


# --- approval in a DAG run ---------------------------------------------------------------------------

def respond_when_asked(dag_id: str, option: str, reason: str, user: str, wait_seconds: float = 240):
    """Answer the DAG's pending approval as the Airflow UI would (hitl_detail row + resume), from a thread."""
    import threading
    import time

    from sqlalchemy import select

    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    def answer() -> None:
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            with create_session() as session:
                ti = session.scalars(select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.task_id == "approve",
                    TaskInstance.state == TaskInstanceState.AWAITING_INPUT)).first()
                detail = session.get(HITLDetail, ti.id) if ti else None
                if detail is not None and detail.responded_at is None:
                    answered["body"] = detail.body
                    detail.chosen_options, detail.params_input = [option], {"reason": reason}
                    detail.responded_by, detail.responded_at = {"id": user, "name": user}, pd.Timestamp.now(tz="UTC").to_pydatetime()
                    handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session)
                    return
            time.sleep(0.5)
        with create_session() as session:  # never leave dag.test() waiting forever
            for ti in session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.task_id == "approve",
                                                                TaskInstance.state == TaskInstanceState.AWAITING_INPUT)):
                ti.state = TaskInstanceState.FAILED

    answered: dict = {}
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread, answered


@pytest.fixture
def approval_pipelines(tmp_path, monkeypatch, credit_data) -> Path:
    """credit_default with `promotion: {approval: required}` in its own pipelines folder."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    doc = credit_doc()
    doc["promotion"] = {"approval": "required", "timeout_hours": 24, "on_timeout": "reject"}
    doc["model"]["params"]["n_estimators"] = 40  # a faster fit; the gates still pass
    (folder / "credit_default.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("NIGHTSHIFT_PIPELINES_DIR", str(folder))
    return folder


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_approval_approve_then_reject(airflow_db, local_state, approval_pipelines):
    from datetime import datetime, timezone

    from nightshift.render import build_train_dag

    client = tracking.client()
    dag = build_train_dag(find_spec("credit_default"))
    thread, asked = respond_when_asked(dag.dag_id, "Approve", "looks good", "ana")
    first = dag.test(logical_date=datetime(2026, 2, 1, tzinfo=timezone.utc))
    thread.join(5)
    states = {ti.task_id: ti.state for ti in first.get_task_instances()}
    assert first.state == "success", states
    assert "passed every gate" in asked["body"] and "evaluate/report.html" in asked["body"] and "| roc_auc |" in asked["body"]
    assert str(tracking.champion("credit_default").version) == "1"
    tags = client.get_model_version("credit_default", "1").tags
    assert (tags["nightshift.approval"], tags["nightshift.approval.by"], tags["nightshift.approval.reason"]) == ("approved", "ana", "looks good")
    assert tags["nightshift.promotion"] == "promoted" and "challenger" not in client.get_registered_model("credit_default").aliases
    card = client.download_artifacts(client.get_model_version("credit_default", "1").run_id, "model_card.md", str(local_state))
    assert "**Approved** by ana" in Path(card).read_text()

    thread, _ = respond_when_asked(dag.dag_id, "Reject", "east slice needs a look", "bo")
    second = dag.test(logical_date=datetime(2026, 2, 1, tzinfo=timezone.utc))  # same rows: same model, no regression
    thread.join(5)
    assert second.state == "success", {ti.task_id: ti.state for ti in second.get_task_instances()}
    aliases = {k: str(v) for k, v in client.get_registered_model("credit_default").aliases.items()}
    assert aliases == {"champion": "1", "challenger": "2"}
    tags = client.get_model_version("credit_default", "2").tags
    assert (tags["nightshift.approval"], tags["nightshift.approval.by"]) == ("rejected", "bo")
    assert tags["nightshift.reason"] == "rejected by bo: east slice needs a look"
