"""One evaluation pass: in a training run, each model is loaded once and the held-out rows are predicted once.

The DAG's operators run in order (tests/reliability/harness.py) with the real steps; only two functions are wrapped
to count calls: `tracking.load_sklearn_model` (which URI, from which operator) and `metrics.predict_scores` (which
loaded model, how many rows, from which operator).
"""

from __future__ import annotations

import inspect
from collections import Counter

import pytest

from nightshift.io import tracking
from nightshift.ml import metrics
from nightshift.operators.base import NightshiftOperator

from reliability import harness

pytestmark = pytest.mark.e2e


def calling_operator() -> str:
    """The class of the Nightshift operator whose run_step is on the stack (the task making the call)."""
    for frame in inspect.stack(context=0):
        owner = frame.frame.f_locals.get("self")
        if frame.function == "run_step" and isinstance(owner, NightshiftOperator):
            return type(owner).__name__
    return "outside an operator"


@pytest.fixture
def counted(monkeypatch):
    loads: list[tuple[str, str]] = []  # (operator, uri)
    predictions: list[tuple[str, str, int]] = []  # (operator, uri of the model or "?", rows)
    loaded: dict[int, str] = {}
    real_load, real_predict = tracking.load_sklearn_model, metrics.predict_scores

    def load(uri, *args, **kwargs):
        model = real_load(uri, *args, **kwargs)
        loads.append((calling_operator(), str(uri)))
        loaded[id(model)] = str(uri)
        return model

    def predict(model, frame, *args, **kwargs):
        predictions.append((calling_operator(), loaded.get(id(model), "?"), len(frame)))
        return real_predict(model, frame, *args, **kwargs)

    monkeypatch.setattr(tracking, "load_sklearn_model", load)
    monkeypatch.setattr(metrics, "predict_scores", predict)
    return loads, predictions


def test_challenger_and_champion_loaded_and_predicted_once(airflow_db, local_state, credit_data, counted):
    loads, predictions = counted
    first = harness.run_train("credit_default", "manual__first")
    assert first.failed is None, first.describe()
    assert tracking.champion("credit_default") is not None  # version 1 is champion: the next run has a baseline
    loads.clear(), predictions.clear()

    second = harness.run_train("credit_default", "manual__second")
    assert second.failed is None, second.describe()
    challenger = second.results["train"]["model_uri"]
    held_out = second.results["evaluate"]["test_rows"]
    assert held_out > 0 and second.results["evaluate"]["champion_version"] == "1"

    in_evaluate = Counter(uri for op, uri in loads if op == "EvaluateOperator")
    assert in_evaluate[challenger] == 1, loads  # the challenger: loaded once
    champions = [uri for uri in in_evaluate if uri != challenger]
    assert len(champions) == 1 and in_evaluate[champions[0]] == 1, loads  # the champion: at most once (here: once)
    assert all(op == "EvaluateOperator" for op, _ in loads), loads  # no other task loads a model

    evaluate_predictions = Counter((uri, rows) for op, uri, rows in predictions if op == "EvaluateOperator")
    assert evaluate_predictions[(challenger, held_out)] == 1, predictions  # held-out rows predicted once by the challenger
    assert evaluate_predictions[(champions[0], held_out)] <= 1, predictions
    assert sum(n for (uri, _), n in evaluate_predictions.items() if uri == challenger) == 1, predictions
