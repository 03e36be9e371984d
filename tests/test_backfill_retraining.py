"""Fair historical retraining (issue #14 item 7).

A training run whose window ends before the current champion's is a backfill: it is registered and tagged, and moves
`champion` only when the trigger form asks (`promote_backfill`). Gates vs the champion compare with the version that
was champion as of the run's window end; a version that was fitted on the run's held-out rows is `not comparable`
and `evaluation.not_comparable` decides. Every move of `champion` is recorded in the registry.

The training DAG's operators are driven in DAG order (tests/reliability/harness.py) on the credit demo data.
Expectations come from the data (the window's rows, split as the spec says) and from the registry.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime, timezone

import pandas as pd
import pytest

from nightshift.io import tracking
from nightshift.spec import find_spec
from nightshift.steps import features, ingest, promote

from reliability import harness

LATE_END = harness.TRAIN_END  # interval end of the champion's run: window [2025-07-05, 2026-01-02)
NAME = "credit_default"


@pytest.fixture
def credit(local_state, credit_data, monkeypatch):
    # MLflow re-imports each logged model in a subprocess to infer requirements (seconds per run); nothing reads them
    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
    return find_spec(NAME)


def train(run_id: str, pipeline=NAME, **params) -> dict:
    outcome = harness.run_train(pipeline, run_id, LATE_END, **params)
    assert outcome.failed is None, outcome.describe()
    return outcome.results


def champion_version() -> str | None:
    found = tracking.champion(NAME)
    return None if found is None else str(found.version)


def version_tags(version) -> dict:
    return dict(tracking.client().get_model_version(NAME, str(version)).tags)


def run_window_end(version) -> str:
    """The window end the train step recorded on the version's MLflow run (lineage), independent of promote."""
    client = tracking.client()
    return client.get_run(client.get_model_version(NAME, str(version)).run_id).data.tags["nightshift.window_end"]


def regression_gate(results: dict) -> dict:
    return next(g for g in results["promote"]["gates"] if g["rule"] == "min_delta_vs_champion")


def expected_as_of(when: datetime) -> str | None:
    """From the registry's history: the latest move to a version whose window ended by `when`."""
    for entry in reversed(tracking.champion_history(NAME)):
        if datetime.fromisoformat(entry["window_end"]) <= when:
            return str(entry["version"])
    return None


def window_rows(root, window: ingest.Window, spec) -> pd.DataFrame:
    """The landing zone's rows inside a window, read straight from the partitions."""
    frames = [pd.read_parquet(p) for p in sorted(root.glob("dt=*/*.parquet"))]
    rows = pd.concat(frames, ignore_index=True)
    times = pd.to_datetime(rows[spec.source.event_time], utc=True)
    return rows[(times >= window.start) & (times < window.end)].reset_index(drop=True)


def event_times(frame: pd.DataFrame, spec) -> pd.Series:
    return pd.to_datetime(frame[spec.source.event_time], utc=True)


