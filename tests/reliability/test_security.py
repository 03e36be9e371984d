"""Security: hostile specs are rejected before any SQL or I/O, SQL values are bound parameters, the `model`
trigger Param reaches the registry only, and no secret sits in a tracked file.
"""

from __future__ import annotations

import ast
import copy
import re
import subprocess
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml

from nightshift.spec import SpecError, load_spec

from . import harness

pytestmark = pytest.mark.reliability("security")

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "include" / "pipelines" / "credit_default.yaml").read_text())
PWNED = Path("/tmp") / f"nightshift-pwned-{uuid.uuid4().hex}"  # created only if hostile code ever ran


def setting(path: str, value):
    """A spec edit: set a dotted path (list items by index) to a value."""
    def edit(doc: dict) -> dict:
        node, *parents, last = [doc, *path.split(".")]
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return doc
    return edit


def snowflake_source(**source):
    def edit(doc: dict) -> dict:
        doc["source"] = {"snowflake": {"conn_id": "snowflake_default", **source}, "event_time": "application_date",
                         "entity_key": ["application_id"]}
        return doc
    return edit


def extra_column(name: str):
    def edit(doc: dict) -> dict:
        doc["schema"][name] = {"type": "float"}
        return doc
    return edit


SELECT = "SELECT * FROM RAW.CREDIT WHERE APPLICATION_DATE >= %(interval_start)s AND APPLICATION_DATE < %(interval_end)s"
HOSTILE = {  # id: (edit of the parsed YAML, field path the error must name)
    "sql-in-output-table": (setting("scoring.output_table", "SCORES; DROP TABLE CREDIT_DEFAULT_SCORES"), "scoring.output_table"),
    "sql-in-column-name": (extra_column("income; DROP TABLE X"), "schema"),
    "sql-in-entity-key": (setting("source.entity_key", ["application_id) OR (1=1"]), "source.entity_key[0]"),
    "sql-in-event-time": (setting("source.event_time", "application_date; --"), "source.event_time"),
    "sql-in-snowflake-table": (snowflake_source(table="RAW.CREDIT; DROP TABLE X"), "source.snowflake.table"),
    "second-statement-in-snowflake-query": (snowflake_source(query=SELECT + "; DROP TABLE RAW.CREDIT"), "source.snowflake"),
    "unbound-values-in-snowflake-query": (snowflake_source(query="SELECT * FROM RAW.CREDIT WHERE X = '1' OR 1=1"),
                                          "source.snowflake"),
    "path-traversal-in-uri": (setting("source.uri", "data/landing/../../../etc"), "source.uri"),
    "path-traversal-in-score-uri": (setting("source.score_uri", "data/{ds}/../../../etc/passwd"), "source.score_uri"),
    "format-string-attribute-access": (setting("source.score_uri", "data/{ds.__class__.__init__.__globals__}.csv"),
                                       "source.score_uri"),
    "http-uri-scheme": (setting("source.uri", "http://attacker.example/exfil"), "source.uri"),
    "gs-uri-scheme": (setting("source.uri", "gs://bucket/credit"), "source.uri"),
    "nul-byte-in-uri": (setting("source.uri", "data/landing\x00/etc/passwd"), "source.uri"),
    "absurd-shards": (setting("scoring.shards", 100_000), "scoring.shards"),
    "absurd-batch-rows": (setting("scoring.batch_rows", 10**12), "scoring.batch_rows"),
    "absurd-window": (setting("training.window_days", 10**7), "training.window_days"),
    "absurd-description": (setting("description", "x" * 1_000_000), "description"),
    "absurd-allowed-values": (setting("schema.grade.values", [f"g{i}" for i in range(20_000)]), "schema.grade.values"),
    "code-in-derived-expression": (setting("features.derived.0.expr", f"__import__('os').system('touch {PWNED}')"),
                                   "features.derived[0].expr"),
    "attribute-access-in-expression": (setting("features.derived.0.expr", "income.__class__.__mro__"),
                                       "features.derived[0].expr"),
    "lambda-in-expression": (setting("features.derived.0.expr", "(lambda: 1)()"), "features.derived[0].expr"),
    "estimator-outside-sklearn": (setting("model", {"flavor": "sklearn", "estimator": "os.system"}), "model.estimator"),
    "notifier-outside-airflow": (setting("monitoring", {"notify": {"notifier": "subprocess.Popen"}}),
                                 "monitoring.notify.notifier"),
    "expectation-not-gx": (setting("expectations", [{"expectation": "__import__", "kwargs": {}}]), "expectations[0].expectation"),
    "path-in-pipeline-name": (setting("name", "../../etc/cron.d"), "name"),
    "shell-in-conn-id": (setting("scoring.warehouse_conn_id", "snowflake_default; rm -rf /"), "scoring.warehouse_conn_id"),
    "unknown-top-level-field": (setting("__class__", {"x": 1}), "__class__"),
}
RAW_HOSTILE = {  # whole files: YAML-level attacks
    "yaml-python-tag": (f"!!python/object/apply:os.system ['touch {PWNED}']\n", "not valid YAML"),
    "yaml-alias-bomb": ("\n".join(["a0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
                                  + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]) + "\n",
                        "expands to more than"),
}


