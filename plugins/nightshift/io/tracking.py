"""MLflow tracking and registry: one MLflow run per DAG run, aliases instead of stages.

Every task of a DAG run finds the same MLflow run by the tag `nightshift.dag_run_id`, so retries
and reruns write to one place instead of scattering half-runs.

Store failures name the store: `client()` checks an embedded SQLite store before MLflow opens it (MLflow
itself retries a file it cannot open for about 100 s, then says only `unable to open database file`), and
every call on the client it returns turns SQLite's words into a `TrackingStoreError` that names MLflow and
the file: "MLflow tracking store sqlite:///.../mlflow.db is not a database (corrupt?)", "... is locked by
another process", "... cannot be opened (it is a directory)". All of them are outages (retried);
`TrackingStoreMissing` is the one a retry cannot fix unless someone restores the file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from nightshift import config
from nightshift.spec import errors

if TYPE_CHECKING:
    from datetime import datetime

    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
DAG_RUN_TAG = "nightshift.dag_run_id"


class TrackingStoreError(RuntimeError):
    """The tracking store (or server) cannot serve requests: unreachable, not a database, cannot be opened.
    An outage: retried. The message names the store."""

    def __init__(self, message: str, uri: str | None = None):
        self.uri = uri
        super().__init__(errors.bounded(message))


class TrackingStoreLocked(TrackingStoreError):
    """Another process holds the embedded store's lock (SQLite `database is locked`): retried."""


class TrackingStoreMissing(TrackingStoreError):
    """The embedded store's file is gone although this pipeline's state says it must exist (the warehouse holds
    scores made by its models): refused instead of silently starting an empty registry. A retry helps only once
    the file is restored."""


def store_path(uri: str | None = None) -> Path | None:
    """The file of an embedded SQLite tracking store (`sqlite:///path`), None for servers and other databases."""
    uri = uri or config.mlflow_tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


SQLITE_HEADER = b"SQLite format 3\x00"


def check_store(expect_existing: bool = False, uri: str | None = None) -> None:
    """Refuse an embedded SQLite store MLflow could not use, before MLflow tries (and retries) to open it.

    `expect_existing=True` (the caller knows this pipeline has history, e.g. the warehouse holds its scores):
    a missing or empty file raises TrackingStoreMissing rather than letting MLflow create an empty store.
    Servers and non-SQLite databases are not checked here (their errors arrive through `client()`'s calls)."""
    uri = uri or config.mlflow_tracking_uri()
    path = store_path(uri)
    if path is None:
        return
    where = f"MLflow tracking store {uri}"
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        if expect_existing:
            state = "is missing" if not path.exists() else "is empty (0 bytes)"
            raise TrackingStoreMissing(
                f"{where} {state}, but this pipeline has history (its scores are in the warehouse): refusing to start "
                "an empty registry; restore the file, or point MLFLOW_TRACKING_URI at the right store", uri)
        folder = path.parent
        if folder.exists() and not folder.is_dir():
            raise TrackingStoreError(f"{where} cannot be opened ({folder} is not a folder)", uri)
        return
    if path.is_dir():
        raise TrackingStoreError(f"{where} cannot be opened (it is a directory, not a file)", uri)
    if not os.access(path, os.R_OK | os.W_OK):
        raise TrackingStoreError(f"{where} cannot be opened (permission denied: the file is not readable and writable "
                                 f"by user id {os.getuid()})", uri)
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise TrackingStoreError(f"{where} cannot be opened ({errors.clip(exc, 200)})", uri) from exc
    if header != SQLITE_HEADER:
        raise TrackingStoreError(f"{where} is not a database (corrupt?): the file does not start with the SQLite header "
                                 f"(first bytes {errors.show(header[:16])})", uri)


_NOT_A_DATABASE = ("file is not a database", "database disk image is malformed", "file is encrypted or is not a database")
_LOCKED = ("database is locked", "database table is locked")
_CANNOT_OPEN = ("unable to open database file", "attempt to write a readonly database", "disk i/o error")


