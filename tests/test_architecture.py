"""The package's shape: import layers (.importlinter), no loose modules, every DAG task one of our operators."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nightshift.render import render_pipelines

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "plugins" / "nightshift"


def test_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout and " kept" in done.stdout, done.stdout[-2000:]


def test_only_entry_points_and_config_are_loose_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "config.py"], loose
    layers = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert {"spec", "io", "ml", "reporting", "steps", "operators", "render", "cli", "deploy"} <= set(layers), layers


def test_every_task_of_every_rendered_dag_is_a_nightshift_operator():
    dags = render_pipelines(ROOT / "include" / "pipelines")
    specs = sorted(p.stem for p in (ROOT / "include" / "pipelines").glob("*.yaml"))
    assert len(dags) == 2 * len(specs) and not any(d.startswith("invalid_spec__") for d in dags), sorted(dags)
    seen = set()
    for dag in dags.values():
        for task in dag.tasks:
            cls = getattr(task, "operator_class", None) or type(task)  # a mapped task keeps its operator's class
            if isinstance(cls, dict):  # a deserialized mapped task stores the class as a dict
                cls = type(task)
            seen.add(cls.__name__)
            assert cls.__module__.startswith("nightshift.operators."), f"{dag.dag_id}.{task.task_id}: {cls.__module__}.{cls.__name__}"
    assert {"IngestTrainingOperator", "ScoreShardOperator", "PublishOperator", "MonitorOperator"} <= seen, seen
