"""The pipeline spec: one YAML file declares one ML pipeline.

The pydantic models below are the single source of truth for what a spec may say: they
validate specs, generate `include/pipeline.schema.json` for editors and `docs/spec.md`.
Errors always name the file, the field path and the reason.

Environment-specific values use `${VAR}` or `${VAR:-default}` inside any string value, so a
spec can point at a local folder on a laptop and at S3 in production without being copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nightshift.spec import expressions

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
PIPELINE_NAME = r"^[a-z][a-z0-9_]{1,62}$"
TABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"
CONN_ID = r"^[A-Za-z0-9_.-]{1,250}$"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^{}]|\{[^{}]*\})*))?\}")  # defaults may hold {ds}
_CRON_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@once"}
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")

Identifier = Annotated[str, Field(pattern=IDENTIFIER)]

CLASSIFICATION_METRICS = {"roc_auc", "pr_auc", "log_loss", "accuracy", "f1", "precision", "recall", "brier"}
MULTICLASS_METRICS = {"accuracy", "f1_macro", "log_loss", "roc_auc_ovr"}
REGRESSION_METRICS = {"rmse", "mae", "r2", "mape"}
METRICS_BY_TASK = {
    "binary": CLASSIFICATION_METRICS,
    "multiclass": MULTICLASS_METRICS,
    "regression": REGRESSION_METRICS,
}
DEFAULT_METRICS = {
    "binary": ["roc_auc", "pr_auc", "log_loss"],
    "multiclass": ["accuracy", "f1_macro", "log_loss"],
    "regression": ["rmse", "mae", "r2"],
}


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Schedule(StrictModel):
    """When the scheduler runs the two DAGs of a pipeline."""

    train: str | None = Field("0 3 * * 0", description="Cron (or preset such as @weekly) for `<name>_train`; null = manual only.")
    score: str | None = Field("0 2 * * *", description="Cron for `<name>_score`; each run scores its data interval; null = manual only.")
    start_date: date = Field(description="First data interval the scheduler (and catch-up) considers.")
    catchup: bool = Field(False, description="Create runs for every missed interval since start_date.")

    @field_validator("train", "score")
    @classmethod
    def _cron_shape(cls, value: str | None) -> str | None:
        if value is None or value in _CRON_PRESETS:
            return value
        fields = value.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise ValueError(f"'{value}' is not a 5-field cron expression or a preset like @daily")
        return value


class CsvOptions(StrictModel):
    """How to read CSV sources."""

    delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator.")
    encoding: Literal["utf-8", "latin-1"] = Field("utf-8", description="File encoding.")


SNOWFLAKE_NAME = r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$"


class SnowflakeSource(StrictModel):
    """Read a table or a query from Snowflake for the run's interval (values are always bound parameters)."""

    conn_id: str = Field("snowflake_default", pattern=CONN_ID, description="Airflow Snowflake connection.")
    table: str | None = Field(
        None, description="`TABLE`, `SCHEMA.TABLE` or `DATABASE.SCHEMA.TABLE`; rows are filtered on source.event_time."
    )
    query: str | None = Field(
        None,
        max_length=20_000,
        description="A SELECT with the bound placeholders `%(interval_start)s` and `%(interval_end)s` (both required).",
    )

    @field_validator("table")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None:
            parts = value.split(".")
            if not 1 <= len(parts) <= 3 or not all(re.match(SNOWFLAKE_NAME, p) for p in parts):
                raise ValueError(f"'{value}' is not a plain [DATABASE.][SCHEMA.]TABLE name (letters, digits, _ and $ only)")
        return value

    @model_validator(mode="after")
    def _table_or_query(self) -> SnowflakeSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("set exactly one of table or query")
        if self.query is not None:
            missing = [p for p in ("%(interval_start)s", "%(interval_end)s") if p not in self.query]
            if missing:
                raise ValueError(f"query must filter on the bound placeholders {', '.join(missing)}")
            if ";" in self.query.strip().rstrip(";"):
                raise ValueError("query must be a single statement")
        return self