def store_error(exc: BaseException, uri: str | None = None) -> TrackingStoreError | None:
    """A TrackingStoreError naming the store for SQLite's failures anywhere in exc's chain, else None."""
    if isinstance(exc, TrackingStoreError):
        return exc
    uri = uri or config.mlflow_tracking_uri()
    messages, seen, current = [], set(), exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        messages.append(str(current))
        current = current.__cause__ or current.__context__
    text = " ".join(messages).lower()
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    original = errors.clip(re.sub(r"^\((?:sqlite3|sqlalchemy)[.\w]*\) ", "", first), 200)
    where = f"MLflow tracking store {uri}"
    if any(m in text for m in _NOT_A_DATABASE):
        return TrackingStoreError(f"{where} is not a database (corrupt?): {original}", uri)
    if any(m in text for m in _LOCKED):
        return TrackingStoreLocked(f"{where} is locked by another process ({original}); retry when it is released", uri)
    if any(m in text for m in _CANNOT_OPEN):
        return TrackingStoreError(f"{where} cannot be opened ({_why_not_open(uri) or original})", uri)
    return None


def _why_not_open(uri: str) -> str | None:
    path = store_path(uri)
    if path is None:
        return None
    if path.is_dir():
        return "it is a directory, not a file"
    if not path.parent.is_dir():
        return f"its folder {path.parent} does not exist"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return "permission denied"
    return None


@contextlib.contextmanager
def store_errors(uri: str | None = None) -> Iterator[None]:
    """Around any MLflow call (the fluent API too): SQLite's failures become TrackingStoreErrors naming the store."""
    try:
        yield
    except Exception as exc:
        translated = store_error(exc, uri)
        if translated is None or translated is exc:
            raise
        raise translated from exc


class _GuardedClient:
    """An MlflowClient whose every call goes through store_errors (attributes pass through unchanged)."""

    def __init__(self, inner: "MlflowClient", uri: str):
        self._inner, self._uri = inner, uri

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with store_errors(self._uri):
                return attr(*args, **kwargs)

        return call

    def __repr__(self) -> str:
        return f"<MlflowClient on {self._uri} (store errors named)>"


