"""MLflow tracking and registry: one MLflow run per DAG run, aliases instead of stages.

Every task of a DAG run finds the same MLflow run by the tag `nightshift.dag_run_id`, so retries
and reruns write to one place instead of scattering half-runs.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from typing import TYPE_CHECKING

from nightshift import config

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
DAG_RUN_TAG = "nightshift.dag_run_id"


def client() -> "MlflowClient":
    """A client on the configured tracking server (the registry lives there too)."""
    import mlflow

    uri = config.mlflow_tracking_uri()
    if uri.startswith("sqlite:///"):
        config.local_dir().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(name: str) -> str:
    """The experiment named after the pipeline, created on first use."""
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment:
        return experiment.experiment_id
    location = None
    if config.mlflow_tracking_uri().startswith(("sqlite:", "postgresql", "mysql")):
        location = f"{config.mlflow_artifact_root().rstrip('/')}/{name}"
    return mlflow_client.create_experiment(name, artifact_location=location)


def find_run(pipeline: str, dag_run_id: str | None = None) -> str | None:
    """The MLflow run of a DAG run (or the latest run of the pipeline), without creating one."""
    where = f"tags.`{DAG_RUN_TAG}` = '{dag_run_id.replace(chr(39), '')}'" if dag_run_id else ""
    found = client().search_runs([experiment_id(pipeline)], filter_string=where, max_results=1, order_by=["start_time DESC"])
    return found[0].info.run_id if found else None


def run_for_dag_run(pipeline: str, dag_run_id: str, tags: dict | None = None) -> str:
    """The MLflow run of a DAG run: found by tag, created the first time."""
    existing = find_run(pipeline, dag_run_id)
    if existing:
        return existing
    run = client().create_run(experiment_id(pipeline), run_name=dag_run_id, tags={DAG_RUN_TAG: dag_run_id, **(tags or {})})
    return run.info.run_id


def is_missing(exc: Exception) -> bool:
    """The registry answered that the model, version or alias does not exist (not: it could not be reached)."""
    return getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def unavailable(exc: Exception, what: str) -> RuntimeError:
    """A clear, retryable error for a tracking server or registry that did not answer."""
    return RuntimeError(f"MLflow tracking server {config.mlflow_tracking_uri()} is unavailable ({what}): {exc}")


def champion(name: str) -> "ModelVersion | None":
    """The version carrying alias `champion`, or None when nothing was promoted yet.

    Only a "does not exist" answer means no champion: an unreachable registry raises, so evaluation
    never mistakes an outage for "nothing to regress against" (fail closed)."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise unavailable(exc, f"looking up {name}@{CHAMPION}") from exc


def ensure_registered_model(name: str, description: str) -> None:
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    try:
        mlflow_client.get_registered_model(name)
    except MlflowException:
        mlflow_client.create_registered_model(name, description=description)


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The project's commit, when it is a git checkout (lineage)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=config.project_root(), capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
