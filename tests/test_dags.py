"""DAG integrity: every spec renders, nothing heavy is imported at parse time, broken specs stay visible."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["pandas", "numpy", "sklearn", "xgboost", "mlflow", "great_expectations", "pyarrow", "matplotlib"]

PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "heavy": [m for m in %r if m in sys.modules], "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "tags": sorted(dag.tags), "doc_md": dag.doc_md or "", "params": sorted(dag.params.keys()),
        "timetable": type(dag.timetable).__name__,
        "tasks": {t.task_id: {"owner": t.owner, "retries": t.retries, "backoff": t.retry_exponential_backoff} for t in dag.tasks},
    }
print("JSON" + json.dumps(out))
""" % (HEAVY,)


def load_dagbag(pipelines_dir: Path | None = None) -> dict:
    """Parse the dags folder in a fresh interpreter, as Airflow's DAG processor would."""
    env = dict(os.environ)
    if pipelines_dir:
        env["NIGHTSHIFT_PIPELINES_DIR"] = str(pipelines_dir)
    done = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "dags")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(l for l in done.stdout.splitlines() if l.startswith("JSON"))
    return json.loads(line[4:])


@pytest.fixture(scope="module")
def bag() -> dict:
    return load_dagbag()


def test_no_import_errors_and_every_spec_renders(bag):
    assert bag["import_errors"] == {}
    assert {"credit_default_train", "house_prices_train"} <= set(bag["dags"])


def test_parse_time_imports_nothing_heavy(bag):
    assert bag["heavy"] == []


def test_every_dag_has_tags_owner_retries_and_docs(bag):
    for dag_id, dag in bag["dags"].items():
        assert "nightshift" in dag["tags"], dag_id
        assert dag["doc_md"].strip(), dag_id
        for task_id, task in dag["tasks"].items():
            assert task["owner"] not in ("", "airflow"), (dag_id, task_id)
            assert task["retries"] >= 1 and task["backoff"] >= 2.0, (dag_id, task_id)


def test_train_dag_shape_params_and_interval_timetable(bag):
    dag = bag["dags"]["credit_default_train"]
    assert list(dag["tasks"]) == ["ingest", "validate", "features", "train", "evaluate", "promote"]
    assert {"dry_run", "window_end"} <= set(dag["params"])
    assert dag["timetable"] == "CronDataIntervalTimetable"
    assert "roc_auc" in dag["doc_md"] and "min 0.65" in dag["doc_md"]
    assert {"credit_default", "train", "credit"} <= set(dag["tags"])


def test_broken_spec_is_visible_and_others_still_load(tmp_path):
    for spec in (ROOT / "include" / "pipelines").glob("*.yaml"):
        shutil.copy(spec, tmp_path / spec.name)
    (tmp_path / "churn.yaml").write_text("name: churn\ndescription: x\nsource: {uri: '../secrets'}\n")
    result = load_dagbag(tmp_path)
    assert result["import_errors"] == {}
    assert {"credit_default_train", "house_prices_train"} <= set(result["dags"])
    broken = result["dags"]["invalid_spec__churn"]
    assert "invalid-spec" in broken["tags"]
    assert "churn.yaml: source.uri: '..' path segments are not allowed" in broken["doc_md"]
    assert "churn.yaml: schema: required field is missing" in broken["doc_md"]
