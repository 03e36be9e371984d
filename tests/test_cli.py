"""The nightshift CLI: draft a spec from a CSV, validate, train it in-process, status and rollback."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from nightshift import cli
from nightshift.io import tracking
from nightshift_demo.generate import write_house_sales


def test_schema_and_validate_commands(capsys, tmp_path):
    assert cli.main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Nightshift pipeline spec"
    assert cli.main(["validate"]) == 0
    assert "ok       " in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\n")
    assert cli.main(["validate", str(bad)]) == 1
    assert f"{bad}: description: required field is missing" in capsys.readouterr().out


@pytest.mark.e2e
def test_new_from_csv_validates_trains_and_rolls_back(airflow_db, local_state, tmp_path, monkeypatch, capsys):
    csv = tmp_path / "sales.csv"
    write_house_sales(csv, rows=600)
    pipelines = tmp_path / "pipelines"
    monkeypatch.setenv("NIGHTSHIFT_PIPELINES_DIR", str(pipelines))
    assert cli.main(["new", "sales_price", "--from", str(csv), "--target", "price"]) == 0
    drafted = yaml.safe_load((pipelines / "sales_price.yaml").read_text())
    assert drafted["target"] == {"column": "price", "task": "regression"}
    assert drafted["source"]["entity_key"] == ["sale_id"]
    assert drafted["schema"]["condition"]["values"] == ["excellent", "fair", "good", "poor"]
    sqft = pd.read_csv(csv)["sqft"]
    assert drafted["schema"]["sqft"]["min"] == 0 and drafted["schema"]["sqft"]["max"] >= sqft.max()  # bounds with a margin
    assert cli.main(["new", "sales_price", "--from", str(csv), "--target", "price"]) == 1  # no silent overwrite

    assert cli.main(["run", "sales_price", "--date", "2026-02-01", "--train"]) == 0
    out = capsys.readouterr().out
    assert "-> ingest ..." in out and "sales_price_train success" in out
    assert cli.main(["run", "sales_price", "--date", "2026-02-08", "--train"]) == 0
    assert str(tracking.champion("sales_price").version) in ("1", "2")

    assert cli.main(["rollback", "sales_price", "--to", "1"]) == 0
    assert str(tracking.champion("sales_price").version) == "1"
    assert cli.main(["rollback", "sales_price", "--to", "9"]) == 1
    capsys.readouterr()
    assert cli.main(["status", "sales_price"]) == 0
    status = capsys.readouterr().out
    assert "sales_price: champion version 1" in status and status.count("manual__") == 2


def test_unknown_pipeline_is_a_clear_error(capsys):
    assert cli.main(["status", "no_such_pipeline"]) == 2
    assert "no pipeline named 'no_such_pipeline'" in capsys.readouterr().err


def test_a_dry_run_summary_counts_the_staged_rows_and_leaves_the_warehouse_as_it_was(tmp_path, monkeypatch):
    """`nightshift run --score` with dry_run published nothing: the summary says what it scored instead of only
    'no rows published'."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nightshift.cli.summary import score_summary
    from nightshift.spec import find_spec

    monkeypatch.setenv("NIGHTSHIFT_WAREHOUSE", str(tmp_path / "empty.duckdb"))
    monkeypatch.setenv("NIGHTSHIFT_ALLOWED_ROOTS", str(tmp_path))
    staging = tmp_path / "run" / "staging"
    staging.mkdir(parents=True)
    for index, rows in enumerate([5, 7]):
        pq.write_table(pa.table({"SCORE": [0.5] * rows}), staging / f"shard-{index:03d}.parquet")
    pq.write_table(pa.table({"SCORE": [0.1] * 3}), staging / "shadow-v2.parquet")  # shadow rows are not the run's scores
    text = score_summary(find_spec("credit_default"), {"interval_start": "2026-02-03", "interval_end": "2026-02-04",
                                                       "dry_run": True}, str(tmp_path / "run"))
    assert "(dry run: nothing published)" in text
    assert f"12 rows scored into 2 staging file(s) under {tmp_path / 'run'}/staging; the warehouse is untouched" in text
    assert "(as before the run)" in text and "no rows published for these days" in text


def test_a_failed_run_prints_what_failed_and_the_notifier_gets_the_same_words(airflow_db, local_state, credit_data, tmp_path,
                                                                           monkeypatch, capsys):
    """One way to say what failed: the CLI summary prints the failing task's bounded message, and the spec's notifier
    receives the same text (a failure no retry can fix: a rule the data breaks)."""
    from pathlib import Path

    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    doc = yaml.safe_load((Path(__file__).parents[1] / "include" / "pipelines" / "credit_default.yaml").read_text())
    doc["monitoring"]["notify"] = {"notifier": "airflow.providers.smtp.notifications.smtp.SmtpNotifier",
                                   "kwargs": {"to": "oncall@example.com", "subject": "nightshift", "html_content": "{{ alert_message }}"}}
    doc["name"] = "credit_failing"  # its own DAG ids: the e2e modules' credit_default DAGs stay as they registered them
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "credit_failing.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("NIGHTSHIFT_PIPELINES_DIR", str(folder))
    sent = []
    monkeypatch.setattr(SmtpNotifier, "notify", lambda self, context: sent.append(self.html_content))
    part = credit_data / "dt=2025-10-01" / "part-0.parquet"
    rows = pd.read_parquet(part)
    rows.loc[rows.index[:3], "income"] = -500.0
    rows.to_parquet(part, index=False)

    assert cli.main(["run", "credit_failing", "--train", "--date", "2026-02-01"]) == 1
    out = capsys.readouterr().out
    assert out.count("\nFAILED ") == 1 and "\nFAILED validate: credit_failing validate failed: " in out
    message = out.split("\nFAILED validate: ", 1)[1].split("\n\nthe run failed; Airflow's full log: ", 1)[0]
    assert "income" in message and "dt=2025-10-01" in message and len(message) <= 2000
    assert sent == [message]
    assert tracking.client().search_registered_models() == []  # nothing registered on the way
