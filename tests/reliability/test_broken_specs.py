"""Broken specs: each kind is an error for its own file only. `load_all` reports it with the field and the reason,
the rendered DAG folder shows exactly its `invalid_spec__<stem>` placeholder, and the good pipeline next to it still
renders its `<name>_train` / `<name>_score` DAGs.
"""

from __future__ import annotations

import copy
import os
import secrets
from pathlib import Path

import pytest
import yaml

from nightshift.spec import SpecError, deep_check, load_all, load_spec

pytestmark = pytest.mark.reliability("broken-specs")

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "include" / "pipelines" / "credit_default.yaml"
BASE = yaml.safe_load(GOOD.read_text())
GOOD_DAGS = {"credit_default_train", "credit_default_score"}
CREDENTIAL_ENV = "AWS_SECRET_ACCESS_KEY"  # a real credential variable name (its value is random per test)


def churn(**changes) -> dict:
    """A second pipeline (credit_default renamed), with dotted-path edits applied."""
    doc = copy.deepcopy(BASE)
    doc["name"] = "churn"
    doc["scoring"]["output_table"] = "CHURN_SCORES"
    for dotted, value in changes.items():
        node, *parents, last = [doc, *dotted.split("__")]
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return doc


_DELETE = object()


def text(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def nested(depth: int) -> str:
    """A valid YAML document whose notifier kwargs nest `depth` lists deep."""
    return text(churn()) + "monitoring:\n  notify:\n    kwargs:\n      deep: " + "[" * depth + "]" * depth + "\n"


def many_columns(n: int) -> dict:
    doc = churn()
    doc["schema"].update({f"extra_{i}": {"type": "float"} for i in range(n)})
    return doc


# id: (files written next to the good spec, {file stem: field path its error must name ("" = top), words expected})
CASES = {
    "bad-cron": ({"churn": text(churn(schedule__train="99 * * * *"))}, {"churn": ("schedule.train", "not a valid cron")}),
    "bad-cron-day-of-week": ({"churn": text(churn(schedule__score="0 2 * * 9"))}, {"churn": ("schedule.score", "cron")}),
    "unknown-estimator-class": ({"churn": text(churn(model={"flavor": "sklearn", "estimator": "sklearn.ensemble.NoSuchForest"}))},
                                {"churn": ("model.estimator", "defines no 'NoSuchForest'")}),
    "unknown-estimator-module": ({"churn": text(churn(model={"flavor": "sklearn", "estimator": "sklearn.nosuch.Thing"}))},
                                 {"churn": ("model.estimator", "is not installed")}),
    "non-sklearn-estimator-path": ({"churn": text(churn(model={"flavor": "sklearn", "estimator": "collections.OrderedDict"}))},
                                   {"churn": ("model.estimator", "pattern")}),
    "unknown-gx-expectation": ({"churn": text(churn(expectations=[{"expectation": "expect_column_to_be_awesome"}]))},
                               {"churn": ("expectations[0].expectation", "unknown Great Expectations expectation")}),
    "notifier-outside-airflow-and-nightshift": (
        {"churn": text(churn(monitoring={"notify": {"notifier": "subprocess.Popen"}}))},
        {"churn": ("monitoring.notify.notifier", "pattern")}),
    "notifier-class-missing": (
        {"churn": text(churn(monitoring={"notify": {"notifier": "airflow.providers.smtp.notifications.smtp.NoSuchNotifier"}}))},
        {"churn": ("monitoring.notify.notifier", "defines no 'NoSuchNotifier'")}),
    "notifier-provider-not-installed": (
        {"churn": text(churn(monitoring={"notify": {"notifier": "airflow.providers.nosuch.notifications.nosuch.Notifier"}}))},
        {"churn": ("monitoring.notify.notifier", "is not installed")}),
    "duplicate-name": ({"churn_a": text(churn()), "churn_b": text(churn())},
                       {"churn_a": ("name", "churn_b.yaml"), "churn_b": ("name", "churn_a.yaml")}),
    "duplicate-of-nothing-else": ({"credit_copy": text(BASE)}, None),  # special-cased below: both credit specs fail
    "secret-in-description": ({"churn": text(churn(description="${%s}" % CREDENTIAL_ENV))},
                              {"churn": ("description", "not allowed in this field")}),
    "secret-in-uri": ({"churn": text(churn(source__uri="s3://${%s}@bucket/raw" % CREDENTIAL_ENV))},
                      {"churn": ("source.uri", "only variables named NIGHTSHIFT_*")}),
    "file-uri": ({"churn": text(churn(source__uri="file:///etc/passwd"))}, {"churn": ("source.uri", "unsupported uri scheme")}),
    "absolute-path-outside-roots": ({"churn": text(churn(source__uri="/etc"))}, {"churn": ("source.uri", "outside the allowed roots")}),
    "dotdot-escaping-root": ({"churn": text(churn(source__uri="data/../../../etc"))}, {"churn": ("source.uri", "'..'")}),
    "nested-5000-levels": ({"churn": nested(5000)}, {"churn": ("", "levels deep")}),
    "too-many-columns": ({"churn": text(many_columns(2_001))}, {"churn": ("schema", "at most 2,000")}),
    "too-many-expectations": (
        {"churn": text(churn(expectations=[{"expectation": "expect_column_to_exist", "kwargs": {"column": "income"}}] * 5_001))},
        {"churn": ("expectations", "at most 5,000")}),
    "too-many-gates": ({"churn": text(churn(evaluation__gates=[{"metric": "roc_auc", "min": 0.5}] * 201))},
                       {"churn": ("evaluation", "at most 200")}),
    "file-too-large": ({"churn": text(churn()) + "# padding\n" * 250_000}, {"churn": ("", "larger than")}),
    "yaml-syntax-error": ({"churn": "name: churn\nschema: [unclosed\n"}, {"churn": ("", "not valid YAML")}),
    "missing-field": ({"churn": text(churn(scoring=_DELETE))}, {"churn": ("scoring", "required field is missing")}),
    "not-a-mapping": ({"churn": "- just\n- a list\n"}, {"churn": ("", "mapping of fields")}),
}


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    """A pipelines folder holding the good credit_default spec, and a secret-looking variable in the environment."""
    monkeypatch.setenv(CREDENTIAL_ENV, "wJalrXUtnFEMI/" + secrets.token_hex(16))
    monkeypatch.delenv("NIGHTSHIFT_SPEC_ENV_ALLOW", raising=False)
    monkeypatch.delenv("NIGHTSHIFT_CREDIT_SOURCE_URI", raising=False)
    path = tmp_path / "pipelines"
    path.mkdir()
    (path / GOOD.name).write_text(GOOD.read_text())
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_broken_spec_is_its_own_placeholder_and_the_good_pipeline_loads(case, folder):
    files, expected = CASES[case]
    for stem, body in files.items():
        (folder / f"{stem}.yaml").write_text(body)
    if expected is None:  # a copy of the good spec: now two files claim credit_default, so neither renders
        expected = {"credit_copy": ("name", "credit_default.yaml"), "credit_default": ("name", "credit_copy.yaml")}
        good_names, good_dags = [], set()
    else:
        good_names, good_dags = ["credit_default"], GOOD_DAGS

    specs, errors = load_all(folder)
    assert [s.name for s in specs.values()] == good_names
    assert sorted(p.stem for p in errors) == sorted(expected)
    secret = os.environ[CREDENTIAL_ENV]
    for stem, (field, words) in expected.items():
        error = errors[folder / f"{stem}.yaml"]
        assert isinstance(error, SpecError)
        assert any(loc == field and words in message for loc, message in error.problems), error.problems
        assert str(error).startswith(f"invalid pipeline spec {folder / stem}.yaml")
        assert secret not in str(error)

    from nightshift.render import render_pipelines

    dags = render_pipelines(folder)
    assert {d for d in dags if d.startswith("invalid_spec__")} == {f"invalid_spec__{stem}" for stem in expected}
    assert good_dags <= set(dags)
    assert not any(d.startswith("churn") for d in dags)  # no DAG of a broken pipeline
    for stem in expected:
        assert secret not in (dags[f"invalid_spec__{stem}"].doc_md or "")


DEEP = {  # id: (model section, words the deep check must report); each of these loads at parse time
    "not-an-estimator": ({"flavor": "sklearn", "estimator": "sklearn.utils.Bunch"}, "is not a scikit-learn estimator"),
    "transformer-not-classifier": ({"flavor": "sklearn", "estimator": "sklearn.preprocessing.StandardScaler"}, "is not a classifier"),
    "regressor-for-binary-task": ({"flavor": "sklearn", "estimator": "sklearn.linear_model.Ridge"}, "is not a classifier"),
    "unknown-parameter": ({"flavor": "sklearn", "estimator": "sklearn.linear_model.LogisticRegression", "params": {"depth": 3}},
                          "does not accept these parameters"),
    "tuning-unknown-parameter": ({"flavor": "sklearn", "estimator": "sklearn.linear_model.LogisticRegression",
                                  "tuning": {"trials": 2, "space": {"max_depth": [2, 3]}}}, "has no parameter 'max_depth'"),
}


@pytest.mark.parametrize("case", list(DEEP))
def test_deep_check_catches_what_only_an_import_can(case, folder):
    model, words = DEEP[case]
    path = folder / "churn.yaml"
    path.write_text(text(churn(model=model)))
    spec = load_spec(path)  # cheap checks pass: the module defines the class
    problems = deep_check(spec)
    assert any(words in message for _, message in problems), problems


def test_deep_check_passes_the_shipped_specs_and_an_expectation_with_bad_arguments_fails(folder):
    for path in sorted((ROOT / "include" / "pipelines").glob("*.yaml")):
        assert deep_check(load_spec(path)) == [], path
    path = folder / "churn.yaml"
    path.write_text(text(churn(expectations=[{"expectation": "expect_column_values_to_be_in_set", "kwargs": {"column": "grade"}}])))
    problems = deep_check(load_spec(path))
    assert [loc for loc, _ in problems] == ["expectations[0].kwargs"], problems


def test_cli_validate_deep_reports_the_estimator(folder, capsys):
    from nightshift import cli

    path = folder / "churn.yaml"
    path.write_text(text(churn(model={"flavor": "sklearn", "estimator": "sklearn.linear_model.Ridge"})))
    assert cli.main(["validate", str(path)]) == 0
    assert cli.main(["validate", "--deep", str(path)]) == 1
    assert "model.estimator: 'sklearn.linear_model.Ridge' is not a classifier" in capsys.readouterr().out


def test_symlink_leaving_the_roots_is_refused_at_read_time(tmp_path, monkeypatch):
    import pandas as pd

    from nightshift.io import storage

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "landing").mkdir(parents=True)
    outside.mkdir()
    pd.DataFrame({"a": [1]}).to_parquet(outside / "secret.parquet")
    pd.DataFrame({"a": [2]}).to_parquet(root / "landing" / "ok.parquet")
    (root / "landing" / "link.parquet").symlink_to(outside / "secret.parquet")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv("NIGHTSHIFT_ALLOWED_ROOTS", str(root))
    monkeypatch.setenv("NIGHTSHIFT_LOCAL_DIR", str(root / "local"))

    assert storage.read_parquet(str(root / "landing" / "ok.parquet"))["a"].tolist() == [2]
    with pytest.raises(storage.OutsideRoots, match="outside the allowed roots"):
        storage.read_parquet(str(root / "landing" / "link.parquet"))
    with pytest.raises(storage.OutsideRoots):
        storage.locate(str(root / "escape" / "secret.parquet"))
    with pytest.raises(storage.OutsideRoots, match="link.parquet"):
        storage.list_files(storage.locate(str(root / "landing")))
    with pytest.raises(storage.OutsideRoots):
        storage.locate(str(outside / "secret.parquet"))
