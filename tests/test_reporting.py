"""Reports from the reporting layer: hostile text stays text, the data's own class labels, bounds, threshold warnings.

Everything runs on the demo generator's credit data with a real fitted model; nothing of the code under
test is mocked.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nightshift.ml import governance
from nightshift.reporting import evaluation as evaluation_page
from nightshift.reporting.formatting import binary_labels, bounds
from nightshift.reporting.plots import confusion_figure
from nightshift.spec import parse_spec
from nightshift.steps import approve, features, model_card, monitor, profile, promote, report, train
from nightshift.steps.validate import validate_frame
from nightshift_demo.generate import credit_applications_for_day

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
RAW = ["<script", "<img src=x", "onerror=alert(1)>"]  # none of these may reach a page unescaped


def credit_doc() -> dict:
    return yaml.safe_load((ROOT / "include" / "pipelines" / "credit_default.yaml").read_text())


def credit_rows(days: int = 20, rows: int = 60, start: date = date(2025, 11, 1)) -> pd.DataFrame:
    return pd.concat([credit_applications_for_day(start + timedelta(days=d), rows=rows) for d in range(days)], ignore_index=True)


def fitted(spec, rows: pd.DataFrame):
    train_rows, test_rows = features.split(spec, rows)
    model = train.fit_pipeline(spec, train_rows)
    evaluation = {"challenger": train.score_model(spec, model, test_rows, spec.metrics), "champion": None,
                  "champion_version": None, "champion_error": None, "test_rows": len(test_rows)}
    return model, train_rows, test_rows, evaluation


def assert_escaped(page: str) -> None:
    for raw in RAW:
        assert raw not in page, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


# --- hostile text ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile():
    """credit_default whose description and two region categories carry markup, and a model fitted on such data."""
    doc = credit_doc()
    doc["description"] = f"Defaults {SCRIPT} and {IMG}"
    doc["schema"]["region"]["values"] = ["north", "south", "central", SCRIPT, IMG]
    doc["promotion"] = {"approval": "required"}
    spec = parse_spec(doc)
    rows = credit_rows()
    rows["region"] = rows["region"].replace({"east": SCRIPT, "west": IMG})
    return spec, rows, *fitted(spec, rows)


def test_hostile_text_is_escaped_in_the_evaluation_report(hostile):
    spec, _, model, train_rows, test_rows, evaluation = hostile
    validation = {"success": False, "evaluated": 1, "rows": len(test_rows),
                  "results": [{"column": "region", "rule": f"values must be one of [{SCRIPT}]", "success": False, "unexpected_count": 1}]}
    page, assessed, _ = report.build(spec, model, test_rows, train.target_values(spec, train_rows), evaluation, {}, validation)
    assert {SCRIPT, IMG} <= {g["group"] for g in assessed["slices"]["region"]}  # the groups are in the report's data
    assert_escaped(page)
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # description, validation, slices, fairness
    assert "<h3>region</h3>" in page and "Defaults &lt;script&gt;" in page


def test_hostile_text_is_escaped_in_the_model_card(hostile):
    spec, _, model, _, test_rows, evaluation = hostile
    y, scores, classes = report.predictions(spec, model, test_rows)
    evaluation = {**evaluation, **governance.assess(spec, test_rows, y, scores, classes)}
    promotion = {"version": "1", "alias": "challenger", "passed": True, "awaiting_approval": True,
                 "gates": promote.check_gates(spec, evaluation)}
    record = approve.decision(spec, {"chosen_options": ["Reject"], "params_input": {"reason": f"odd {SCRIPT} {IMG}"},
                                     "responded_at": "2026-02-01T10:00:00+00:00", "responded_by_user": {"id": "ana", "name": "Ana"}})
    text = model_card.card_markdown(spec, "1", evaluation, promotion, {}, {"mlflow_run_id": "r1"}, record)
    assert SCRIPT in text and IMG in text  # the markdown keeps the words as written
    page = model_card.card_html(spec, text)
    assert_escaped(page)
    assert page.startswith("<!doctype html>") and "<table>" in page and "<h2>Approval</h2>" in page
    approval = page[page.index("<h2>Approval</h2>"):]
    assert "odd &lt;script&gt;alert(1)&lt;/script&gt;" in approval
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page  # a slice group in a table cell


def test_hostile_category_is_escaped_in_the_monitoring_report(hostile, tmp_path):
    spec, rows, *_ = hostile
    reference_rows = credit_rows(days=30, rows=40, start=date(2025, 12, 1))
    reference = profile.build_profile(spec, reference_rows, np.random.default_rng(0).beta(2, 8, len(reference_rows)))
    day = date(2026, 2, 11)
    frame = credit_applications_for_day(day, rows=40)
    frame.loc[:4, "grade"] = [SCRIPT, IMG, SCRIPT, IMG, SCRIPT]  # categories the reference never saw
    results = monitor.compare_partition(reference, frame, np.full(len(frame), 0.1), spec.monitoring.drift)
    grade = next(r for r in results if r["feature"] == "grade")
    assert grade["unseen_categories"] == 5 and SCRIPT in grade["unseen_examples"]
    path = monitor.render_report(spec, day, results, reference, {"model_version": "1", "mlflow_run_id": "r1"}, tmp_path)
    page = path.read_text(encoding="utf-8")
    assert_escaped(page)
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page
    assert "<td>grade</td><td>categorical</td>" in page and "drift on 2026-02-11" in page


# --- the data's own class labels -----------------------------------------------------------------

def test_binary_reports_show_the_datas_labels_not_0_and_1():
    doc = credit_doc()
    doc["target"]["positive_class"] = "Yes"
    doc["schema"]["defaulted"] = {"type": "category", "nullable": False, "values": ["No", "Yes"]}
    spec = parse_spec(doc)
    rows = credit_rows()
    rows["defaulted"] = rows["defaulted"].map({0: "No", 1: "Yes"})
    model, train_rows, test_rows, evaluation = fitted(spec, rows)
    y_train = train.target_values(spec, train_rows)
    page, _, _ = report.build(spec, model, test_rows, y_train, evaluation, {})

    balance = page[page.index("<h3>Class balance"):page.index("</table>", page.index("<h3>Class balance"))]
    labels = re.findall(r"<tr><td>([^<]+?)(?: <span|</td>)", balance)
    assert labels == ["No", "Yes"], balance
    held_out_yes = int((test_rows["defaulted"] == "Yes").sum())
    assert f"<td>{held_out_yes} (" in balance.split("Yes", 1)[1]  # counts follow the labels
    assert "Yes <span class=\"muted\">(positive)</span>" in balance

    matrix = page[page.index("<h3>Confusion matrix at threshold"):]
    matrix = matrix[:matrix.index("</table>")]
    assert "<th>No</th><th>Yes</th>" in matrix and "<tr><td>No</td>" in matrix and "<tr><td>Yes</td>" in matrix
    cells = [int(n) for n in re.findall(r"<td>(\d+)</td>", matrix)]
    assert sum(cells) == len(test_rows) and cells[2] + cells[3] == held_out_yes

    y, scores, _ = report.predictions(spec, model, test_rows)
    fig = confusion_figure(y, scores, spec.evaluation.threshold, binary_labels(spec))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["No", "Yes"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["No", "Yes"]


def test_negative_label_comes_from_the_schema_or_the_data():
    doc = credit_doc()
    doc["target"]["positive_class"] = "bad"
    doc["schema"]["defaulted"] = {"type": "string", "nullable": False}  # no declared values: the data decides
    spec = parse_spec(doc)
    assert binary_labels(spec, pd.Series(["bad", "good", "good", None])) == ("good", "bad")
    assert binary_labels(spec, ["bad", "good", "ugly"]) == ("not bad", "bad")  # ambiguous: say so
    assert binary_labels(parse_spec(credit_doc())) == ("0", "1")  # values [0, 1], positive_class 1


# --- bounds ---------------------------------------------------------------------------------------

def test_a_rule_without_a_max_reads_at_least_in_report_and_card():
    assert (bounds(0, None), bounds(None, 1), bounds(18, 120), bounds(0.5, None), bounds(None, None)) == (
        "≥ 0", "≤ 1", "between 18 and 120", "≥ 0.5", None)
    spec = parse_spec(credit_doc())  # income: min 0, no max; age: 18..120
    rows = credit_rows(days=10)
    validation = validate_frame(rows, spec, include_target=True, source="generated")
    rules = {r["column"]: r["rule"] for r in validation["results"] if r["expectation"] == "expect_column_values_to_be_between"}
    assert rules["income"] == "values must be ≥ 0" and rules["age"] == "values must be between 18 and 120"

    model, train_rows, test_rows, evaluation = fitted(spec, rows)
    page, _, _ = report.build(spec, model, test_rows, train.target_values(spec, train_rows), evaluation, {}, validation)
    assert "<td>income</td><td>values must be ≥ 0</td>" in page
    assert "<td>age</td><td>values must be between 18 and 120</td>" in page
    assert "and None" not in page and "None and" not in page

    card = model_card.features_text(spec)
    assert "`income` (≥ 0)" in card and "`utilization` (between 0 and 1)" in card and "`age` (between 18 and 120)" in card
    assert "None" not in card


# --- degenerate threshold ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def credit_model():
    spec = parse_spec(credit_doc())
    return spec, *fitted(spec, credit_rows())


def with_threshold(spec, threshold: float):
    return spec.model_copy(update={"evaluation": spec.evaluation.model_copy(update={"threshold": threshold})})


def test_a_threshold_that_makes_the_confusion_matrix_degenerate_is_flagged(credit_model):
    spec, model, train_rows, test_rows, evaluation = credit_model
    y_train = train.target_values(spec, train_rows)
    _, scores, _ = report.predictions(spec, model, test_rows)
    n = len(test_rows)
    above_all = float(scores.max() + (1 - scores.max()) / 2)  # no row reaches it
    below_all = float(scores.min() / 2)  # every row reaches it
    assert 1 < int((scores >= spec.evaluation.threshold).sum()) < n  # the spec's own threshold is sensible

    normal, _, _ = report.build(spec, model, test_rows, y_train, evaluation, {})
    assert "banner warn" not in normal
    none_positive, _, _ = report.build(with_threshold(spec, above_all), model, test_rows, y_train, evaluation, {})
    all_positive, _, _ = report.build(with_threshold(spec, below_all), model, test_rows, y_train, evaluation, {})
    for page, count, what in [(none_positive, 0, "no held-out row"), (all_positive, n, "every held-out row")]:
        warning = re.search(r'<p class="banner warn">([^<]*)</p>', page)
        assert warning, "no warning"
        assert f"labels {what} positive ({count} of {n};" in warning.group(1)
        assert "`evaluation.threshold`" in warning.group(1)

    only_one = evaluation_page.threshold_warning(0.5, np.array([0.1, 0.2, 0.7]))
    assert only_one and "only one held-out row positive (1 of 3; scores range from 0.1000 to 0.7000)" in only_one
    assert evaluation_page.threshold_warning(0.5, np.array([0.1, 0.6, 0.7])) is None  # two positives: fine
