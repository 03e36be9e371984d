"""Draft a spec from a data file: `nightshift new NAME --from FILE --target COL`.

Types, categories and ranges are inferred from the file so a newcomer starts from a spec that
validates and trains; every guess is written as a plain YAML value to review, not hidden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_CATEGORIES = 30


def read_sample(path: Path):
    import pandas as pd

    if path.suffix.lower() == ".parquet" or path.is_dir():
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _is_timestamp(series) -> bool:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
        return False
    sample = series.dropna().astype(str).head(200)
    if sample.empty or not sample.str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return False
    return pd.to_datetime(sample, errors="coerce", format="ISO8601").notna().all()


def infer_column(series) -> dict[str, Any]:
    """Type, nullability, uniqueness, a non-negative floor and category values, from the data."""
    import pandas as pd

    column: dict[str, Any] = {}
    if pd.api.types.is_bool_dtype(series):
        column["type"] = "boolean"
    elif pd.api.types.is_integer_dtype(series):
        column["type"] = "integer"
    elif pd.api.types.is_numeric_dtype(series):
        column["type"] = "float"
    elif _is_timestamp(series):
        column["type"] = "timestamp"
    elif series.nunique(dropna=True) <= MAX_CATEGORIES:
        column["type"] = "category"
        column["values"] = sorted(map(str, series.dropna().unique()))
    else:
        column["type"] = "string"
    column["nullable"] = bool(series.isna().any())
    if column["type"] in ("integer", "float") and series.notna().any() and series.min() >= 0:
        column["min"] = 0
    return column


def _task(target) -> str:
    import pandas as pd

    distinct = target.nunique(dropna=True)
    if distinct == 2:
        return "binary"
    if pd.api.types.is_numeric_dtype(target) and distinct > MAX_CATEGORIES:
        return "regression"
    return "multiclass"


def _entity_key(frame, target: str, key: str | None) -> str:
    if key:
        return key
    candidates = [c for c in frame.columns if c != target and frame[c].is_unique and frame[c].notna().all()]
    named = [c for c in candidates if c.lower() == "id" or c.lower().endswith("_id")]
    if not (named or candidates):
        raise ValueError("no column with unique, non-null values to use as the entity key: pass --key COLUMN")
    return (named or candidates)[0]


def draft_spec(name: str, source: Path, target: str, key: str | None = None, source_uri: str | None = None) -> dict:
    """A spec dictionary for the file, ready to dump as YAML."""
    frame = read_sample(source)
    if target not in frame.columns:
        raise ValueError(f"{source}: column '{target}' not found; columns are {list(frame.columns)}")
    schema = {c: infer_column(frame[c]) for c in frame.columns}
    entity_key = _entity_key(frame, target, key)
    schema[entity_key].update(nullable=False, unique=True)
    if schema[entity_key]["type"] == "category":
        schema[entity_key] = {"type": "string", "nullable": False, "unique": True}
    task = _task(frame[target])
    schema[target]["nullable"] = False
    event_time = next((c for c, s in schema.items() if s["type"] == "timestamp" and c not in (target, entity_key)), None)
    features = {
        "numeric": {"columns": [c for c, s in schema.items() if s["type"] in ("integer", "float") and c not in (target, entity_key)]},
        "categorical": {"columns": [c for c, s in schema.items() if s["type"] in ("category", "boolean") and c not in (target, entity_key)]},
    }
    if event_time:
        features["datetime"] = {"columns": [event_time], "parts": ["month", "dayofweek"]}
    metrics = {"binary": ["roc_auc", "pr_auc", "log_loss"], "multiclass": ["accuracy", "f1_macro", "log_loss"],
               "regression": ["rmse", "mae", "r2"]}[task]
    positive = sorted(frame[target].dropna().unique())[-1] if task == "binary" else None
    spec: dict[str, Any] = {
        "name": name,
        "description": f"Predicts {target} for each {entity_key} (drafted from {source.name}; describe it in a sentence).",
        "owner": "nightshift",
        "schedule": {"train": "0 3 * * 0", "score": "0 2 * * *", "start_date": "2026-01-01"},
        "source": {
            "uri": source_uri or str(source),
            "format": "parquet" if source.suffix.lower() == ".parquet" else "csv",
            "partitioning": "none",
            "entity_key": [entity_key],
            **({"event_time": event_time} if event_time else {"score_uri": f"data/landing/{name}/{{ds}}.csv"}),
        },
        "target": {"column": target, "task": task, **({"positive_class": _plain(positive)} if positive is not None else {})},
        "schema": schema,
        "features": {k: v for k, v in features.items() if v["columns"]},
        "training": {"split": {"method": "time" if event_time else "random", "test_fraction": 0.2},
                     "min_rows": max(20, min(100, len(frame) // 2))},
        "model": {"flavor": "xgboost", "params": {"n_estimators": 200, "max_depth": 4, "learning_rate": 0.05}},
        "evaluation": {"metrics": metrics, "gates": [{"metric": metrics[0], "min_delta_vs_champion": 0.0}]},
        "scoring": {"output_table": f"{name.upper()}_SCORES", "shards": 2},
    }
    return spec


def _plain(value: Any) -> Any:
    """numpy scalars as plain Python values for YAML."""
    return value.item() if hasattr(value, "item") else value


def to_yaml(spec: dict) -> str:
    header = "# yaml-language-server: $schema=../pipeline.schema.json\n# Drafted by `nightshift new`: review every value.\n"
    return header + yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=120)
