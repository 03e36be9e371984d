"""The pipeline spec: one YAML file declares one ML pipeline.

The pydantic models below are the single source of truth for what a spec may say: they
validate specs, generate `include/pipeline.schema.json` for editors and `docs/spec.md`.
Loading (YAML limits, environment substitution, allowed roots, cross-field rules, name
uniqueness, resolving import paths) lives in `nightshift.spec.loader`.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from datetime import date
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nightshift.spec import expressions

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
PIPELINE_NAME = r"^[a-z][a-z0-9_]{1,62}$"
TABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"
CONN_ID = r"^[A-Za-z0-9_.-]{1,250}$"
MODEL_REFERENCE = r"^([0-9]{1,9}|[A-Za-z][A-Za-z0-9_-]{0,63})$"  # a registry version number or an alias, never a path
_CRON_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@once"}
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")

Identifier = Annotated[str, Field(pattern=IDENTIFIER)]

MAX_COLUMNS = 2_000  # declared schema columns
MAX_EXPECTATIONS = 5_000  # extra GX expectations
MAX_GATES = 200  # evaluation.gates + slice_gates + fairness, together

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
        if not croniter.is_valid(value):  # e.g. minute 99: Airflow would only fail when it builds the timetable
            raise ValueError(f"'{value}' is not a valid cron expression (a field is out of range or malformed)")
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


class Wait(StrictModel):
    """How long a scoring run waits for its input to land before it fails (a sensor in reschedule mode)."""

    timeout_hours: float = Field(6.0, ge=0.0, le=168.0, description="Fail (and notify) when the data has not landed after this long.")
    poke_minutes: float = Field(
        5.0, ge=0.01, le=1440.0, description="Minutes between checks; the worker slot is released in between (reschedule mode)."
    )
    require_rows: bool = Field(
        False, description="Snowflake sources: wait until the interval holds at least one row (files always wait for their folders)."
    )


class Source(StrictModel):
    """Where the raw data lives and how to read it: files (local or S3) or Snowflake."""

    uri: str | None = Field(
        None, description="Local path (relative to the project root) inside an allowed root, or `s3://[conn_id@]bucket/prefix`."
    )
    snowflake: SnowflakeSource | None = Field(None, description="Read from Snowflake instead of files.")
    format: Literal["parquet", "csv"] = Field("parquet", description="File format.")
    partitioning: Literal["daily", "none"] = Field(
        "daily", description="`daily`: folders `dt=YYYY-MM-DD/` under uri; `none`: uri is one file or a flat folder."
    )
    event_time: Identifier | None = Field(
        None, description="Timestamp column that places each row in time; drives training windows and scoring intervals."
    )
    entity_key: list[Identifier] = Field(min_length=1, max_length=8, description="Columns that identify a row.")
    row_key: Literal["hash"] | None = Field(
        None,
        description="`hash`: the data has no id column. Ingest computes the single entity_key column (declare it in schema as "
        "`{type: string, nullable: false, unique: true}`; files must not carry it) from each row's own values: the first "
        "16 hex digits of SHA-1 over the row's declared columns except the target and the key, sorted by name, in a "
        "canonical text form (see \"Data the pipeline accepts\"); the n-th repeat of an identical row gets `-n` appended. "
        "The same row gets the same key at training and at scoring, so scoring files need no id either.",
    )
    timezone: str = Field(
        "UTC",
        min_length=1,
        max_length=64,
        description="IANA time zone (e.g. `Europe/Paris`) of timestamps written without a UTC offset: ingest localises naive "
        "event times (and other naive timestamp columns) with it; times with an offset are kept as written.",
    )
    score_uri: str | None = Field(
        None,
        description="Scoring input for sources without event_time, templated by the run date: `{ds}` (YYYY-MM-DD) "
        "or `{ds_nodash}`; for example `data/landing/listings/{ds}.csv`.",
    )
    csv: CsvOptions = Field(default_factory=CsvOptions, description="CSV reading options.")
    wait: Wait = Field(default_factory=Wait, description="Late data: how long scoring waits for the interval's input to land.")

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
        if self.row_key is not None and len(self.entity_key) != 1:
            raise ValueError(f"row_key: {self.row_key} computes one key column: entity_key must name exactly one (got {self.entity_key})")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA time zone such as UTC or Europe/Paris") from None
        return value

    @property
    def computed_key(self) -> str | None:
        """The entity key column ingest computes (source.row_key), absent from the files; None when the data has ids."""
        return self.entity_key[0] if self.row_key is not None else None

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
    max_rows: int | None = Field(
        None, ge=1000, le=10**10,
        description="Fit on at most this many training rows: a seeded sample, drawn per class in proportion for "
        "classification, when the training split is larger. Held-out rows stay whole. Bounds training time and memory "
        "on large windows; the sample size is logged to MLflow and shown in the report.",
    )

    @model_validator(mode="after")
    def _cap_above_floor(self) -> Training:
        if self.max_rows is not None and self.max_rows < self.min_rows:
            raise ValueError(f"max_rows ({self.max_rows}) is below min_rows ({self.min_rows}): no window could train")
        return self


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


class LeakGuard(StrictModel):
    """Before promotion: a feature that alone predicts the held-out labels almost perfectly is a suspected target leak."""

    enabled: bool = Field(True, description="Check every numeric, categorical and derived feature on the held-out rows.")
    threshold: float = Field(
        0.99, gt=0.5, le=1.0,
        description="Binary: a feature's own ROC AUC (max(auc, 1 - auc)) at or above this blocks promotion; regression: "
        "|correlation| with the label. Categorical features score by their per-category mean label, fitted on the training rows.",
    )
    acknowledged: list[Identifier] = Field(
        default_factory=list, max_length=MAX_COLUMNS,
        description="Features known to be safe although they predict the label this well: reported, never blocking.",
    )


class LabelGuard(StrictModel):
    """The new labels are suspect (inverted, broken) when the champion collapses on them or their prevalence jumps:
    no automatic promotion. With `promotion.approval: required` the version waits for a person with that evidence,
    otherwise it is refused; an alert goes out either way."""

    enabled: bool = Field(True, description="Compare the champion on the new held-out rows with its own recorded held-out metric.")
    metric: str | None = Field(None, description="The metric compared (one of evaluation.metrics); defaults to the first of them.")
    max_drop: float = Field(
        0.25, gt=0.0, le=1.0,
        description="Higher-is-better metrics: the champion scoring this much (absolute) below its recorded value is suspect; "
        "an AUC below 0.5 where it was at least 0.6 is suspect too.",
    )
    max_relative_increase: float = Field(
        1.0, gt=0.0, le=100.0, description="Lower-is-better metrics (rmse, log_loss, ...): the champion's error growing by more "
        "than this fraction of its recorded value is suspect (1.0 = doubled).",
    )
    max_prevalence_change: float = Field(
        0.25, gt=0.0, le=1.0, description="Binary: the window's positive rate moving more than this (absolute) from the "
        "champion's training prevalence (version tag `nightshift.label_prevalence`) is suspect.",
    )
    max_mean_shift_sd: float = Field(
        2.0, gt=0.0, le=100.0, description="Regression: the window's label mean moving more than this many standard deviations "
        "of the champion's training labels (tags `nightshift.label_mean`, `nightshift.label_std`) is suspect.",
    )


class Evaluation(StrictModel):
    """Held-out metrics and the gates a challenger must pass to become champion."""

    metrics: list[str] | None = Field(None, description="Metrics to compute; defaults depend on target.task.")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Decision threshold for binary labels.")
    gates: list[Gate] = Field(default_factory=list, max_length=MAX_GATES, description="All must pass for promotion.")
    slices: list[Identifier] = Field(default_factory=list, description="Columns whose groups get their own metrics.")
    min_slice_rows: int = Field(
        30, ge=1, le=10**9,
        description="Held-out rows a group needs before it can gate; smaller groups are reported, never gated. Fairness gates "
        "count the rate's denominator (positives for tpr_gap, negatives for fpr_gap, rows for positive_rate_gap).",
    )
    slice_gates: list[SliceGate] = Field(
        default_factory=list, max_length=MAX_GATES, description="Per-slice bounds, e.g. `{slice: region, metric: roc_auc, min: 0.6}`; all must pass."
    )
    fairness: list[FairnessGate] = Field(
        default_factory=list,
        max_length=MAX_GATES,
        description="Limits on gaps between groups of a sensitive attribute (binary tasks), e.g. "
        "`{attribute: region, metric: tpr_gap, max: 0.1}`; all must pass.",
    )
    not_comparable: Literal["fail", "pass"] = Field(
        "fail",
        description="What a gate vs the champion does when the champion as of this run's window end was fitted on rows later "
        "than this run's first held-out row (it has seen them, so the comparison means nothing): `fail` blocks promotion, "
        "`pass` lets the other gates decide. The reason says `not comparable` either way.",
    )
    plausible: dict[str, float] = Field(
        default_factory=dict,
        description="Plausibility bounds per metric, e.g. `{roc_auc: 0.995, log_loss: 0.01}`: a held-out value beyond one (above "
        "it for higher-is-better metrics, below it for the others) is a suspected target leak and blocks promotion.",
    )
    leak_guard: LeakGuard = Field(default_factory=LeakGuard, description="Single features that predict the label too well.")
    label_guard: LabelGuard = Field(default_factory=LabelGuard, description="Labels that look inverted or broken.")
    min_class_rows: int = Field(
        2, ge=1, le=10**6,
        description="Classification: each class needs at least this many rows in the training and in the held-out split, "
        "or the window fails before training (naming the window and the counts).",
    )


class LiveGate(StrictModel):
    """Promotion on live evidence: a challenger that passed every offline gate is shadow-scored next to the champion
    (`scoring.shadow: [challenger]`) and becomes champion only when its realized metric on the same live rows beat the
    champion's often enough. Only dates after the challenger's training window count: it has seen the labels before."""

    min_days: int = Field(
        7, ge=1, le=365, description="Dates with realized values for both versions, after the challenger's training window, "
        "before `champion` may move."
    )
    min_delta_vs_champion: float = Field(
        0.0, ge=-1e6, le=1e6, description="Mean daily improvement of the challenger over the champion on those dates "
        "(in the metric's better direction) required to promote it."
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
    live: LiveGate | None = Field(
        None, description="Also require live evidence, e.g. `{min_days: 7, min_delta_vs_champion: 0.0}`: a passing version "
        "gets `challenger`, is shadow-scored, and `<name>_score`'s `promote_live` task moves `champion` once the realized "
        "deciding metric (monitoring.performance.metric) on the same live rows clears the gate. Unset = offline gates decide.",
    )


class Scoring(StrictModel):
    """Where and how scores are written."""

    output_table: str = Field(pattern=TABLE_NAME, description="Warehouse table, stored upper-case.")
    shards: int = Field(4, ge=1, le=64, description="Parallel scoring tasks (dynamic task mapping).")
    batch_rows: int = Field(65_536, ge=1_000, le=5_000_000, description="Rows per streamed record batch.")
    threshold: float | None = Field(None, gt=0.0, lt=1.0, description="Adds a LABEL column for binary tasks.")
    min_rows: int = Field(0, ge=0, le=10**9, description="Fewer input rows fails the run (0 allows empty days).")
    shadow: list[Annotated[str, Field(pattern=MODEL_REFERENCE)]] = Field(
        default_factory=list, max_length=5,
        description="Registry aliases or version numbers (e.g. `challenger`) scored in the same run on the same rows, pinned "
        "like the champion, into `<output_table>_SHADOW`; the main table never sees them. A reference that resolves to no "
        "version (no challenger yet) is skipped with a warning.",
    )
    allow_empty_days: bool = Field(
        False, description="Let a run replace a day that already holds published rows with zero rows (off: such a run fails "
        "and the day's rows stay; a day that never had rows may always be published empty)."
    )
    warehouse_conn_id: str | None = Field(
        None, pattern=CONN_ID, description="Airflow connection of the warehouse; unset = embedded DuckDB."
    )
    pool: str = Field(
        "nightshift_warehouse", pattern=CONN_ID, description="Airflow pool that limits concurrent warehouse writes (publish)."
    )
    max_active_runs: int = Field(
        2, ge=1, le=64, description="Scoring runs of this pipeline at once; a catch-up queues the rest instead of starting all."
    )

    @field_validator("output_table")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("warehouse_conn_id", mode="before")
    @classmethod
    def _empty_is_embedded(cls, value: str | None) -> str | None:
        """`${NIGHTSHIFT_WAREHOUSE_CONN_ID:-}` left empty means the embedded warehouse."""
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
        "partitions have large PSI by chance (about (bins - 1) / rows), and this keeps them from crying wolf. The same "
        "probability bounds chance for null-rate changes (binomial).",
    )
    null_warn: float = Field(
        0.2, gt=0.0, le=1.0,
        description="A column's null rate moving this far from the reference's (absolute: 0.2 = 20 points, either way) warns; "
        "a column entirely null on a non-empty date warns at least.",
    )
    null_fail: float = Field(0.5, gt=0.0, le=1.0, description="A null-rate move this far (absolute) fails.")
    constant_share: float = Field(
        0.95, gt=0.5, le=1.0,
        description="A reference partition (one UTC date of `source.event_time`) is constant in a column when one value holds "
        "this share of its rows. A column constant in most reference partitions, far more often than chance explains "
        "(calendar columns: month, weekday, a working-day flag), is judged on its value per date (is it one the reference "
        "holds? is the date as constant as the reference's were?), not by PSI against the whole multi-date reference, "
        "which such a column always fails.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Drift:
        if self.warn > self.fail:
            raise ValueError(f"warn ({self.warn}) must not exceed fail ({self.fail})")
        if self.null_warn > self.null_fail:
            raise ValueError(f"null_warn ({self.null_warn}) must not exceed null_fail ({self.null_fail})")
        return self


class ColumnMonitoring(StrictModel):
    """Monitoring settings of one input column; unset fields fall back to `monitoring.drift`."""

    skip: bool = Field(False, description="Leave the column out: no statistics, one row saying it was skipped.")
    mode: Literal["gate", "report"] | None = Field(
        None,
        description="`gate`: the column's status counts in the date's verdict; `report`: computed and written, never part of "
        "the verdict or the alerts. Unset: gate, except that a column constant within partitions whose value on a date "
        "the reference never held is reported, not gated (a new month is not drift).",
    )
    compare: Literal["auto", "distribution", "value"] = Field(
        "auto",
        description="`distribution`: PSI against the whole reference; `value`: judge each date's value (for columns constant "
        "within a partition); `auto`: `value` when the reference shows the column constant within partitions.",
    )
    warn: float | None = Field(None, ge=0.0, le=10.0, description="PSI warning threshold for this column.")
    fail: float | None = Field(None, ge=0.0, le=10.0, description="PSI failure threshold for this column.")
    null_warn: float | None = Field(None, gt=0.0, le=1.0, description="Null-rate move (absolute) that warns for this column.")
    null_fail: float | None = Field(None, gt=0.0, le=1.0, description="Null-rate move (absolute) that fails for this column.")

    @model_validator(mode="after")
    def _ordered(self) -> ColumnMonitoring:
        for low, high in (("warn", "fail"), ("null_warn", "null_fail")):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{low} ({a}) must not exceed {high} ({b})")
        return self

    def thresholds(self, drift: Drift) -> dict[str, float]:
        """PSI and null-rate thresholds with the pipeline's defaults filled in (an inverted mix is an error)."""
        out = {k: getattr(drift, k) if getattr(self, k) is None else getattr(self, k) for k in ("warn", "fail", "null_warn", "null_fail")}
        if out["warn"] > out["fail"] or out["null_warn"] > out["null_fail"]:
            raise ValueError(f"monitoring.columns: thresholds out of order after defaults: {out}")
        return out


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


