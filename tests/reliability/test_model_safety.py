"""Model safety: a bad model never becomes champion, and the champion survives failed training runs.

Each challenger is trained by the training DAG's task functions on a private landing zone (45 days inside
the window) against the package's champion. Gates in play (include/pipelines/credit_default.yaml):
roc_auc >= 0.65, no more than 0.01 worse than the champion on the same rows, roc_auc >= 0.6 in every region
with 30+ held-out rows (slice gate) and a positive-rate gap between regions of at most 0.15 (fairness gate).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from . import harness

pytestmark = pytest.mark.reliability("model-safety")

DAYS = harness.days(date(2025, 11, 18), date(2026, 1, 1))


def landing(world, tmp_path, monkeypatch, relabel=None):
    """A copy of the window's partitions, labels rewritten by `relabel(frame, rng)`; wired in by env var."""
    root = harness.copy_partitions(world.credit, tmp_path / "credit", DAYS)
    if relabel is not None:
        for i, part in enumerate(sorted(root.glob("dt=*/part-0.parquet"))):
            frame = pd.read_parquet(part)
            frame["defaulted"] = relabel(frame, np.random.default_rng(i)).astype("int64")
            frame.to_parquet(part, index=False)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(root))
    return root


def champion() -> str:
    return harness.registry_state("credit_default")["credit_default"][1]["champion"]


def failed_gates(outcome: harness.Outcome) -> dict[str, str]:
    return {f"{g.get('slice') or g.get('attribute') or ''}.{g['metric']}.{g['rule']}": g["reason"]
            for g in outcome.results["promote"]["gates"] if not g["passed"]}


def assert_rejected(outcome: harness.Outcome, before: str) -> dict[str, str]:
    assert outcome.failed is None, outcome.describe()
    promotion = outcome.results["promote"]
    assert promotion["passed"] is False and promotion["alias"] == "challenger", promotion
    assert champion() == before
    version = next(v for v in harness.registry_state("credit_default")["credit_default"][0] if str(v[0]) == str(promotion["version"]))
    assert version[2] == "rejected"
    return failed_gates(outcome)


def test_model_trained_on_shuffled_labels_never_becomes_champion(world, tmp_path, monkeypatch):
    landing(world, tmp_path, monkeypatch, lambda frame, rng: rng.permutation(frame["defaulted"].to_numpy()))
    before = champion()
    failed = assert_rejected(harness.run_train("credit_default", "safety__shuffled"), before)
    assert ".roc_auc.min" in failed, failed  # about as good as a coin: far below roc_auc >= 0.65


def test_model_failing_the_fairness_gate_never_becomes_champion(world, tmp_path, monkeypatch):
    """Labels that make every applicant from `central` a defaulter: the model flags that region wholesale."""
    landing(world, tmp_path, monkeypatch, lambda frame, rng: frame["defaulted"].where(frame["region"] != "central", 1))
    before = champion()
    failed = assert_rejected(harness.run_train("credit_default", "safety__unfair"), before)
    assert set(failed) == {"region.positive_rate_gap.max"}, failed  # every other gate passed: fairness alone blocks it


def test_model_failing_a_slice_gate_never_becomes_champion(world, tmp_path, monkeypatch):
    """Labels in `north` are coin flips: nothing to learn there, so roc_auc in that region is about 0.5."""
    landing(world, tmp_path, monkeypatch, lambda frame, rng: frame["defaulted"].where(
        frame["region"] != "north", pd.Series(rng.random(len(frame)) < 0.5, index=frame.index).astype(int)))
    before = champion()
    failed = assert_rejected(harness.run_train("credit_default", "safety__slice"), before)
    assert "region.roc_auc.slice_min" in failed and "north" in failed["region.roc_auc.slice_min"], failed


def test_champion_survives_a_training_run_that_crashes(world, tmp_path, monkeypatch):
    landing(world, tmp_path, monkeypatch)
    before = harness.registry_state("credit_default")

    def out_of_memory(*args, **kwargs):
        raise MemoryError("simulated: the worker ran out of memory while fitting")

    monkeypatch.setattr("nightshift.steps.train.fit_pipeline", out_of_memory)
    outcome = harness.run_train("credit_default", "safety__crash")
    assert outcome.failed == "train" and isinstance(outcome.error, MemoryError), outcome.describe()
    assert harness.registry_state("credit_default") == before
    from nightshift.spec import find_spec
    from nightshift.steps import score

    assert score.resolve_model(find_spec("credit_default"))["model_version"] == before["credit_default"][1]["champion"]


def test_crash_inside_promote_keeps_the_champion_and_the_retry_registers_no_second_version(world, tmp_path, monkeypatch):
    import mlflow

    landing(world, tmp_path, monkeypatch)
    before = harness.registry_state("credit_default")["credit_default"]
    real_tag = mlflow.MlflowClient.set_model_version_tag

    def crash(self, *args, **kwargs):
        raise ConnectionError("simulated: the worker died after registering the version")

    monkeypatch.setattr(mlflow.MlflowClient, "set_model_version_tag", crash)
    outcome = harness.run_train("credit_default", "safety__promote_crash")
    assert outcome.failed == "promote", outcome.describe()
    versions, aliases = harness.registry_state("credit_default")["credit_default"]
    assert aliases == before[1] and len(versions) == len(before[0]) + 1  # registered, but no alias moved

    monkeypatch.setattr(mlflow.MlflowClient, "set_model_version_tag", real_tag)
    r = outcome.results
    ctx = harness.context("safety__promote_crash", harness.TRAIN_END, harness.TRAIN_END)
    retried = harness.promote("credit_default", ctx, r)  # Airflow's retry
    versions_after, aliases_after = harness.registry_state("credit_default")["credit_default"]
    assert versions_after[:-1] == versions[:-1] and len(versions_after) == len(versions)  # the same version, reused
    assert str(retried["version"]) == str(versions[-1][0]) and versions_after[-1][2] in ("promoted", "rejected")
    if retried["alias"] != "champion":
        assert aliases_after["champion"] == before[1]["champion"]
    else:  # it passed every gate on retry: then, and only then, it may move the alias
        assert retried["passed"] is True


def test_registry_outage_during_evaluation_fails_closed(world, tmp_path, monkeypatch):
    """Before the fix an unreachable registry read as "no champion yet", so the non-regression gate passed."""
    import mlflow
    from mlflow.exceptions import MlflowException

    landing(world, tmp_path, monkeypatch)
    before = harness.registry_state("credit_default")

    def unreachable(self, *args, **kwargs):
        raise MlflowException("API request to http://mlflow:5000/api/2.0/mlflow/registered-models/alias failed: "
                              "Connection refused")  # error_code INTERNAL_ERROR, as the REST client raises it

    monkeypatch.setattr(mlflow.MlflowClient, "get_model_version_by_alias", unreachable)
    outcome = harness.run_train("credit_default", "safety__registry_down")
    assert outcome.failed == "evaluate", outcome.describe()
    assert "is unavailable" in outcome.message and "Connection refused" in outcome.message
    assert harness.registry_state("credit_default") == before