class Source(StrictModel):
    """Where the raw data lives and how to read it: files (local or S3) or Snowflake."""

    uri: str | None = Field(None, description="Local path (relative to the project root) or `s3://<conn_id>@bucket/prefix`.")
    snowflake: SnowflakeSource | None = Field(None, description="Read from Snowflake instead of files.")
    format: Literal["parquet", "csv"] = Field("parquet", description="File format.")
    partitioning: Literal["daily", "none"] = Field(
        "daily", description="`daily`: folders `dt=YYYY-MM-DD/` under uri; `none`: uri is one file or a flat folder."
    )
    event_time: Identifier | None = Field(
        None, description="Timestamp column that places each row in time; drives training windows and scoring intervals."
    )
    entity_key: list[Identifier] = Field(min_length=1, max_length=8, description="Columns that identify a row.")
    score_uri: str | None = Field(
        None,
        description="Scoring input for sources without event_time, templated by the run date: `{ds}` (YYYY-MM-DD) "
        "or `{ds_nodash}`; for example `data/landing/listings/{ds}.csv`.",
    )
    csv: CsvOptions = Field(default_factory=CsvOptions, description="CSV reading options.")

    @field_validator("uri", "score_uri")
    @classmethod
    def _safe_uri(cls, value: str | None) -> str | None:
        return None if value is None else check_uri(value)

    @field_validator("score_uri")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"bad template: {exc}") from None
        unknown = fields - {"ds", "ds_nodash"}
        if unknown or not fields:
            raise ValueError(f"score_uri must use {{ds}} or {{ds_nodash}} and nothing else (found {sorted(unknown) or 'none'})")
        return value

    @model_validator(mode="after")
    def _one_origin(self) -> Source:
        if (self.uri is None) == (self.snowflake is None):
            raise ValueError("set exactly one of uri (files) or snowflake")
        return self

    @property
    def location(self) -> str:
        """Where the data comes from, for docs and messages."""
        if self.snowflake:
            return f"snowflake://{self.snowflake.conn_id}/{self.snowflake.table or 'query'}"
        return self.uri


class Target(StrictModel):
    """What the model predicts."""

    column: Identifier = Field(description="Label column (absent at scoring time).")
    task: Literal["binary", "multiclass", "regression"] = Field(description="Learning task.")
    positive_class: str | int | bool = Field(1, description="Positive label for binary tasks.")


