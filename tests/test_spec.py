"""The spec loader: valid specs load, invalid ones name the file, the field path and the reason."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml

from nightshift.spec import model as specmod
from nightshift.spec import SpecError, load_all, load_spec, parse_spec
from nightshift.spec import find_spec as specmod_find

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ROOT / "include" / "pipelines"


def base() -> dict:
    return yaml.safe_load((PIPELINES / "credit_default.yaml").read_text())


@pytest.mark.parametrize("path", sorted(PIPELINES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_specs_load(path):
    spec = load_spec(path)
    assert spec.name == path.stem
    assert spec.feature_columns
    assert spec.scoring.output_table == spec.scoring.output_table.upper()


def test_examples_differ_in_shape():
    credit, house = load_spec(PIPELINES / "credit_default.yaml"), load_spec(PIPELINES / "house_prices.yaml")
    assert (credit.target.task, credit.source.format, credit.source.partitioning) == ("binary", "parquet", "daily")
    assert (house.target.task, house.source.format, house.source.partitioning) == ("regression", "csv", "none")
    assert house.source.event_time is None and house.source.score_uri


def _set(doc: dict, dotted: str, value) -> dict:
    doc = copy.deepcopy(doc)
    node = doc
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


_DELETE = object()

INVALID = [
    # (field to change, new value, expected path in the error, words expected in the reason)
    ("name", "Credit-Default", "name", "pattern"),
    ("description", _DELETE, "description", "required"),
    ("schedule.score", "every night", "schedule.score", "cron"),
    ("source.uri", "ftp://example.com/data", "source.uri", "unsupported uri scheme"),
    ("source.uri", "data/../../etc/passwd", "source.uri", "'..'"),
    ("source.format", "xlsx", "source.format", "parquet"),
    ("source.entity_key", [], "source.entity_key", "at least 1"),
    ("target.task", "ranking", "target.task", "binary"),
    ("schema.income.type", "money", "schema.income.type", "float"),
    ("schema.income.max", -1, "schema.income", "greater than max"),
    ("features.numeric.columns", ["income", "salary"], "features.numeric.columns[1]", "not declared in schema"),
    ("features.numeric.columns", ["income", "grade"], "features.numeric.columns[1]", "has type category"),
    ("features.derived.0.expr", "__import__('os').system('x')", "features.derived[0].expr", "not allowed"),
    ("features.drop", ["income"], "features.drop", "also listed as a feature"),
    ("training.split.test_fraction", 0.9, "training.split.test_fraction", "less than or equal"),
    ("model.flavor", "sklearn", "model", "needs `estimator`"),
    ("model.estimator", "os.system", "model.estimator", "pattern"),
    ("evaluation.metrics", ["roc_auc", "rmse"], "evaluation.metrics[1]", "not a binary metric"),
    ("evaluation.gates", [{"metric": "roc_auc", "min": 0.7, "max": 0.9}], "evaluation.gates[0]", "exactly one"),
    ("evaluation.gates", [{"metric": "f1", "min": 0.7}], "evaluation.gates[0].metric", "not among evaluation.metrics"),
    ("scoring.output_table", "SCORES; DROP TABLE X", "scoring.output_table", "pattern"),
    ("scoring.shards", 10_000, "scoring.shards", "less than or equal"),
    ("monitoring.drift.warn", 0.5, "monitoring.drift", "must not exceed fail"),
    ("featurez", {}, "featurez", "unknown field"),
]


@pytest.mark.parametrize("field,value,path,reason", INVALID, ids=[f"{c[0]}={c[1]!r}"[:60] for c in INVALID])
def test_invalid_spec_names_path_and_reason(field, value, path, reason):
    doc = base() if field == "featurez" and value == {} else _set(base(), field, value)
    if field == "featurez":
        doc["featurez"] = {}
    with pytest.raises(SpecError) as caught:
        parse_spec(doc, "include/pipelines/broken.yaml")
    locs = [loc for loc, _ in caught.value.problems]
    assert path in locs, caught.value
    message = dict(caught.value.problems)[path]
    assert reason.lower() in message.lower(), message
    assert str(caught.value).startswith("invalid pipeline spec include/pipelines/broken.yaml")
    assert f"include/pipelines/broken.yaml: {path}: " in str(caught.value)


def test_env_substitution_with_default_and_override(monkeypatch):
    doc = base()
    monkeypatch.delenv("NIGHTSHIFT_CREDIT_SOURCE_URI", raising=False)
    assert parse_spec(doc).source.uri == "data/landing/credit_applications"
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", "s3://aws_default@raw/credit")
    assert parse_spec(doc).source.uri == "s3://aws_default@raw/credit"


def test_env_default_may_hold_a_date_template(monkeypatch):
    house = yaml.safe_load((PIPELINES / "house_prices.yaml").read_text())
    monkeypatch.delenv("NIGHTSHIFT_HOUSE_SCORE_URI", raising=False)
    assert parse_spec(house).source.score_uri == "data/landing/house_listings/{ds}.csv"
    monkeypatch.setenv("NIGHTSHIFT_HOUSE_SCORE_URI", "s3://raw/listings/{ds_nodash}.csv")
    assert parse_spec(house).source.score_uri == "s3://raw/listings/{ds_nodash}.csv"


@pytest.mark.parametrize("template", ["data/{day}.csv", "data/{ds.csv", "data/listings.csv"])
def test_score_uri_template_is_checked(template):
    house = yaml.safe_load((PIPELINES / "house_prices.yaml").read_text())
    house["source"]["score_uri"] = template
    with pytest.raises(SpecError) as caught:
        parse_spec(house)
    assert caught.value.problems[0][0] == "source.score_uri"


def test_unset_env_without_default_is_an_error(monkeypatch):
    monkeypatch.delenv("NIGHTSHIFT_NOT_SET_ANYWHERE", raising=False)
    doc = _set(base(), "source.uri", "${NIGHTSHIFT_NOT_SET_ANYWHERE}")
    with pytest.raises(SpecError) as caught:
        parse_spec(doc, "x.yaml")
    assert caught.value.problems == [("source.uri", "environment variable NIGHTSHIFT_NOT_SET_ANYWHERE is not set and has no default")]


def test_env_outside_the_prefix_needs_the_allow_list(monkeypatch):
    monkeypatch.setenv("CREDIT_URI", "data/landing/elsewhere")
    doc = _set(base(), "source.uri", "${CREDIT_URI}")
    monkeypatch.delenv("NIGHTSHIFT_SPEC_ENV_ALLOW", raising=False)
    with pytest.raises(SpecError) as caught:
        parse_spec(doc, "x.yaml")
    assert caught.value.problems[0][0] == "source.uri" and "NIGHTSHIFT_SPEC_ENV_ALLOW" in caught.value.problems[0][1]
    monkeypatch.setenv("NIGHTSHIFT_SPEC_ENV_ALLOW", "OTHER, CREDIT_URI")
    assert parse_spec(doc).source.uri == "data/landing/elsewhere"


@pytest.mark.parametrize("field", ["description", "intended_use", "owner", "tags.0", "monitoring.notify.kwargs.subject"])
def test_env_substitution_only_in_per_environment_fields(field, monkeypatch):
    monkeypatch.setenv("NIGHTSHIFT_TEAM", "risk-ml")
    doc = base()
    doc["monitoring"]["notify"] = {"kwargs": {"subject": "drift"}}
    doc = _set(doc, field, "${NIGHTSHIFT_TEAM}")
    with pytest.raises(SpecError) as caught:
        parse_spec(doc, "x.yaml")
    loc = field.replace(".0", "[0]")
    assert caught.value.problems == [(loc, caught.value.problems[0][1])]
    assert "${NIGHTSHIFT_TEAM}" in caught.value.problems[0][1] and "not allowed in this field" in caught.value.problems[0][1]
    assert "risk-ml" not in str(caught.value)


def test_env_substitution_in_per_environment_fields(monkeypatch):
    values = {"NIGHTSHIFT_TRAIN_CRON": "15 1 * * 6", "NIGHTSHIFT_TABLE": "scores_prod", "NIGHTSHIFT_SF_CONN": "snowflake_prod"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    doc = _set(_set(base(), "schedule.train", "${NIGHTSHIFT_TRAIN_CRON}"), "scoring.output_table", "${NIGHTSHIFT_TABLE}")
    doc = _set(doc, "scoring.warehouse_conn_id", "${NIGHTSHIFT_SF_CONN}")
    spec = parse_spec(doc)
    assert (spec.schedule.train, spec.scoring.output_table, spec.scoring.warehouse_conn_id) == ("15 1 * * 6", "SCORES_PROD", "snowflake_prod")


@pytest.mark.parametrize("uri,reason", [
    ("file:///etc/passwd", "unsupported uri scheme"),
    ("/etc", "outside the allowed roots"),
    ("data/./../../etc", "'..'"),
    ("s3://bad@conn@bucket/x", "malformed S3 uri"),
    ("include/pipelines", "outside the allowed roots"),
])
def test_local_uris_stay_inside_allowed_roots(uri, reason, monkeypatch):
    # only the project's default roots (data/, .local/): the session's extra roots include the temp folder, which may
    # hold the checkout itself (a clone under /tmp), and would then contain include/pipelines
    monkeypatch.setenv("NIGHTSHIFT_ALLOWED_ROOTS", "/nonexistent-root")
    with pytest.raises(SpecError) as caught:
        parse_spec(_set(base(), "source.uri", uri), "x.yaml")
    assert reason in dict(caught.value.problems)["source.uri"]


def test_allowed_roots_come_from_the_environment(tmp_path, monkeypatch):
    outside = tmp_path / "landing"
    monkeypatch.setenv("NIGHTSHIFT_ALLOWED_ROOTS", "/nonexistent-root")
    with pytest.raises(SpecError, match="outside the allowed roots"):
        parse_spec(_set(base(), "source.uri", str(outside)))
    monkeypatch.setenv("NIGHTSHIFT_ALLOWED_ROOTS", f"/nonexistent-root{os.pathsep}{tmp_path}")
    assert parse_spec(_set(base(), "source.uri", str(outside))).source.uri == str(outside)
    for uri in ("s3://aws_default@raw-bucket/credit", "s3://raw-bucket/credit", "data/landing/credit"):
        assert parse_spec(_set(base(), "source.uri", uri)).source.uri == uri


def test_registry_owner_check():
    from nightshift.spec import REGISTRY_OWNER_TAG, check_registry_owner

    check_registry_owner("credit_default", "include/pipelines/credit_default.yaml", None)  # new model: may claim it
    check_registry_owner("credit_default", "/opt/airflow/include/pipelines/credit_default.yaml", "credit_default.yaml")
    with pytest.raises(SpecError) as caught:
        check_registry_owner("credit_default", "include/pipelines/credit_copy.yaml", "credit_default.yaml")
    assert caught.value.problems[0][0] == "name"
    assert "credit_default.yaml" in str(caught.value) and "credit_copy.yaml" in str(caught.value) and REGISTRY_OWNER_TAG in str(caught.value)


def test_yaml_syntax_error_names_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad.yaml: <top>: not valid YAML"):
        load_spec(bad)


def test_one_broken_spec_does_not_hide_others(tmp_path):
    (tmp_path / "credit_default.yaml").write_text((PIPELINES / "credit_default.yaml").read_text())
    (tmp_path / "broken.yaml").write_text("name: broken\n")
    specs, errors = load_all(tmp_path)
    assert [s.name for s in specs.values()] == ["credit_default"]
    assert list(errors) == [tmp_path / "broken.yaml"]


def test_duplicate_names_are_reported(tmp_path):
    text = (PIPELINES / "credit_default.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    (tmp_path / "house_prices.yaml").write_text((PIPELINES / "house_prices.yaml").read_text())
    specs, errors = load_all(tmp_path)
    assert [s.name for s in specs.values()] == ["house_prices"]  # neither copy wins
    assert sorted(errors) == [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    for mine, other in (("a.yaml", "b.yaml"), ("b.yaml", "a.yaml")):
        (loc, message), = errors[tmp_path / mine].problems
        assert loc == "name" and other in message and "unique" in message
    with pytest.raises(SpecError, match="b.yaml"):  # a task of the pipeline fails with the reason
        specmod_find("credit_default", tmp_path)


def test_spec_hash_is_stable_and_sensitive():
    a, b = parse_spec(base()), parse_spec(base())
    assert a.spec_hash() == b.spec_hash()
    assert parse_spec(_set(base(), "training.window_days", 90)).spec_hash() != a.spec_hash()


def test_json_schema_file_is_current():
    committed = json.loads((ROOT / "include" / "pipeline.schema.json").read_text())
    assert committed == specmod.json_schema(), "run `make schema` to regenerate include/pipeline.schema.json"


def test_spec_reference_doc_is_current():
    from nightshift.spec import docs as specdoc

    committed = (ROOT / "docs" / "spec.md").read_text()
    assert committed == specdoc.render() + "\n", "run `make schema` to regenerate docs/spec.md"


def test_live_promotion_needs_the_challenger_shadow_scored_and_no_approval():
    doc = base()
    doc.setdefault("scoring", {})["shadow"] = []  # the shipped spec shadow-scores its challenger; this one does not
    doc["promotion"] = {"live": {"min_days": 5}, "approval": "required"}
    with pytest.raises(SpecError) as caught:
        parse_spec(doc, "x.yaml")
    messages = [m for field, m in caught.value.problems if field == "promotion.live"]
    assert any("shadow: [challenger]" in m for m in messages) and any("approval" in m for m in messages)
    doc["promotion"] = {"live": {"min_days": 5, "min_delta_vs_champion": 0.01}}
    doc["scoring"]["shadow"] = ["challenger"]
    assert parse_spec(doc, "x.yaml").promotion.live.min_days == 5
