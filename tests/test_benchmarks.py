"""Smoke test of the benchmarks: every script runs at tiny sizes and the report renders.

The figures themselves are measurements, not pass/fail criteria (`make bench` produces them);
this only checks that `benchmarks/run_all.py --quick` runs every benchmark end to end, that each
prints its JSON figures, and that the markdown report holds all six with their ratios.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e  # the per-task benchmark runs the scoring DAG with dag.test()


def test_every_benchmark_runs_at_tiny_sizes_and_the_report_renders(tmp_path):
    out, state = tmp_path / "benchmarks.md", tmp_path / "state"
    env = {**os.environ, "NIGHTSHIFT_BENCH_TMP": str(tmp_path / "work")}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick", "--out", str(out), "--state-dir", str(state)],
                          capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads((state / "results.json").read_text())["results"]
    assert set(results) == {"scoring", "memory", "parse", "training", "tasks", "dag"}
    scoring = results["scoring"]
    assert scoring["rows"] == 3000 and scoring["max_abs_score_diff_vs_limit"] < 1e-9
    assert all(scoring[k] > 0 for k in ("nightshift_rows_per_s", "limit_rows_per_s", "naive_rows_per_s"))
    assert results["memory"]["ratio_peak_large_to_small"] > 0
    assert results["parse"]["heavy_imported_by_nightshift"] == []
    assert results["training"]["ratio_train_step_to_bare"] > 0
    assert {"resolve_model", "ingest", "validate", "score", "publish"} <= set(results["tasks"]["warm_tasks"])
    dag = results["dag"]
    assert set(dag["large"]["tasks"]) == {"resolve_model", "ingest", "validate", "plan_shards", "score", "publish", "monitor"}
    assert dag["large"]["rows"] == 9000 and dag["large"]["tasks"]["score"]["instances"] == 4
    assert all(dag[k] > 0 for k in ("predict_rows_per_s", "booster_rows_per_s", "worst_peak_rss_ratio"))
    # The marginal rate is a difference of two tiny timings: on a loaded machine the larger day can finish first,
    # and then the margin is not measurable (NaN, shown as "n/a"). Check it is derived from the task seconds.
    extra_rows, extra_seconds = dag["large"]["rows"] - dag["small"]["rows"], dag["large"]["step_seconds"] - dag["small"]["step_seconds"]
    if extra_seconds > 0:
        assert dag["marginal_rows_per_s"] == pytest.approx(extra_rows / extra_seconds, rel=0.01)
    else:
        assert math.isnan(dag["marginal_rows_per_s"])

    report = out.read_text()
    assert "cores" in report and "GiB memory" in report
    for figure in ("pipeline/limit", "pipeline/naive", "large/small", "ms/spec", "step/bare", "Per-task", "marginal/predict",
                   "predict/booster", "Whole scoring DAG"):
        assert figure in report, figure
    assert not list((tmp_path / "work").glob("*")), "benchmarks must clean up their temporary folders"