class Column(StrictModel):
    """Declared type and rules of one input column; becomes Great Expectations expectations."""

    type: Literal["string", "integer", "float", "boolean", "category", "date", "timestamp"] = Field(
        description="Logical type."
    )
    nullable: bool = Field(True, description="Whether nulls are allowed.")
    unique: bool = Field(False, description="Whether values must be unique.")
    min: float | None = Field(None, description="Smallest allowed value (numeric columns).")
    max: float | None = Field(None, description="Largest allowed value (numeric columns).")
    values: list[str | int | float | bool] | None = Field(
        None, max_length=10_000, description="Allowed values (categories)."
    )
    max_length: int | None = Field(None, ge=1, le=1_000_000, description="Longest allowed string.")

    @model_validator(mode="after")
    def _rules_fit_type(self) -> Column:
        if (self.min is not None or self.max is not None) and self.type not in ("integer", "float"):
            raise ValueError(f"min/max apply to integer or float columns, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Expectation(StrictModel):
    """An extra Great Expectations expectation, by name, with its keyword arguments."""

    expectation: str = Field(
        pattern=r"^(expect_[a-z0-9_]{3,100}|Expect[A-Za-z0-9]{3,100})$",
        description="GX expectation name, snake_case (`expect_column_values_to_match_regex`) or class name.",
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Arguments, for example `{column: email, regex: '@'}`.")
    applies_to: Literal["always", "training"] = Field(
        "always", description="`training` skips it at scoring (for expectations about the target)."
    )


class NumericFeatures(StrictModel):
    """Numeric inputs: imputed then scaled."""

    columns: list[Identifier] = Field(default_factory=list, description="Numeric columns.")
    impute: Literal["median", "mean", "zero", "none"] = Field("median", description="How nulls are filled.")
    scale: Literal["standard", "minmax", "robust", "none"] = Field("standard", description="Scaling.")


class CategoricalFeatures(StrictModel):
    """Categorical inputs: imputed then encoded."""

    columns: list[Identifier] = Field(default_factory=list, description="Categorical columns.")
    encode: Literal["onehot", "ordinal"] = Field("onehot", description="Encoding.")
    unseen: Literal["ignore", "error"] = Field(
        "ignore", description="Categories never seen in training: encoded as all-zeros/unknown (`ignore`) or rejected."
    )
    max_categories: int | None = Field(None, ge=2, le=10_000, description="Rarer categories are grouped (onehot).")


class DatetimeFeatures(StrictModel):
    """Timestamp inputs expanded into calendar parts."""

    columns: list[Identifier] = Field(default_factory=list, description="Date or timestamp columns.")
    parts: list[Literal["year", "month", "day", "dayofweek", "dayofyear", "hour"]] = Field(
        default_factory=lambda: ["month", "dayofweek"], min_length=1, description="Parts extracted as numbers."
    )


class DerivedFeature(StrictModel):
    """A numeric feature computed from other columns, e.g. `debt / income`."""

    name: Identifier = Field(description="New column name.")
    expr: str = Field(
        max_length=500,
        description="Arithmetic over column names and numbers with + - * / ** and log, log1p, sqrt, abs, exp, "
        "minimum, maximum; division by zero gives null.",
    )

    @field_validator("expr")
    @classmethod
    def _parsable(cls, value: str) -> str:
        expressions.referenced_columns(value)  # raises ValueError with the reason
        return value


class Features(StrictModel):
    """How raw columns become the model's inputs (fitted on the training split only)."""

    numeric: NumericFeatures = Field(default_factory=NumericFeatures, description="Numeric columns.")
    categorical: CategoricalFeatures = Field(default_factory=CategoricalFeatures, description="Categorical columns.")
    datetime: DatetimeFeatures = Field(default_factory=DatetimeFeatures, description="Datetime columns.")
    derived: list[DerivedFeature] = Field(default_factory=list, description="Derived numeric features.")
    passthrough: list[Identifier] = Field(default_factory=list, description="Numeric columns given to the model unchanged.")
    drop: list[Identifier] = Field(
        default_factory=list, description="Columns that must never be used as features (ids, leaks); listing one elsewhere is an error."
    )


class Split(StrictModel):
    """How the window is split into training and held-out rows."""

    method: Literal["time", "random"] = Field("time", description="`time`: the latest rows are held out.")
    test_fraction: float = Field(0.2, gt=0.0, le=0.5, description="Share of rows held out for evaluation.")


class Training(StrictModel):
    """Which rows a training run sees."""

    window_days: int = Field(365, ge=1, le=3650, description="Length of the training window in days.")
    label_delay_days: int = Field(
        0, ge=0, le=3650, description="Days until a label is known; the window ends this long before the run's interval end."
    )
    split: Split = Field(default_factory=Split, description="Train / held-out split.")
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Random seed for splits, tuning and models.")
    min_rows: int = Field(100, ge=1, le=10**9, description="Fewer rows in the window is an error.")


class Tuning(StrictModel):
    """Random search within a trial budget, scored on a validation slice of the training split."""

    trials: int = Field(10, ge=1, le=500, description="Number of parameter sets tried.")
    metric: str | None = Field(None, description="Metric to optimise; defaults to the first evaluation metric.")
    space: dict[Identifier, list[str | int | float | bool | None]] = Field(
        description="Candidate values per parameter, e.g. `{max_depth: [3, 4, 6]}`."
    )


class Model(StrictModel):
    """The estimator."""

    flavor: Literal["xgboost", "sklearn"] = Field("xgboost", description="XGBoost, or a scikit-learn estimator.")
    estimator: str | None = Field(
        None,
        pattern=r"^(sklearn|xgboost)(\.[a-z_][a-z0-9_]*)+\.[A-Z][A-Za-z0-9]*$",
        description="Import path for flavor sklearn, e.g. `sklearn.ensemble.HistGradientBoostingRegressor`.",
    )
    params: dict[Identifier, Any] = Field(default_factory=dict, description="Estimator keyword arguments.")
    tuning: Tuning | None = Field(None, description="Optional hyper-parameter search.")

    @model_validator(mode="after")
    def _estimator_for_sklearn(self) -> Model:
        if self.flavor == "sklearn" and not self.estimator:
            raise ValueError("flavor sklearn needs `estimator`, an import path such as sklearn.linear_model.Ridge")
        return self


class Gate(StrictModel):
    """One promotion rule. Set exactly one of min, max, min_delta_vs_champion, max_relative_drop_vs_champion."""

    metric: str = Field(description="Metric name from evaluation.metrics.")
    min: float | None = Field(None, description="Challenger value must be at least this.")
    max: float | None = Field(None, description="Challenger value must be at most this.")
    min_delta_vs_champion: float | None = Field(
        None, description="Improvement over the champion on the same rows must be at least this (negative allows a small loss)."
    )
    max_relative_drop_vs_champion: float | None = Field(
        None, ge=0.0, le=1.0, description="Challenger may be worse than the champion by at most this fraction."
    )

    @model_validator(mode="after")
    def _exactly_one_rule(self) -> Gate:
        rules = [self.min, self.max, self.min_delta_vs_champion, self.max_relative_drop_vs_champion]
        if sum(r is not None for r in rules) != 1:
            raise ValueError("a gate sets exactly one of min, max, min_delta_vs_champion, max_relative_drop_vs_champion")
        return self


class SliceGate(StrictModel):
    """Every group of a slice column with at least `evaluation.min_slice_rows` held-out rows must meet this bound."""

    slice: Identifier = Field(description="A column listed in evaluation.slices.")
    metric: str = Field(description="Metric from evaluation.metrics, computed per group.")
    min: float | None = Field(None, description="Each gated group's value must be at least this.")
    max: float | None = Field(None, description="Each gated group's value must be at most this (for lower-is-better metrics).")

    @model_validator(mode="after")
    def _exactly_one_bound(self) -> SliceGate:
        if (self.min is None) == (self.max is None):
            raise ValueError("a slice gate sets exactly one of min, max")
        return self


class FairnessGate(StrictModel):
    """The largest gap of a rate between the groups of a sensitive attribute, at evaluation.threshold (binary tasks)."""

    attribute: Identifier = Field(description="Sensitive attribute: a declared column (need not be a feature).")
    metric: Literal["tpr_gap", "fpr_gap", "positive_rate_gap"] = Field(
        description="`tpr_gap`: true-positive rates (equal opportunity); `fpr_gap`: false-positive rates; "
        "`positive_rate_gap`: shares predicted positive (demographic parity)."
    )
    max: float = Field(ge=0.0, le=1.0, description="Largest allowed gap between the highest and lowest group.")


class Evaluation(StrictModel):
    """Held-out metrics and the gates a challenger must pass to become champion."""

    metrics: list[str] | None = Field(None, description="Metrics to compute; defaults depend on target.task.")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Decision threshold for binary labels.")
    gates: list[Gate] = Field(default_factory=list, description="All must pass for promotion.")
    slices: list[Identifier] = Field(default_factory=list, description="Columns whose groups get their own metrics.")
    min_slice_rows: int = Field(
        30, ge=1, le=10**9,
        description="Held-out rows a group needs before it can gate; smaller groups are reported, never gated. Fairness gates "
        "count the rate's denominator (positives for tpr_gap, negatives for fpr_gap, rows for positive_rate_gap).",
    )
    slice_gates: list[SliceGate] = Field(
        default_factory=list, description="Per-slice bounds, e.g. `{slice: region, metric: roc_auc, min: 0.6}`; all must pass."
    )
    fairness: list[FairnessGate] = Field(
        default_factory=list,
        description="Limits on gaps between groups of a sensitive attribute (binary tasks), e.g. "
        "`{attribute: region, metric: tpr_gap, max: 0.1}`; all must pass.",
    )


class Promotion(StrictModel):
    """Who decides, after every gate passed, that the challenger becomes champion."""

    approval: Literal["none", "required"] = Field(
        "none", description="`required`: a person approves in the Airflow UI (Required Actions) before `champion` moves."
    )
    timeout_hours: float = Field(24.0, gt=0.0, le=24 * 90, description="How long the request waits for an answer.")
    on_timeout: Literal["reject", "approve"] = Field("reject", description="The decision taken when nobody answers in time.")
    approvers: list[str] = Field(
        default_factory=list, max_length=50,
        description="Airflow user ids allowed to answer; empty = anyone who may act on the DAG.",
    )


class Scoring(StrictModel):
    """Where and how scores are written."""

    output_table: str = Field(pattern=TABLE_NAME, description="Warehouse table, stored upper-case.")
    shards: int = Field(4, ge=1, le=64, description="Parallel scoring tasks (dynamic task mapping).")
    batch_rows: int = Field(65_536, ge=1_000, le=5_000_000, description="Rows per streamed record batch.")
    threshold: float | None = Field(None, gt=0.0, lt=1.0, description="Adds a LABEL column for binary tasks.")
    min_rows: int = Field(0, ge=0, le=10**9, description="Fewer input rows fails the run (0 allows empty days).")
    warehouse_conn_id: str | None = Field(
        None, pattern=CONN_ID, description="Airflow connection of the warehouse; unset = embedded DuckDB."
    )
    pool: str = Field(
        "nightshift_warehouse", pattern=CONN_ID, description="Airflow pool that limits concurrent warehouse writes (publish)."
    )

    @field_validator("output_table")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("warehouse_conn_id", mode="before")
    @classmethod
    def _empty_is_embedded(cls, value: str | None) -> str | None:
        """`${WAREHOUSE_CONN:-}` left empty means the embedded warehouse."""
        return value or None


class Drift(StrictModel):
    """Drift thresholds on the population stability index."""

    method: Literal["psi"] = Field("psi", description="Drift statistic.")
    warn: float = Field(0.1, ge=0.0, le=10.0, description="PSI at or above this warns.")
    fail: float = Field(0.25, ge=0.0, le=10.0, description="PSI at or above this fails.")
    bins: int = Field(10, ge=2, le=50, description="Quantile bins per numeric column (and for the score) in the reference profile.")
    significance: float = Field(
        0.0001, gt=0.0, le=0.5,
        description="A PSI alarms only if sampling noise alone reaches it with less than this probability: small "
        "partitions have large PSI by chance (about (bins - 1) / rows), and this keeps them from crying wolf.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Drift:
        if self.warn > self.fail:
            raise ValueError(f"warn ({self.warn}) must not exceed fail ({self.fail})")
        return self


class Notify(StrictModel):
    """Where drift warnings and failures go: the task log always, plus an Airflow notifier when named."""

    notifier: str | None = Field(
        None,
        pattern=r"^(airflow\.providers|nightshift)(\.[a-z_][a-z0-9_]*)+\.[A-Z][A-Za-z0-9]*$",
        description="Import path of an Airflow notifier class, e.g. `airflow.providers.smtp.notifications.smtp.SmtpNotifier` "
        "or `airflow.providers.slack.notifications.slack.SlackNotifier`; unset = log only.",
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="The notifier's arguments (connection id, recipients, ...). Jinja templates see `drift_message` and "
        "`drift` (the summary), e.g. `{to: risk@example.com, subject: 'drift {{ drift.verdict }}', html_content: '{{ drift_message }}'}`.",
    )


class Monitoring(StrictModel):
    """Checks run after scoring."""

    drift: Drift = Field(default_factory=Drift, description="Drift thresholds.")
    block_publish_on: Literal["fail"] | None = Field(None, description="`fail`: drift failure stops publishing.")
    retrain_on_drift: bool = Field(
        False, description="A drift failure emits the Asset `nightshift://<name>/drift`, on which `<name>_train` is also scheduled."
    )
    notify: Notify = Field(default_factory=Notify, description="Alerts on drift warnings and failures.")


class Pipeline(StrictModel):
    """One ML pipeline: rendered into `<name>_train` and `<name>_score`."""

    name: str = Field(pattern=PIPELINE_NAME, description="Lower-case identifier; prefixes the DAG ids and names the registered model.")
    description: str = Field(min_length=1, max_length=2000, description="What the model predicts, shown in the DAG docs.")
    owner: str = Field("nightshift", min_length=1, max_length=100, description="Airflow owner of both DAGs.")
    tags: list[str] = Field(default_factory=list, max_length=20, description="Extra Airflow tags.")
    intended_use: str | None = Field(None, max_length=4000, description="Who may use the scores and for what (model card).")
    retries: int = Field(2, ge=0, le=10, description="Task retries, with exponential backoff.")
    schedule: Schedule = Field(description="Schedules.")
    source: Source = Field(description="Raw data.")
    target: Target = Field(description="Label.")
    columns: dict[Identifier, Column] = Field(alias="schema", min_length=1, description="Declared input columns.")
    expectations: list[Expectation] = Field(default_factory=list, description="Extra GX expectations.")
    features: Features = Field(description="Feature transformation.")
    training: Training = Field(default_factory=Training, description="Training window and split.")
    model: Model = Field(default_factory=Model, description="Estimator.")
    evaluation: Evaluation = Field(default_factory=Evaluation, description="Metrics and gates.")
    promotion: Promotion = Field(default_factory=Promotion, description="Human approval before `champion` moves (optional).")
    scoring: Scoring = Field(description="Scoring output.")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="Drift monitoring.")

    @property
    def metrics(self) -> list[str]:
        return self.evaluation.metrics or DEFAULT_METRICS[self.target.task]

    @property
    def feature_columns(self) -> list[str]:
        """Raw columns the feature pipeline reads, in a stable order."""
        f = self.features
        derived_inputs = [c for d in f.derived for c in expressions.referenced_columns(d.expr)]
        ordered = [*f.numeric.columns, *f.categorical.columns, *f.datetime.columns, *f.passthrough, *derived_inputs]
        return list(dict.fromkeys(ordered))

    @property
    def train_dag_id(self) -> str:
        return f"{self.name}_train"

    @property
    def score_dag_id(self) -> str:
        return f"{self.name}_score"

    def spec_hash(self) -> str:
        """Stable hash of the resolved spec, recorded with every model for lineage."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class SpecError(ValueError):
    """An invalid spec: every problem with its field path, in plain words."""

    def __init__(self, path: str | Path, problems: list[tuple[str, str]]):
        self.path = str(path)
        self.problems = problems
        lines = [f"{self.path}: {loc or '<top>'}: {msg}" for loc, msg in problems]
        super().__init__(f"invalid pipeline spec {self.path}\n  " + "\n  ".join(lines))


def check_uri(uri: str) -> str:
    """Allow local paths and s3:// only, and no `..` segments (path traversal)."""
    if "\x00" in uri or len(uri) > 1024:
        raise ValueError("uri contains a NUL byte or is longer than 1024 characters")
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme not in ("", "s3", "file"):
        raise ValueError(f"unsupported uri scheme '{scheme}://': use a local path or s3://")
    if any(part == ".." for part in re.split(r"[/\\]", uri)):
        raise ValueError("'..' path segments are not allowed in uris")
    return uri


def format_loc(loc: tuple[Any, ...]) -> str:
    """('features', 'numeric', 'columns', 2) -> 'features.numeric.columns[2]'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def substitute_env(node: Any, loc: tuple = (), problems: list | None = None) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string; record unset variables as problems."""
    problems = [] if problems is None else problems
    if isinstance(node, dict):
        return {k: substitute_env(v, (*loc, k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_env(v, (*loc, i), problems) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name, default)
        if value is None:
            problems.append((format_loc(loc), f"environment variable {name} is not set and has no default"))
            return ""
        return value

    return _ENV_REF.sub(replace, node)


def _reference_problems(spec: Pipeline) -> list[tuple[str, str]]:
    """Cross-field rules: every referenced column is declared and used consistently."""
    problems: list[tuple[str, str]] = []
    declared = spec.columns

    def need(loc: str, column: str, types: tuple[str, ...] | None = None) -> None:
        if column not in declared:
            problems.append((loc, f"column '{column}' is not declared in schema"))
        elif types and declared[column].type not in types:
            problems.append((loc, f"column '{column}' has type {declared[column].type}, expected one of {', '.join(types)}"))

    numeric = ("integer", "float", "boolean")
    for i, col in enumerate(spec.source.entity_key):
        need(f"source.entity_key[{i}]", col)
    if spec.source.snowflake and not spec.source.event_time:
        problems.append(("source.event_time", "a Snowflake source needs event_time to select each run's interval"))
    if spec.source.event_time:
        need("source.event_time", spec.source.event_time, ("timestamp", "date"))
    elif spec.schedule.score and not spec.source.score_uri:
        problems.append(("source.score_uri", "sources without event_time need a score_uri templated by {ds} to be scored"))
    need("target.column", spec.target.column)
    f = spec.features
    for i, col in enumerate(f.numeric.columns):
        need(f"features.numeric.columns[{i}]", col, numeric)
    for i, col in enumerate(f.categorical.columns):
        need(f"features.categorical.columns[{i}]", col, ("string", "category", "boolean", "integer"))
    for i, col in enumerate(f.datetime.columns):
        need(f"features.datetime.columns[{i}]", col, ("date", "timestamp"))
    for i, col in enumerate(f.passthrough):
        need(f"features.passthrough[{i}]", col, numeric)
    for i, d in enumerate(f.derived):
        for col in expressions.referenced_columns(d.expr):
            need(f"features.derived[{i}].expr", col, numeric)
        if d.name in declared:
            problems.append((f"features.derived[{i}].name", f"'{d.name}' clashes with a declared column"))
    for i, col in enumerate(f.drop):
        need(f"features.drop[{i}]", col)
    used = spec.feature_columns
    if not used and not f.derived:
        problems.append(("features", "no feature columns declared"))
    for bad, where in [(spec.target.column, "the target"), *[(k, "an entity key") for k in spec.source.entity_key]]:
        if bad in used:
            problems.append(("features", f"column '{bad}' is {where} and cannot be a feature"))
    for col in f.drop:
        if col in used:
            problems.append(("features.drop", f"column '{col}' is dropped but also listed as a feature"))
    allowed = METRICS_BY_TASK[spec.target.task]
    for i, metric in enumerate(spec.metrics):
        if metric not in allowed:
            problems.append((f"evaluation.metrics[{i}]", f"'{metric}' is not a {spec.target.task} metric ({', '.join(sorted(allowed))})"))
    for i, gate in enumerate(spec.evaluation.gates):
        if gate.metric not in spec.metrics:
            problems.append((f"evaluation.gates[{i}].metric", f"'{gate.metric}' is not among evaluation.metrics"))
    if spec.model.tuning and spec.model.tuning.metric and spec.model.tuning.metric not in spec.metrics:
        problems.append(("model.tuning.metric", f"'{spec.model.tuning.metric}' is not among evaluation.metrics"))
    for i, col in enumerate(spec.evaluation.slices):
        need(f"evaluation.slices[{i}]", col)
    problems += _governance_problems(spec, need)
    if spec.scoring.threshold is not None and spec.target.task != "binary":
        problems.append(("scoring.threshold", "a label threshold applies to binary tasks only"))
    return problems


def _governance_problems(spec: Pipeline, need) -> list[tuple[str, str]]:
    """Slice and fairness gates refer to reported slices, known metrics and discrete columns."""
    problems: list[tuple[str, str]] = []
    ev = spec.evaluation
    for i, gate in enumerate(ev.slice_gates):
        if gate.slice not in ev.slices:
            problems.append((f"evaluation.slice_gates[{i}].slice", f"'{gate.slice}' is not among evaluation.slices"))
        if gate.metric not in spec.metrics:
            problems.append((f"evaluation.slice_gates[{i}].metric", f"'{gate.metric}' is not among evaluation.metrics"))
    for i, gate in enumerate(ev.fairness):
        need(f"evaluation.fairness[{i}].attribute", gate.attribute, ("string", "category", "boolean", "integer"))
        if spec.target.task != "binary":
            problems.append((f"evaluation.fairness[{i}].metric", f"fairness gaps apply to binary tasks only, not {spec.target.task}"))
        if gate.attribute == spec.target.column:
            problems.append((f"evaluation.fairness[{i}].attribute", "the target cannot be the sensitive attribute"))
    return problems


MAX_SPEC_VALUES = 1_000_000  # after YAML aliases are expanded; a real spec holds hundreds (thousands with long value lists)


def _too_many_values(node: Any, limit: int = MAX_SPEC_VALUES) -> bool:
    """Count values without recursion, stopping at the limit: YAML aliases (`*a`) can expand a 1 KB file into
    billions of values ("billion laughs"), which would stall the DAG processor and so hide every pipeline."""
    stack, seen = [node], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_spec(raw: Any, path: str | Path = "<spec>") -> Pipeline:
    """Validate an already-parsed YAML document; raise SpecError with every problem."""
    if not isinstance(raw, dict):
        raise SpecError(path, [("", "the file must hold a mapping of fields (name, source, schema, ...)")])
    if _too_many_values(raw):
        raise SpecError(path, [("", f"the spec expands to more than {MAX_SPEC_VALUES:,} values (YAML aliases?)")])
    problems: list[tuple[str, str]] = []
    resolved = substitute_env(raw, problems=problems)
    if problems:
        raise SpecError(path, problems)
    try:
        spec = Pipeline.model_validate(resolved)
    except ValidationError as exc:
        raise SpecError(path, _pydantic_problems(exc)) from None
    problems = _reference_problems(spec)
    if problems:
        raise SpecError(path, problems)
    return spec


_UNION_MEMBER = re.compile(r"^(str|int|float|bool|none|date|list\[.*\]|dict\[.*\]|[A-Z]\w*)$")


def _pydantic_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """One line per field: union members' errors at the same place are merged."""
    merged: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and _UNION_MEMBER.match(p) and p not in error["loc"][:1]))
        messages = merged.setdefault(format_loc(loc), [])
        if (msg := _plain(error)) not in messages:
            messages.append(msg)
    return [(loc, " or ".join(msgs)) for loc, msgs in merged.items()]


def _plain(error: dict) -> str:
    """pydantic's message, with the offending value where it helps."""
    msg = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("extra_forbidden",):
        return "unknown field (check the spelling; see include/pipeline.schema.json)"
    if error["type"] == "missing":
        return "required field is missing"
    if "input" in error and not isinstance(error["input"], (dict, list)):
        return f"{msg} (got {error['input']!r})"
    return msg


def _load_yaml(text: str) -> Any:
    """libyaml when present (~6x faster; DAG parse time grows with every spec), else and on any error
    the pure-Python loader, so error messages (with a caret under the fault) stay PyYAML's own."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)  # noqa: S506 - CSafeLoader is the safe loader
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


MAX_SPEC_BYTES = 10_000_000


def load_spec(path: str | Path) -> Pipeline:
    """Read and validate one YAML spec file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(path, [("", f"file is larger than {MAX_SPEC_BYTES:,} bytes")])
        raw = _load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, [("", f"cannot read file: {exc}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError(path, [("", f"not valid YAML: {exc}")]) from None
    return parse_spec(raw, path)


def spec_files(folder: str | Path) -> list[Path]:
    """The YAML specs in a folder, sorted so DAG order is stable."""
    folder = Path(folder)
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def load_all(folder: str | Path) -> tuple[dict[Path, Pipeline], dict[Path, SpecError]]:
    """Load every spec; a broken one is reported, never hides the others."""
    specs: dict[Path, Pipeline] = {}
    errors: dict[Path, SpecError] = {}
    seen: dict[str, Path] = {}
    for path in spec_files(folder):
        try:
            spec = load_spec(path)
        except SpecError as exc:
            errors[path] = exc
            continue
        if spec.name in seen:
            errors[path] = SpecError(path, [("name", f"'{spec.name}' is already used by {seen[spec.name].name}")])
            continue
        seen[spec.name] = path
        specs[path] = spec
    return specs, errors


def find_spec(name: str, folder: str | Path | None = None) -> Pipeline:
    """The spec whose `name` field matches (used by tasks at run time)."""
    from nightshift import config

    specs, errors = load_all(folder or config.pipelines_dir())
    for spec in specs.values():
        if spec.name == name:
            return spec
    for path, exc in errors.items():
        if path.stem == name:
            raise exc
    raise LookupError(f"no pipeline named '{name}' in {folder or config.pipelines_dir()}")


def json_schema() -> dict:
    """JSON Schema of the spec, for editors (yaml-language-server) and docs."""
    schema = Pipeline.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Nightshift pipeline spec"
    return schema