def test_backfill_is_registered_but_moves_champion_only_when_asked(credit, monkeypatch):
    late_window = ingest.training_window(credit, LATE_END)
    late = train("bf__late")
    v1 = str(late["promote"]["version"])
    assert late["promote"]["alias"] == "champion", late["promote"]  # first version: nothing to regress against
    assert champion_version() == v1

    # a backfill: the window ends before the champion's
    early = date(2025, 11, 15)
    early_window = ingest.training_window(credit, LATE_END, early)
    assert early_window.end < late_window.end
    held = train("bf__held", window_end=early.isoformat())
    summary, v2 = held["promote"], str(held["promote"]["version"])
    assert v2 != v1 and summary["alias"] is None and champion_version() == v1, summary
    tags = version_tags(v2)
    assert tags["nightshift.backfill"] == "true" and tags["nightshift.promotion"] == "backfill"
    assert f"{early_window.end:%Y-%m-%d}" in tags["nightshift.backfill.reason"] and f"(v{v1}," in tags["nightshift.backfill.reason"]
    assert tags["nightshift.backfill.reason"] == summary["backfill"] and "champion unchanged" in tags["nightshift.reason"]
    assert tags["nightshift.window_end"] == run_window_end(v2) == early_window.end.isoformat()
    # compared with the champion as of its own window end: v1 was trained on later data, so there is none
    assert expected_as_of(early_window.end) is None
    gate = regression_gate(held)
    assert gate["passed"] is True and gate["reason"] == f"no champion as of {early_window.end:%Y-%m-%d}: nothing to regress against"
    assert held["evaluate"]["champion_version"] is None and held["evaluate"]["current_champion_version"] == v1

    # the same backfill, asked to promote: champion moves when every gate passes
    asked = train("bf__asked", window_end=early.isoformat(), promote_backfill=True)
    v3 = str(asked["promote"]["version"])
    assert asked["promote"]["backfill"] and version_tags(v3)["nightshift.backfill"] == "true"
    assert asked["promote"]["passed"] is True, asked["promote"]["gates"]  # the demo data is learnable
    assert asked["promote"]["alias"] == "champion" and champion_version() == v3

    # a run between the two windows is not a backfill (the champion's window is older) and is judged against the
    # version that was champion as of its window end: the most recent move whose window ended by then
    middle = date(2025, 12, 10)
    middle_window = ingest.training_window(credit, LATE_END, middle)
    assert early_window.end < middle_window.end < late_window.end
    expected = expected_as_of(middle_window.end)
    assert expected == v3
    between = train("bf__between", window_end=middle.isoformat())
    v4 = str(between["promote"]["version"])
    assert between["promote"]["backfill"] is None and "nightshift.backfill" not in version_tags(v4)
    gate = regression_gate(between)
    assert between["evaluate"]["champion_version"] == expected and f"(v{expected})" in gate["reason"]
    # the compared value is that version's roc_auc on this run's held-out rows
    import mlflow.sklearn
    from sklearn.metrics import roc_auc_score

    from nightshift.ml.modelling import model_input_columns, target_values

    test = pd.read_parquet(between["features"]["test_uri"])
    model = mlflow.sklearn.load_model(f"models:/{NAME}/{expected}")
    scores = model.predict_proba(features.model_input(test, model_input_columns(model, credit)))[:, 1]
    assert gate["champion_value"] == pytest.approx(roc_auc_score(target_values(credit, test), scores), abs=1e-9)
    assert gate["passed"] is (gate["value"] >= gate["threshold"])
    moved = [v1, v3] + ([v4] if between["promote"]["alias"] == "champion" else [])

    # rolling back is a move too
    from nightshift.cli.main import cmd_rollback

    assert cmd_rollback(argparse.Namespace(name=NAME, to=v1)) == 0
    assert champion_version() == v1
    history = tracking.champion_history(NAME)
    assert [e["version"] for e in history] == [*moved, v1]
    assert [e["via"] for e in history] == ["promote"] * len(moved) + ["rollback"]
    assert [e["window_end"] for e in history] == [run_window_end(v) for v in [*moved, v1]]
    assert [e["previous"] for e in history] == [None, *[*moved, v1][:-1]]
    times = [datetime.fromisoformat(e["at"]) for e in history]
    assert times == sorted(times) and all(e["by"] for e in history)
    assert all(version_tags(v)["nightshift.champion_since"] for v in moved)
    assert history[0]["by"] == "DAG run bf__late"