def write_spec(folder: Path, case: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "credit_default.yaml"  # named like the pipeline: the tasks of credit_default find this error
    if case in RAW_HOSTILE:
        path.write_text(RAW_HOSTILE[case][0])
    else:
        path.write_text(yaml.safe_dump(HOSTILE[case][0](copy.deepcopy(BASE)), sort_keys=False))
    return path


@pytest.fixture
def tripwires(monkeypatch, tmp_path):
    """Fail loudly if anything reaches a warehouse, a file, the tracking server or Snowflake."""
    calls: list[str] = []

    def trip(what):
        def call(*args, **kwargs):
            calls.append(what)
            raise AssertionError(f"{what} reached with a hostile spec")
        return call

    monkeypatch.setattr("duckdb.connect", trip("duckdb.connect"))
    monkeypatch.setattr("nightshift.io.storage.locate", trip("storage.locate"))
    monkeypatch.setattr("nightshift.io.tracking.client", trip("tracking.client"))
    monkeypatch.setattr("nightshift.io.snowflake.connect", trip("snowflake.connect"))
    local = tmp_path / "local"
    monkeypatch.setenv("NIGHTSHIFT_LOCAL_DIR", str(local))
    monkeypatch.setenv("NIGHTSHIFT_WAREHOUSE", str(local / "warehouse.duckdb"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{local / 'mlflow.db'}")
    return {"calls": calls, "local": local}


@pytest.mark.parametrize("case", [*HOSTILE, *RAW_HOSTILE])
def test_hostile_spec_is_rejected_before_any_sql_or_io(case, tmp_path, tripwires, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from nightshift.operators.ingest import IngestScoringOperator, IngestTrainingOperator
    from nightshift.operators.score import ResolveModelOperator
    from nightshift.render import render_pipelines

    folder = tmp_path / "pipelines"
    path = write_spec(folder, case)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    if case in RAW_HOSTILE:
        assert RAW_HOSTILE[case][1] in str(caught.value)
    else:
        field = HOSTILE[case][1]
        assert any(loc == field or loc.startswith(field + ".") or loc.startswith(field + "[") for loc, _ in caught.value.problems), \
            caught.value.problems

    monkeypatch.setenv("NIGHTSHIFT_PIPELINES_DIR", str(folder))
    assert list(render_pipelines(folder)) == ["invalid_spec__credit_default"]  # visible, and no pipeline DAGs
    ctx = harness.context(f"hostile__{case}", datetime(2026, 2, 1, tzinfo=timezone.utc), datetime(2026, 2, 2, tzinfo=timezone.utc))
    for operator in (IngestTrainingOperator, ResolveModelOperator, IngestScoringOperator):
        with pytest.raises(AirflowFailException, match="invalid pipeline spec"):  # fail-fast with the spec's problems
            harness.execute(operator, "credit_default", ctx)
    assert tripwires["calls"] == []
    assert not tripwires["local"].exists(), sorted(tripwires["local"].rglob("*"))
    assert not PWNED.exists()


# --- SQL values travel as bound parameters -------------------------------------------------------------

EVIL_NAME = "credit_default' OR '1'='1"
SQL_KEYWORDS = ("SELECT", "INSERT", "DELETE", "CREATE", "DROP", "UPDATE", "MERGE", "BEGIN", "COMMIT", "ROLLBACK")


def test_duckdb_publish_and_read_bind_every_value(tmp_path, monkeypatch):
    import duckdb
    import pyarrow.parquet as pq

    from nightshift.io.warehouse import DuckDBWarehouse

    day = date(2026, 2, 4)
    path = tmp_path / "warehouse.duckdb"
    keep = harness.staged_scores(tmp_path / "keep", day, 10, "1", "run-keep")
    DuckDBWarehouse(str(path)).publish("CREDIT_DEFAULT_SCORES", pq.read_schema(keep[0]), keep, "credit_default", [day], 20)

    sent: list[tuple[str, object]] = []
    real_connect = duckdb.connect

    class Recording:
        def __init__(self, con):
            self.con = con

        def execute(self, sql, params=None):
            sent.append((sql, params))
            return self.con.execute(sql, params) if params is not None else self.con.execute(sql)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.con.__exit__(*exc)

    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: Recording(real_connect(*a, **k)))
    evil = harness.staged_scores(tmp_path / "evil", day, 5, "9", "run-evil")
    import pyarrow as pa

    table = pq.read_table(evil[0]).set_column(3, "MODEL_NAME", pa.array([EVIL_NAME] * 5))
    pq.write_table(table, evil[0])
    warehouse = DuckDBWarehouse(str(path))
    assert warehouse.publish("CREDIT_DEFAULT_SCORES", table.schema, evil[:1], EVIL_NAME, [day], 5) == 5
    assert warehouse.rows_per_partition("CREDIT_DEFAULT_SCORES", EVIL_NAME) == [(day, "9", 5)]

    assert sent
    for sql, params in sent:
        assert EVIL_NAME not in sql and "2026-02-04" not in sql and "'" not in sql, sql
    assert any(params and EVIL_NAME in params for _, params in sent)
    assert warehouse.rows_per_partition("CREDIT_DEFAULT_SCORES", "credit_default") == [(day, "1", 20)]  # untouched


@pytest.mark.snowflake
def test_snowflake_publish_and_source_read_bind_every_value(tmp_path, monkeypatch):
    import json

    import fakesnow
    import pandas as pd
    import pyarrow.parquet as pq

    from nightshift.io import snowflake
    from nightshift.spec import parse_spec

    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_TEST", json.dumps(
        {"conn_type": "snowflake", "login": "nightshift", "password": "placeholder", "schema": "SCORES",
         "extra": {"account": "test-account", "database": "ML", "warehouse": "WH"}}))
    day = date(2026, 2, 4)
    files = harness.staged_scores(tmp_path / "s", day, 5, "1", "run-1")
    with fakesnow.patch(db_path=None):
        warehouse = snowflake.SnowflakeWarehouse("snowflake_test")
        warehouse.publish("CREDIT_DEFAULT_SCORES", pq.read_schema(files[0]), files, EVIL_NAME, [day], 0)
        warehouse.rows_per_partition("CREDIT_DEFAULT_SCORES", EVIL_NAME)
    for sql in warehouse.executed:
        assert EVIL_NAME not in sql and "2026-02-04" not in sql and "'" not in sql, sql

    executed: list[tuple[str, object]] = []

    class Cursor:
        def execute(self, sql, params=None):
            executed.append((sql, params))

        def fetch_pandas_all(self):
            return pd.DataFrame({"APPLICATION_ID": pd.Series(dtype="str")})

    class Connection:
        def cursor(self):
            return Cursor()

        def close(self):
            pass

    monkeypatch.setattr(snowflake, "connect", lambda conn_id: Connection())
    doc = copy.deepcopy(BASE)
    for source in ({"table": "ML.RAW.CREDIT_APPLICATIONS"}, {"query": SELECT}):
        doc["source"] = {"snowflake": {"conn_id": "snowflake_test", **source}, "event_time": "application_date",
                         "entity_key": ["application_id"]}
        start, end = datetime(2026, 2, 4, tzinfo=timezone.utc), datetime(2026, 2, 5, tzinfo=timezone.utc)
        snowflake.read_source(parse_spec(doc), start, end, with_target=False)
        sql, params = executed[-1]
        assert "2026" not in sql and "%(interval_start)s" in sql and params == {"interval_start": start, "interval_end": end}


SAFE_INTERPOLATIONS = {  # every {...} inside SQL text must be an identifier checked by identifier()/the spec
    "name", "columns", "stage", "where", "ddl", "event_time", "table", "placeholders",
    "identifier(table)", "qualified_name(table)", "qualified_name(source.table)", "', '.join(exclude)",
    # reviewed December 2026:
    "selected",  # read_rows: identifier() of each requested column, or *
    "source_sql(spec)",  # count_source_rows wraps the source's own SELECT; the interval stays bound parameters
    "catalog", "' AND '.join(where)",  # INFORMATION_SCHEMA lookup: checked database name; constant '... = %s' parts
    "column", "wanted",  # ALTER TABLE ADD COLUMN: identifier(field.name) and sql_type() from a fixed mapping
    # streamed validation's rules over the whole snapshot in an in-memory DuckDB (steps/row_rules.py): spec columns
    # double-quoted by _q(), the snapshot path as an escaped literal (read_parquet takes no parameters inside a view),
    # conditions built only from those and `?` (every bound and allowed value is a bound parameter), a constant limit
    "_text(str(path))", "keys", "present", "among", "_q(kwargs['column'])", "check.condition", "check.shown", "EXAMPLES",
    "same",  # read_rows grouped by lineage: identifier(c) IS NOT DISTINCT FROM ? per grouped column
}


def test_sql_text_interpolates_identifiers_only():
    """A new f-string in SQL must be reviewed: values go in as parameters, never into the text."""
    found = {}
    for path in sorted((ROOT / "plugins" / "nightshift").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.JoinedStr) or not node.values or not isinstance(node.values[0], ast.Constant):
                continue
            if not str(node.values[0].value).lstrip().upper().startswith(SQL_KEYWORDS):
                continue
            for part in node.values:
                if isinstance(part, ast.FormattedValue):
                    found.setdefault(ast.unparse(part.value), []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found, "no SQL f-strings found: the scan is broken"
    assert set(found) <= SAFE_INTERPOLATIONS, {k: v for k, v in found.items() if k not in SAFE_INTERPOLATIONS}


# --- the `model` trigger Param ---------------------------------------------------------------------------

HOSTILE_MODELS = ["/etc/passwd", "../../mlruns/0/abc/artifacts/model", "s3://attacker/model.pkl", "runs:/abc123/model",
                  "models:/other_model/1", "file:///tmp/model.pkl", "1; DROP TABLE X", "champion@prod", "http://x/m", "-1"]


@pytest.mark.parametrize("reference", HOSTILE_MODELS)
def test_model_param_cannot_name_a_path_or_uri(reference, tripwires):
    from airflow.sdk.exceptions import AirflowFailException, ParamValidationError

    from nightshift.operators.score import ResolveModelOperator
    from nightshift.render import score_params

    with pytest.raises(ParamValidationError):
        score_params()["model"].resolve(value=reference)  # the trigger form refuses it
    ctx = harness.context("hostile_model", datetime(2026, 2, 4, tzinfo=timezone.utc), datetime(2026, 2, 5, tzinfo=timezone.utc),
                          model=reference)
    with pytest.raises(AirflowFailException, match="must be a registry version number or an alias name"):
        harness.execute(ResolveModelOperator, "credit_default", ctx)  # and so does the task, before asking the registry
    assert tripwires["calls"] == []


def test_model_reference_resolves_inside_the_pipelines_registered_model_only(world):
    from nightshift.spec import find_spec
    from nightshift.steps import score

    credit = score.resolve_model(find_spec("credit_default"), "champion")
    house = score.resolve_model(find_spec("house_prices"), "1")
    assert credit["model_uri"] == f"models:/credit_default/{credit['model_version']}"
    assert house["model_uri"] == "models:/house_prices/1" and house["mlflow_run_id"] != credit["mlflow_run_id"]


# --- secrets in tracked files ------------------------------------------------------------------------------

PRIVATE_KEY = re.compile("-----BEGIN (?:[A-Z]+ )?" + "PRIVATE KEY-----")
AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
TOKENS = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9]{32,})\b")
ASSIGNMENT = re.compile(
    r"""(?ix)["']?([\w.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[\w.-]*)["']?"""
    r"""\s*[:=]\s*(?:"([^"\n]*)"|'([^'\n]*)'|([^\s,}\]#]+))""")