class Labels(StrictModel):
    """Labels kept apart from the landing zone: files with the entity key columns and the target column."""

    uri: str = Field(description="A file, or a flat folder of files, local (inside an allowed root) or `s3://[conn_id@]bucket/prefix`.")
    format: Literal["parquet", "csv"] = Field("parquet", description="File format.")

    @field_validator("uri")
    @classmethod
    def _safe_uri(cls, value: str) -> str:
        return check_uri(value)


class Performance(StrictModel):
    """Model performance per scored partition: estimated from the scores at once (CBPE, binary tasks), realized when the
    labels have matured (`training.label_delay_days` after the partition), both with bootstrap intervals."""

    enabled: bool = Field(True, description="Add the `performance` task to `<name>_score`.")
    metric: str | None = Field(
        None, description="The metric that decides `degraded` (one of evaluation.metrics); defaults to the first of them."
    )
    max_drop: float = Field(
        0.05, ge=0.0, le=1e6,
        description="A realized value worse than the version's held-out value (MLflow `test_<metric>`) by more than this is "
        "`degraded` and alerts.",
    )
    retrain_on_degradation: bool = Field(
        False, description="A degraded realized value emits the Asset `nightshift://<name>/degradation`, on which `<name>_train` is "
        "also scheduled.",
    )
    resamples: int = Field(200, ge=20, le=10_000, description="Bootstrap resamples (seeded by training.seed) for each interval.")
    confidence: float = Field(0.9, gt=0.5, lt=1.0, description="Coverage of the LOWER..UPPER interval.")
    min_rows: int = Field(30, ge=1, le=10**9, description="Labelled rows a date needs before its realized value can be `degraded`.")
    max_ece: float = Field(
        0.05, gt=0.0, le=1.0,
        description="Expected calibration error on the held-out rows above which the training report says estimated "
        "performance (CBPE, which takes each score as the probability of the positive class) cannot be trusted.",
    )
    labels: Labels | None = Field(
        None, description="Labels from separate files keyed by source.entity_key, e.g. `{uri: data/labels/credit, format: csv}`; "
        "unset = the target column of the source rows of the evaluated date.",
    )


