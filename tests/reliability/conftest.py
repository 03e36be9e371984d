"""Fixtures of the reliability tier, and the hooks that turn its pytest reports into docs/reliability.md.

`world` (package scope) builds the state every reliability module starts from: generated landing data for
both example pipelines, a champion for each trained by the same task functions the DAGs run, and one good
day of scores for each in the warehouse. Its environment is undone when the package's tests end.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from . import harness, report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GOOD_DAY = date(2026, 2, 3)  # scored and published once by `world`


@dataclass
class World:
    root: Path
    credit: Path  # daily parquet partitions, 2025-10-01 .. 2026-02-12
    house_sales: Path  # the training CSV
    listings: Path  # one scoring CSV per day, 2026-02-01 .. 2026-02-12
    warehouse: Path
    env: dict


@pytest.fixture(scope="package")
def world(tmp_path_factory) -> World:
    from threadpoolctl import threadpool_limits

    from nightshift_demo.generate import write_credit_applications, write_house_listings, write_house_sales

    root = tmp_path_factory.mktemp("reliability")
    landing = root / "landing"
    credit = landing / "credit_applications"
    write_credit_applications(credit, date(2025, 10, 1), date(2026, 2, 12), rows_per_day=40)
    house_sales = write_house_sales(landing / "house_sales.csv", rows=600)
    listings = landing / "house_listings"
    write_house_listings(listings, date(2026, 2, 1), date(2026, 2, 12), rows_per_day=60)
    env = {
        "NIGHTSHIFT_LOCAL_DIR": str(root / "local"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'local' / 'mlflow.db'}",
        "NIGHTSHIFT_WAREHOUSE": str(root / "warehouse.duckdb"),
        "CREDIT_SOURCE_URI": str(credit),
        "HOUSE_SOURCE_URI": str(house_sales),
        "HOUSE_SCORE_URI": f"{listings}/{{ds}}.csv",
        # MLflow infers a model's pip requirements by re-importing it in a subprocess (4-10 s per training on
        # this machine); cut it short so it falls back to the flavor's defaults, which nothing here reads
        "MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT": "1",
    }
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    patch.delenv("CREDIT_WAREHOUSE_CONN_ID", raising=False)
    # One OpenMP thread: on a busy 2-core machine scikit-learn's spinning OpenMP workers made a 600-row
    # HistGradientBoosting fit ~30x slower (measured: 59 s vs 2 s for five fits at load average 10)
    limits = threadpool_limits(limits=1, user_api="openmp")
    try:
        for pipeline in ("credit_default", "house_prices"):
            trained = harness.run_train(pipeline, f"world__{pipeline}_train")
            assert trained.failed is None, trained.describe()
            assert trained.results["promote"]["alias"] == "champion", trained.results["promote"]
            scored = harness.run_score(pipeline, f"world__{pipeline}_score", GOOD_DAY)
            assert scored.failed is None and scored.results["publish"]["rows"] > 0, scored.describe()
        yield World(root, credit, house_sales, listings, root / "warehouse.duckdb", env)
    finally:
        limits.restore_original_limits()
        patch.undo()


# --- the report ------------------------------------------------------------------------------------

_items: dict[str, str] = {}  # nodeid -> category, for the reliability tests selected in this session
_outcomes: dict[str, tuple[str, str]] = {}
_state = {"partial": None, "seconds": 0.0, "written": None}


def _mine(item) -> bool:
    return Path(str(item.path)).resolve().is_relative_to(HERE)


def pytest_deselected(items):
    if any(_mine(item) for item in items):
        _state["partial"] = "some reliability tests were deselected"


def pytest_collection_finish(session):
    for item in session.items:
        if _mine(item):
            _items[item.nodeid] = report.category_of(item)
    for arg in session.config.args:  # a file or a node id selects part of the tier
        path = Path(arg.split("::", 1)[0]).resolve()
        if "::" in arg or not path.is_dir() or not (path == HERE or HERE.is_relative_to(path)):
            _state["partial"] = f"run on {arg!r}, not on the whole tier"


def pytest_runtest_logreport(report):
    if report.nodeid not in _items:
        return
    _state["seconds"] += report.duration
    previous = _outcomes.get(report.nodeid, (None, None))[1]
    if previous == "failed":
        return
    if report.failed:
        outcome = "failed"
    elif report.skipped:
        outcome = "skipped"
    elif report.when == "call":
        outcome = "passed"
    else:
        outcome = previous
    if outcome:
        _outcomes[report.nodeid] = (_items[report.nodeid], outcome)


def pytest_sessionfinish(session, exitstatus):
    if not _items:
        return
    missing = [n for n in _items if n not in _outcomes]
    if _state["partial"] or missing:
        _state["written"] = f"not written: {_state['partial'] or f'{len(missing)} reliability tests did not run'}"
        return
    command = "pytest " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "pytest"
    doc = ROOT / "docs" / "reliability.md"
    doc.parent.mkdir(exist_ok=True)
    doc.write_text(report.render_doc(_outcomes, _state["seconds"], command), encoding="utf-8")
    in_readme = report.update_readme(ROOT / "README.md", report.render_section(_outcomes))
    _state["written"] = f"written to {doc.relative_to(ROOT)}" + ("" if in_readme else " (README markers missing)")


def pytest_terminal_summary(terminalreporter):
    if _state["written"]:
        terminalreporter.write_line(f"reliability report {_state['written']}")