def client() -> "MlflowClient":
    """A client on the configured tracking server (the registry lives there too); store failures name the store."""
    import mlflow

    uri = config.mlflow_tracking_uri()
    if uri.startswith("sqlite:///"):
        config.local_dir().mkdir(parents=True, exist_ok=True)
        check_store(uri=uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with store_errors(uri):
        inner = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    return _GuardedClient(inner, uri)  # type: ignore[return-value]


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


def unavailable(exc: Exception, what: str) -> TrackingStoreError:
    """A clear, retryable error for a tracking server or registry that did not answer."""
    named = store_error(exc)
    if named is not None:
        return type(named)(f"{named} ({what})", named.uri)
    uri = config.mlflow_tracking_uri()
    return TrackingStoreError(f"MLflow tracking server {uri} is unavailable ({what}): {exc}", uri)


def champion(name: str) -> "ModelVersion | None":
    """The version carrying alias `champion`, or None when nothing was promoted yet.

    Only a "does not exist" answer means no champion: an unreachable registry raises, so evaluation
    never mistakes an outage for "nothing to regress against" (fail closed)."""
    return version_by_alias(name, CHAMPION)


def version_by_alias(name: str, alias: str) -> "ModelVersion | None":
    """The version carrying `alias`, or None when no version does; an unreachable registry raises (fail closed)."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise unavailable(exc, f"looking up {name}@{alias}") from exc


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


# Types a logged model may contain beyond skops' defaults (scikit-learn's estimators, numpy arrays): our transformers,
# XGBoost's classes, numpy dtypes, scikit-learn's tree predictors. Loading checks a model against THIS list, never against
# the list stored with the model (anyone who can write the artifact store could extend that one).
# NIGHTSHIFT_TRUSTED_MODEL_TYPES (comma-separated) adds types for estimators outside it.
TRUSTED_MODEL_TYPES = (
    "nightshift.ml.transformers.DerivedColumns",
    "nightshift.ml.transformers._AsText",
    "nightshift.ml.transformers._TextOrMissing",
    "nightshift.ml.transformers._TextOneHot",
    "nightshift.ml.transformers._MedianImputer",
    "numpy.dtype",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
)
PICKLE_OPT_IN = "NIGHTSHIFT_ALLOW_PICKLE_MODELS"


class UntrustedModel(RuntimeError):
    """A model artifact that loading could turn into code execution: pickled, or holding types outside the trusted list.
    Deterministic: no retry changes the artifact."""


def trusted_model_types() -> list[str]:
    extra = [t.strip() for t in os.environ.get("NIGHTSHIFT_TRUSTED_MODEL_TYPES", "").split(",") if t.strip()]
    return sorted({*TRUSTED_MODEL_TYPES, *extra})


def load_sklearn_model(model_uri: str) -> Any:
    """A logged pipeline as the sklearn object itself (probabilities, feature names).

    Models are stored with skops (nightshift.steps.train) and loaded with skops against TRUSTED_MODEL_TYPES: a model
    holding any other type is refused (UntrustedModel) before anything in it is built. Pickled (cloudpickle) models,
    which run code while loading, load only with NIGHTSHIFT_ALLOW_PICKLE_MODELS=true (models trained before the switch)."""
    import tempfile

    import mlflow.artifacts
    from mlflow.models import Model

    client()
    with tempfile.TemporaryDirectory() as tmp, store_errors():
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        flavor = Model.load(local).flavors.get("sklearn") or {}
        serialization = flavor.get("serialization_format", "pickle")
        path = os.path.join(local, flavor.get("pickled_model", "model.pkl"))
        if serialization == "skops":
            import skops.io

            trusted = trusted_model_types()
            untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(trusted))
            if untrusted:
                raise UntrustedModel(f"model {model_uri} holds types outside the trusted list: {', '.join(untrusted)}; refusing to "
                                     "load it (if they are yours, add them to NIGHTSHIFT_TRUSTED_MODEL_TYPES)")
            return skops.io.load(path, trusted=trusted)
        if os.environ.get(PICKLE_OPT_IN, "").lower() != "true":
            raise UntrustedModel(f"model {model_uri} is stored with {serialization}, which can run arbitrary code while loading: "
                                 f"refused. Retrain it (new versions are stored with skops), or set {PICKLE_OPT_IN}=true "
                                 "to load pickled models from an artifact store only trusted writers can reach")
        import mlflow.sklearn

        return mlflow.sklearn.load_model(local)


# --- training windows and the champion's history ----------------------------------------------------------

WINDOW_END_TAG = "nightshift.window_end"  # run tag (lineage) and version tag: where the version's data window ends (exclusive)
FIT_END_TAG = "nightshift.fit_end"  # version tag: no row the model was fitted on is later than this (held-out start, time split)
BACKFILL_TAG = "nightshift.backfill"
CHAMPION_SINCE_TAG = "nightshift.champion_since"
HISTORY_TAG = "nightshift.champion_history"  # registered-model tag: JSON list, oldest first
# MLflow validates registered-model tag values up to 100,000 characters, but its SQL store keeps them in a
# String(5000) column (MySQL and PostgreSQL enforce it): the history keeps the newest entries that fit in 5,000.
HISTORY_MAX_CHARS = 5000


def moment(value: Any) -> "datetime | None":
    """A UTC datetime from an ISO string, date or datetime (naive values are UTC); None for empty or unreadable input."""
    from datetime import date, datetime, timezone

    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def version_window(name: str, version: "ModelVersion | str") -> dict:
    """{"window_end", "fit_end"} of a version (ISO strings or None): its own tags, else its run's lineage tags.

    A version without `nightshift.fit_end` (registered before it existed) counts as fitted up to its window end:
    the conservative bound."""
    mlflow_client = client()
    if isinstance(version, str) or not hasattr(version, "tags"):
        version = mlflow_client.get_model_version(name, str(version))
    tags = dict(version.tags or {})
    window_end = tags.get(WINDOW_END_TAG)
    if window_end is None and version.run_id:
        window_end = mlflow_client.get_run(version.run_id).data.tags.get(WINDOW_END_TAG)
    return {"window_end": window_end, "fit_end": tags.get(FIT_END_TAG) or window_end}


def version_record(name: str, version: "ModelVersion | str") -> dict:
    """What a version recorded when it was trained: {"metrics": its held-out metrics (the run's `test_*`, prefix
    dropped), "tags": the version's tags}. A run that cannot be read gives empty metrics."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    if isinstance(version, str) or not hasattr(version, "tags"):
        version = mlflow_client.get_model_version(name, str(version))
    found: dict[str, float] = {}
    if version.run_id:
        try:
            run_metrics = mlflow_client.get_run(version.run_id).data.metrics
        except MlflowException:
            run_metrics = {}
        found = {k.removeprefix("test_"): float(v) for k, v in run_metrics.items() if k.startswith("test_")}
    return {"metrics": found, "tags": dict(version.tags or {})}


def champion_history(name: str) -> list[dict]:
    """Every recorded move of `champion`, oldest first: version, at, by, via, window_end, previous."""
    import json

    from mlflow.exceptions import MlflowException

    try:
        text = client().get_registered_model(name).tags.get(HISTORY_TAG)
    except MlflowException as exc:
        if is_missing(exc):
            return []
        raise unavailable(exc, f"reading the champion history of {name}") from exc
    try:
        entries = json.loads(text) if text else []
    except ValueError:
        return []
    return [e for e in entries if isinstance(e, dict) and "version" in e] if isinstance(entries, list) else []


def _fit(entries: list[dict], limit: int = HISTORY_MAX_CHARS) -> str:
    """The JSON of the newest entries that fit in `limit` characters (the oldest are dropped first)."""
    import json

    while True:
        text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False)
        if len(text) <= limit or not entries:
            return text
        entries = entries[1:]


def move_champion(name: str, version: str, *, by: str, via: str, window_end: str | None = None) -> dict:
    """Point `champion` at `version` and record the move (who, when, which version, its window end).

    The history is the registered-model tag `nightshift.champion_history` (newest entries within MLflow's 5,000
    characters); the version gets `nightshift.champion_since`. A retry that repeats the last move adds no entry."""
    from datetime import datetime, timezone

    mlflow_client = client()
    version = str(version)
    before = champion(name)
    mlflow_client.set_registered_model_alias(name, CHAMPION, version)
    if window_end is None:
        window_end = version_window(name, version)["window_end"]
    entries = champion_history(name)
    entry = {"version": version, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "by": by, "via": via,
             "window_end": window_end, "previous": str(before.version) if before is not None else None}
    if before is not None and str(before.version) == version and entries and str(entries[-1].get("version")) == version:
        return entries[-1]  # the alias did not move and the history already says so (e.g. a retried task)
    mlflow_client.set_registered_model_tag(name, HISTORY_TAG, _fit([*entries, entry]))
    mlflow_client.set_model_version_tag(name, version, CHAMPION_SINCE_TAG, entry["at"])
    return entry


def champion_as_of(name: str, when: Any, current: "ModelVersion | None" = None) -> str | None:
    """The version that was champion as of data time `when`: the most recent move in the history to a version whose
    training window ends at or before `when`. A champion set outside Nightshift (no history entry) counts as the
    latest move. None: no such version (nothing to regress against as of then)."""
    when = moment(when)
    current = current if current is not None else champion(name)
    entries = champion_history(name)
    if current is not None and (not entries or str(entries[-1].get("version")) != str(current.version)):
        entries.append({"version": str(current.version), "window_end": version_window(name, current)["window_end"]})
    if when is None:
        return str(current.version) if current is not None else None
    for entry in reversed(entries):
        end = moment(entry.get("window_end"))
        if end is not None and end <= when:
            return str(entry["version"])
    return None


def registered_model_tag(name: str, key: str) -> str | None:
    """A tag of a registered model; None when the model or the tag does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_registered_model(name).tags.get(key)
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise unavailable(exc, f"reading registered model {name}") from exc