class Monitoring(StrictModel):
    """Checks run after scoring."""

    drift: Drift = Field(default_factory=Drift, description="Drift thresholds.")
    columns: dict[Identifier, ColumnMonitoring] = Field(
        default_factory=dict, max_length=MAX_COLUMNS,
        description="Per-column settings by input column name, e.g. `{mnth: {skip: true}, income: {warn: 0.2, fail: 0.5}, "
        "weekday: {mode: report}}`. The date's verdict comes from gated columns only, and `warn` never fails a run.",
    )
    block_publish_on: Literal["fail"] | None = Field(None, description="`fail`: drift failure stops publishing.")
    retrain_on_drift: bool = Field(
        False, description="A drift failure emits the Asset `nightshift://<name>/drift`, on which `<name>_train` is also scheduled."
    )
    notify: Notify = Field(default_factory=Notify, description="Alerts on drift warnings and failures.")
    performance: Performance = Field(default_factory=Performance, description="Estimated and realized model performance.")


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
    columns: dict[Identifier, Column] = Field(
        alias="schema", min_length=1, max_length=MAX_COLUMNS, description="Declared input columns."
    )
    expectations: list[Expectation] = Field(default_factory=list, max_length=MAX_EXPECTATIONS, description="Extra GX expectations.")
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


S3_URI = re.compile(r"^s3://(?:[A-Za-z0-9_.-]{1,250}@)?[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:/[^@]*)?$")


def check_uri(uri: str) -> str:
    """Allow local paths, `s3://[conn_id@]bucket/prefix` only, and no `..` segments (path traversal).

    Whether a local path lies inside an allowed root depends on the environment: the loader checks it."""
    if "\x00" in uri or len(uri) > 1024:
        raise ValueError("uri contains a NUL byte or is longer than 1024 characters")
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme not in ("", "s3"):
        raise ValueError(f"unsupported uri scheme '{scheme}://': use a local path or s3://[conn_id@]bucket/prefix")
    if scheme == "s3" and not S3_URI.match(uri):
        raise ValueError("malformed S3 uri: expected s3://[conn_id@]bucket/prefix")
    if any(part == ".." for part in re.split(r"[/\\]", uri)):
        raise ValueError("'..' path segments are not allowed in uris")
    return uri


def json_schema() -> dict:
    """JSON Schema of the spec, for editors (yaml-language-server) and docs."""
    schema = Pipeline.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Nightshift pipeline spec"
    return schema
