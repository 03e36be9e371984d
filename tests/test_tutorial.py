"""docs/tutorial.md, run verbatim: every ```bash block, in order, in a fresh shell inside a copy of the project.

Each block runs with `bash -e -o pipefail` (cwd: the project copy; environment: HOME, PATH=/usr/bin:/bin and
NIGHTSHIFT_HOME only, see tests/cli_user.py) and must exit 0 and print what the tutorial promises. A ```text block
right after a command is output the page shows: each of its lines must appear in what the command printed (`...`
stands for text left out). Editing the tutorial's commands means updating STEPS below, on purpose.
"""

from __future__ import annotations

import re
import subprocess

import pandas as pd
import pytest
import yaml

import cli_user

pytestmark = pytest.mark.realdata

TUTORIAL = cli_user.ROOT / "docs" / "tutorial.md"
SPEC = "include/pipelines/patients.yaml"
NEW_PATIENTS = 42  # the tutorial's split: 400 training rows of scikit-learn's 442, the rest scored on 2026-03-02
FEATURES = ["age", "sex", "bmi", "bp", "cholesterol", "ldl", "hdl", "cholesterol_per_hdl", "log_triglycerides", "glucose"]

# (how the block starts, what its output must contain: literal text, or re.compile(...) for a pattern)
STEPS = [
    ("mkdir -p data/landing/patients", []),
    (".venv/bin/python -c \"\nfrom sklearn.datasets import load_diabetes", [f"400 training rows, {NEW_PATIENTS} new patients"]),
    (".venv/bin/nightshift new patients", [f"/{SPEC}: regression on 'progression', key ['row_key']", "source.row_key: hash"]),
    ("grep -n \"score_uri\"", ["score_uri: data/landing/patients/{ds}.csv"]),
    ("sed -i -E", []),
    (".venv/bin/nightshift validate --deep", [f"ok       {SPEC}: patients (regression, {len(FEATURES)} input columns)"]),
    (".venv/bin/nightshift run patients --train", ["first use of", "patients_train success", "registered   patients version 1: promoted",
                                                  "champion     patients@champion -> version 1", "gate         PASS"]),
    (".venv/bin/nightshift run patients --score", ["patients_score success", re.compile(rf"2026-03-02\s+1\s+{NEW_PATIENTS}\b")]),
    (".venv/bin/nightshift run patients --score", ["patients_score success", re.compile(rf"2026-03-02\s+1\s+{NEW_PATIENTS}\b")]),
    (".venv/bin/nightshift status patients", ["patients: champion version 1", f"2026-03-02  version 1  {NEW_PATIENTS} rows"]),
    (".venv/bin/python -c \"\nimport duckdb", ["MODEL_VERSION", "patients", "2026-03-02"]),
]


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```\s*$", text, flags=re.M | re.S)


def shown_lines_appear(shown: str, printed: str) -> list[str]:
    """The lines of a ```text block that do not appear in the output (`...` matches anything)."""
    missing = []
    for line in shown.splitlines():
        pattern = ".*?".join(re.escape(part) for part in line.strip().split("..."))
        if line.strip() and not re.search(pattern, printed):
            missing.append(line)
    return missing


def test_tutorial_runs_verbatim(tmp_path):
    page = blocks(TUTORIAL.read_text())
    commands = [(i, body) for i, (lang, body) in enumerate(page) if lang == "bash"]
    starts = [start for start, _ in STEPS]
    assert [body[:len(start)] for (_, body), start in zip(commands, starts)] == starts and len(commands) == len(STEPS), \
        "docs/tutorial.md changed: update STEPS"
    project = cli_user.make_project(tmp_path / "project")
    env = cli_user.user_env(project, tmp_path / "home")
    for (index, body), (_, expected) in zip(commands, STEPS):
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", body], cwd=project, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, cli_user.explain(done, project)
        for want in expected:
            found = want.search(done.stdout) if isinstance(want, re.Pattern) else want in done.stdout
            assert found, f"block {index} did not print {want!r}:\n{cli_user.explain(done, project)}"
        if index + 1 < len(page) and page[index + 1][0] == "text":  # output the page shows for this command
            missing = shown_lines_appear(page[index + 1][1], done.stdout)
            assert not missing, f"docs/tutorial.md shows output this command did not print: {missing}\n{done.stdout}"
        if body.startswith("sed -i"):  # the review kept the floors and removed every drafted ceiling of a feature
            schema = yaml.safe_load((project / SPEC).read_text())["schema"]
            assert all(schema[c].get("min") == 0 and "max" not in schema[c] for c in FEATURES), schema

    rows = cli_user.warehouse_rows(project, "PATIENTS_SCORES")
    assert len(rows) == NEW_PATIENTS and rows["ROW_KEY"].is_unique and set(rows["MODEL_VERSION"].astype(str)) == {"1"}
    training = pd.read_csv(project / "data" / "landing" / "patients.csv")["progression"]
    span = training.max() - training.min()
    assert rows["SCORE"].between(training.min() - span / 2, training.max() + span / 2).all()  # predictions of the label,
    assert rows["SCORE"].nunique() > NEW_PATIENTS / 2  # one per patient, not a constant
