"""Fixtures of the reliability tier. (The report in docs/reliability.md and the README is written only by
`make reliability-report`, through the opt-in plugin in report.py: a normal test run writes no tracked file.)

`world` (package scope) builds the state every reliability module starts from: generated landing data for
both example pipelines, a champion for each trained by the same task functions the DAGs run, and one good
day of scores for each in the warehouse. Its environment is undone when the package's tests end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from . import harness

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
        "NIGHTSHIFT_CREDIT_SOURCE_URI": str(credit),
        "NIGHTSHIFT_HOUSE_SOURCE_URI": str(house_sales),
        "NIGHTSHIFT_HOUSE_SCORE_URI": f"{listings}/{{ds}}.csv",
        # MLflow infers a model's pip requirements by re-importing it in a subprocess (4-10 s per training on
        # this machine); cut it short so it falls back to the flavor's defaults, which nothing here reads
        "MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT": "1",
    }
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    patch.delenv("NIGHTSHIFT_CREDIT_WAREHOUSE_CONN_ID", raising=False)
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