def test_a_champion_that_saw_the_held_out_rows_is_not_comparable(credit, credit_data):
    late_window = ingest.training_window(credit, LATE_END)
    late = train("nc__late")
    v1 = str(late["promote"]["version"])
    assert champion_version() == v1

    # the next run's window ends a week later, but its last seven weeks have not landed (late data): its held-out rows (the latest
    # 20% of what it has) start before the last row the champion was fitted on
    end = date(2026, 1, 9)
    window = ingest.training_window(credit, LATE_END, end)
    champion_train, _ = features.split(credit, window_rows(credit_data, late_window, credit))  # what v1 was fitted on
    for day in harness.days(date(2025, 11, 20), end):
        for part in (credit_data / f"dt={day.isoformat()}").glob("*"):
            part.unlink()
    _, heldout = features.split(credit, window_rows(credit_data, window, credit))
    fitted_up_to, first_heldout = event_times(champion_train, credit).max(), event_times(heldout, credit).min()
    assert fitted_up_to > first_heldout  # the data says: v1 has seen some of this run's held-out rows
    assert window.end > late_window.end and expected_as_of(window.end) == v1  # not a backfill; v1 is the one compared

    blocked = train("nc__fail", window_end=end.isoformat())
    gate = regression_gate(blocked)
    assert event_times(pd.read_parquet(blocked["features"]["test_uri"]), credit).min() == first_heldout
    assert gate["passed"] is False and gate.get("not_comparable") is True, gate
    assert gate["reason"].startswith(f"not comparable with the champion (v{v1})") and "fails" in gate["reason"]
    assert f"{first_heldout:%Y-%m-%d}" in gate["reason"]
    assert blocked["promote"]["passed"] is False and blocked["promote"]["alias"] == "challenger"
    assert champion_version() == v1 and gate["reason"] in version_tags(blocked["promote"]["version"])["nightshift.reason"]

    lenient = credit.model_copy(update={"evaluation": credit.evaluation.model_copy(update={"not_comparable": "pass"})})
    allowed = train("nc__pass", pipeline=lenient, window_end=end.isoformat())
    gate = regression_gate(allowed)
    assert gate["passed"] is True and gate.get("not_comparable") is True and "passes" in gate["reason"], gate
    others = [g for g in allowed["promote"]["gates"] if g is not gate]
    assert allowed["promote"]["passed"] is all(g["passed"] for g in others)
    expected = str(allowed["promote"]["version"]) if allowed["promote"]["passed"] else v1
    assert champion_version() == expected
    assert [e["version"] for e in tracking.champion_history(NAME)] == list(dict.fromkeys([v1, expected]))


def _evaluation(metric: str, challenger: float, champion: float | None, version: str | None = "3") -> dict:
    return {"challenger": {metric: challenger}, "champion": None if champion is None else {metric: champion},
            "champion_version": version, "champion_error": None}


def test_gate_reasons_state_the_rule_and_never_read_like_a_pass():
    from nightshift.ml import metrics
    from nightshift.spec.model import Gate

    floor = Gate(metric="roc_auc", min=0.65)
    low, high = promote.check_gate(floor, _evaluation("roc_auc", 0.61, None)), promote.check_gate(floor, _evaluation("roc_auc", 0.82, None))
    assert (low["passed"], low["reason"]) == (False, "roc_auc 0.6100 below the floor 0.65")
    assert (high["passed"], high["reason"]) == (True, "roc_auc 0.8200 ≥ 0.65")

    drop = Gate(metric="rmse", max_relative_drop_vs_champion=0.10)
    worse = promote.check_gate(drop, _evaluation("rmse", 136.03, 100.0))
    share = -metrics.improvement("rmse", 136.03, 100.0) / 100.0
    assert worse["passed"] is False and worse["value"] == pytest.approx(share)
    assert worse["reason"] == f"rmse {share:.1%} worse than the champion (v3); at most 10.0% allowed"
    assert "≤" not in worse["reason"] and "<=" not in worse["reason"]

    delta = Gate(metric="roc_auc", min_delta_vs_champion=0.0)
    regressed = promote.check_gate(delta, _evaluation("roc_auc", 0.788, 0.80))
    assert regressed["passed"] is False
    assert regressed["reason"] == f"roc_auc improvement over the champion (v3) {0.788 - 0.80:+.4f}; at least +0.0000 required"
    improved = promote.check_gate(delta, _evaluation("roc_auc", 0.81, 0.80))
    assert improved["passed"] is True and improved["reason"] == f"roc_auc improvement over the champion (v3) {0.01:+.4f} ≥ +0.0000"


def test_champion_history_keeps_the_newest_moves_within_mlflows_limit():
    entries = [{"version": str(i), "at": datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat(), "by": "DAG run x" * 5,
                "via": "promote", "window_end": "2026-01-02T00:00:00+00:00", "previous": str(i - 1)} for i in range(1, 200)]
    text = tracking._fit(entries)
    kept = json.loads(text)
    assert len(text) <= tracking.HISTORY_MAX_CHARS == 5000 and 0 < len(kept) < len(entries)
    assert kept == entries[-len(kept):]  # the oldest go first
    assert len(tracking._fit([*entries[-len(kept):], entries[0]])) <= 5000
