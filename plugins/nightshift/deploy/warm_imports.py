"""What a Celery worker imports once so that the tasks it forks start warm (see celery_config).

Imports only: no connection, thread or file handle is opened here, so forking afterwards is safe.
"""

import duckdb  # noqa: F401
import great_expectations  # noqa: F401
import mlflow  # noqa: F401
import mlflow.sklearn  # noqa: F401
import pandas  # noqa: F401
import pyarrow.parquet  # noqa: F401
import sklearn.pipeline  # noqa: F401
import xgboost  # noqa: F401

import nightshift.steps.evaluate  # noqa: F401 - the step modules every task imports (they pull in the rest)
import nightshift.steps.monitor  # noqa: F401
import nightshift.steps.performance  # noqa: F401
import nightshift.steps.score  # noqa: F401
import nightshift.steps.validate  # noqa: F401