# Documented local placeholders (docker-compose.yaml, test connections); anything else needs a secrets backend.
PLACEHOLDERS = {"minioadmin", "airflow", "placeholder", "testing", "local-compose-jwt-secret-change-me", "changeme", ""}


def secret_findings(name: str, text: str) -> list[str]:
    findings = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{number}"
        if PRIVATE_KEY.search(line):
            findings.append(f"{where}: private key")
        if AWS_KEY_ID.search(line):
            findings.append(f"{where}: AWS access key id")
        if TOKENS.search(line):
            findings.append(f"{where}: API token")
        for match in ASSIGNMENT.finditer(line):
            quoted = match.group(2) if match.group(2) is not None else match.group(3)
            if quoted is None and name.endswith((".py", ".md")):
                continue  # unquoted in code or prose is an expression or a word, not a literal
            value = quoted if quoted is not None else match.group(4)
            if value.lower() in PLACEHOLDERS or value.startswith(("${", "{{", "<", "%(", "os.environ")):
                continue
            if quoted is None and re.fullmatch(r"[\w.]+\(.*", value):
                continue
            findings.append(f"{where}: {match.group(1)} = {value[:4]}…")
    return findings


def test_secret_scanner_catches_what_it_should():
    key_id = "AKIA" + "ABCDEFGHIJKLMNOP"
    assert secret_findings("a.env", f"AWS_ACCESS_KEY_ID={key_id}")
    assert secret_findings("b.pem", "-----BEGIN RSA " + "PRIVATE KEY-----")
    assert secret_findings("c.yaml", "  conn_password: hunter22")
    # split so this line does not itself look like a committed secret to the scan below
    assert secret_findings("d.py", 'CONN = {"pass' + 'word": "s3cr3t-value"}')
    assert not secret_findings("e.yaml", "  conn_password:\n  POSTGRES_PASSWORD: airflow\n  token: ${TOKEN}")
    assert not secret_findings("f.py", "password = admin_password()\nsecret_key=settings.get('x')")


def test_no_secrets_in_tracked_files():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    findings, scanned = [], 0
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary (images)
        scanned += 1
        findings += secret_findings(name, text)
    assert scanned > 50
    assert findings == [], "\n".join(findings)


# --- model artifacts: loading never runs code it was not told to trust -------------------------------------------


def _log_model(model, serialization: str, **extra) -> str:
    import mlflow
    import mlflow.sklearn

    from nightshift.io import tracking

    tracking.client()
    with mlflow.start_run(experiment_id=tracking.experiment_id("model_artifact_safety")):  # artifacts in the test's store
        info = mlflow.sklearn.log_model(model, name="model", serialization_format=serialization, **extra)
    return info.model_uri


def _halve(values):
    """A function a model could carry: skops would have to import and call it to rebuild the model."""
    return values / 2


def _small_model():
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.arange(40, dtype=float).reshape(20, 2)
    return LogisticRegression().fit(x, (x[:, 0] > 20).astype(int)), x


def test_a_pickled_model_is_refused_unless_pickles_are_allowed(local_state, monkeypatch):
    from nightshift.io import tracking

    monkeypatch.delenv(tracking.PICKLE_OPT_IN, raising=False)
    model, x = _small_model()
    uri = _log_model(model, "cloudpickle")
    with pytest.raises(tracking.UntrustedModel, match=rf"{re.escape(uri)} is stored with cloudpickle.*{tracking.PICKLE_OPT_IN}=true"):
        tracking.load_sklearn_model(uri)
    monkeypatch.setenv(tracking.PICKLE_OPT_IN, "true")
    assert (tracking.load_sklearn_model(uri).predict(x) == model.predict(x)).all()


def test_a_skops_model_holding_an_untrusted_type_is_refused_before_it_is_built(local_state, monkeypatch):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from nightshift.io import tracking

    monkeypatch.delenv("NIGHTSHIFT_TRUSTED_MODEL_TYPES", raising=False)
    model, x = _small_model()
    hooked = make_pipeline(FunctionTransformer(_halve), model).fit(x, model.predict(x))  # a function inside the model
    hook = f"{_halve.__module__}.{_halve.__name__}"
    uri = _log_model(hooked, "skops", skops_trusted_types=[hook])
    with pytest.raises(tracking.UntrustedModel, match=rf"holds types outside the trusted list: {re.escape(hook)}"):
        tracking.load_sklearn_model(uri)
    monkeypatch.setenv("NIGHTSHIFT_TRUSTED_MODEL_TYPES", hook)  # the owner's own, named on purpose
    assert (tracking.load_sklearn_model(uri).predict(x) == hooked.predict(x)).all()
    clean = _log_model(model, "skops")
    monkeypatch.delenv("NIGHTSHIFT_TRUSTED_MODEL_TYPES")
    assert (tracking.load_sklearn_model(clean).predict(x) == model.predict(x)).all()  # plain scikit-learn loads
