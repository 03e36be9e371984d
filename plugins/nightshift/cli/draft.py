"""Draft a spec from a data file: `nightshift new NAME --from FILE --target COL`.

Types, categories and ranges are inferred from the file so a newcomer starts from a spec that
validates and trains; every guess is written as a plain YAML value to review, not hidden, and the
guesses taken from the data's values carry a `# drafted from data: review` comment.

What the draft respects:
- A feature never becomes the entity key. The key is a column named like an id (`id`, `*_id`,
  `*Id`, `uuid`, `key`) whose values are unique and never null, or the column given with `--key`
  (checked: it exists and is unique). Without one, the spec declares a row key computed from each
  row's own values (`source.row_key: hash`, see `nightshift.steps.ingest.add_row_key`), the same at
  training and at scoring, so neither file needs an id.
- Integer columns with few distinct values, or named like codes (`store_id`, `zip_code`, `season`,
  `hour`...), are categories with their values; other numeric columns get bounds from the data,
  widened by a margin.
- The gates start from a floor above a trivial baseline measured on the file (prevalence for
  PR-AUC, 0.5 for ROC AUC, the majority class for accuracy, the mean predictor for RMSE and R²),
  plus a no-regression gate against the champion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

MAX_CATEGORIES = 30  # text columns with at most this many distinct values are categories
MAX_INTEGER_LEVELS = 24  # integer columns with at most this many distinct values are codes: categories
MAX_CODE_VALUES = 200  # integer columns named like codes are categories up to this many values (more: not a feature)
# Drafted min/max: the data's range widened by this share of it on each side. Wide on purpose: a bound is there to
# catch a unit or encoding error (10x, a sign flip), not ordinary new values; 10% rejected 3 of 114 real new rows.
BOUND_MARGIN = 1.0
GATE_MARGIN = 0.10  # a floor lies this share of the way from the trivial baseline to a perfect score
ROW_KEY = "row_key"  # name of the computed key column (ROW_KEY_FALLBACK when the file already has one)
ROW_KEY_FALLBACK = "nightshift_row_key"
REVIEW = "drafted from data: review"

_ID_NAME = re.compile(r"^(id|uuid|key)$|_(id|uuid|key)$|[a-z0-9]Id$|[a-z0-9]ID$")
_CODE_NAME = re.compile(
    r"(^|_)(id|code|codes|zip|zipcode|postcode|postal|season|hour|month|weekday|dow|quarter|store|station|"
    r"region|state|country|category|type|class)($|_)|code",
)


class Draft(dict):
    """The spec dictionary, plus the comments to_yaml writes next to values and the lines shown on the terminal."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.comments: dict[str, str] = {}  # "schema.income", "source.row_key", "evaluation.gates.0" -> comment
        self.notes: list[str] = []


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


def _is_naive_time(series) -> bool:
    """True when timestamps carry no UTC offset (ingest then localises them with source.timezone)."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        return not isinstance(series.dtype, pd.DatetimeTZDtype)
    try:
        parsed = pd.to_datetime(series.dropna().astype(str).head(200), format="ISO8601")
    except (ValueError, TypeError):  # mixed offsets, or some with and some without: ingest reports it
        return False
    return getattr(parsed.dt, "tz", None) is None


def is_id_name(name: str) -> bool:
    """`id`, `customer_id`, `customerId`, `uuid`, `order_key`: named like an identifier."""
    return bool(_ID_NAME.search(name) or _ID_NAME.search(name.lower()))


def is_code_name(name: str) -> bool:
    """`store_id`, `zip_code`, `season`, `hour`, `product_type`: integers that name things rather than count them."""
    return bool(_CODE_NAME.search(name.lower()))


def _whole(series) -> bool:
    """Numeric values that are all whole numbers (an integer column read with nulls is float64)."""
    import numpy as np

    values = series.dropna().to_numpy(dtype="float64")
    return values.size > 0 and bool(np.all(np.isfinite(values) & (values % 1 == 0)))


def infer_column(series, name: str = "") -> dict[str, Any]:
    """Type, nullability, category values and numeric bounds, from the data.

    Integer columns (also integers read as floats because of nulls) with at most MAX_INTEGER_LEVELS
    distinct values, or named like codes with at most MAX_CODE_VALUES, become categories holding
    their integer values. Other numeric columns get `min`/`max` from the data widened by
    BOUND_MARGIN of the range on each side; non-negative columns keep 0 as their lower bound.
    """
    import pandas as pd

    column: dict[str, Any] = {}
    distinct = series.nunique(dropna=True)
    integral = pd.api.types.is_integer_dtype(series) or (
        pd.api.types.is_float_dtype(series) and series.isna().any() and _whole(series)
    )
    if pd.api.types.is_bool_dtype(series):
        column["type"] = "boolean"
    elif integral and distinct > 0 and (distinct <= MAX_INTEGER_LEVELS or (is_code_name(name) and distinct <= MAX_CODE_VALUES)):
        column["type"] = "category"
        column["values"] = sorted(int(v) for v in series.dropna().unique())
    elif integral:
        column["type"] = "integer"
    elif pd.api.types.is_numeric_dtype(series):
        column["type"] = "float"
    elif _is_timestamp(series):
        column["type"] = "timestamp"
    elif distinct <= MAX_CATEGORIES:
        column["type"] = "category"
        column["values"] = sorted(map(str, series.dropna().unique()))
    else:
        column["type"] = "string"
    column["nullable"] = bool(series.isna().any())
    if column["type"] in ("integer", "float") and series.notna().any():
        column.update(drafted_bounds(series, integer=column["type"] == "integer"))
    return column


def drafted_bounds(series, *, integer: bool, margin: float = BOUND_MARGIN) -> dict[str, float | int]:
    """`{min, max}`: the observed range widened by `margin` of it on each side, rounded outwards
    (integers to whole numbers, floats to 4 significant digits of the range); 0 stays the lower
    bound of a column without negative values."""
    low, high = float(series.min()), float(series.max())
    span = high - low or abs(high) or 1.0
    lower, upper = low - margin * span, high + margin * span
    step = 1.0 if integer else 10.0 ** (math.floor(math.log10(span)) - 3)
    digits = max(0, -math.floor(math.log10(step)))
    bounds: dict[str, float | int] = {
        "min": 0 if low >= 0 else _rounded(math.floor(lower / step) * step, digits, integer),
        "max": _rounded(math.ceil(upper / step) * step, digits, integer),
    }
    return bounds


def _rounded(value: float, digits: int, integer: bool) -> float | int:
    return int(round(value)) if integer else round(value, digits)


def _task(target) -> str:
    import pandas as pd

    distinct = target.nunique(dropna=True)
    if distinct == 2:
        return "binary"
    if pd.api.types.is_numeric_dtype(target) and distinct > MAX_CATEGORIES:
        return "regression"
    return "multiclass"


def _entity_key(frame, target: str, key: str | None) -> str | None:
    """The entity key column, or None when the spec should use a computed row key.

    An explicit `--key` must exist, differ from the target, have no nulls and be unique. Otherwise
    only a column named like an id with unique, non-null values qualifies: a unique float such as
    `income` is a feature, never a key."""
    columns = list(frame.columns)
    if key:
        if key not in columns:
            raise ValueError(f"--key: column '{key}' is not in the file; columns are {columns}")
        if key == target:
            raise ValueError(f"--key: '{key}' is the target; pick another column, or leave out --key to use a row key")
        nulls = int(frame[key].isna().sum())
        if nulls:
            raise ValueError(f"--key: column '{key}' has {nulls} null value(s); an entity key needs one on every row")
        if not frame[key].is_unique:
            counts = frame[key].value_counts()
            repeated = counts[counts > 1]
            examples = ", ".join(f"{_plain(v)!r} ({int(n)} rows)" for v, n in repeated.head(5).items())
            raise ValueError(f"--key: column '{key}' is not unique: {len(repeated)} value(s) repeat, e.g. {examples}; "
                             "pick a unique column, or leave out --key to use a row key computed from each row")
        return key
    named = [c for c in columns if c != target and is_id_name(str(c)) and frame[c].notna().all() and frame[c].is_unique]
    return named[0] if named else None


def _row_key_name(frame) -> str:
    return ROW_KEY if ROW_KEY not in frame.columns else ROW_KEY_FALLBACK


# --- gates ------------------------------------------------------------------------------------

def baselines(task: str, target, positive: Any = None) -> list[dict[str, Any]]:
    """Trivial baselines measured on the target column, each with the floor the draft gates on.

    `{metric, baseline, bound: "min"|"max", floor, how}`; the floor lies GATE_MARGIN of the way from
    the baseline to a perfect score (1 for ROC AUC, PR-AUC, accuracy and R², 0 for RMSE)."""
    import numpy as np

    values = target.dropna()
    found = []

    def add(metric: str, baseline: float, perfect: float, how: str) -> None:
        floor = baseline + GATE_MARGIN * (perfect - baseline)
        bound = "min" if perfect > baseline else "max"
        found.append({"metric": metric, "baseline": baseline, "bound": bound, "floor": _gate_round(floor, bound), "how": how})

    if task == "binary":
        prevalence = float(np.mean(values.to_numpy() == positive))
        add("pr_auc", prevalence, 1.0, f"prevalence of {target.name}={_plain(positive)!r} in the file (a random score's PR-AUC)")
        add("roc_auc", 0.5, 1.0, "a random score's ROC AUC")
    elif task == "multiclass":
        majority = float(values.value_counts(normalize=True).iloc[0])
        add("accuracy", majority, 1.0, f"share of the most frequent class {_plain(values.value_counts().index[0])!r}")
    else:
        std = float(np.std(values.to_numpy(dtype="float64")))
        add("rmse", std, 0.0, f"standard deviation of {target.name}: the RMSE of always predicting the mean")
        add("r2", 0.0, 1.0, "R² of always predicting the mean")
    return found


def _gate_round(value: float, bound: str) -> float:
    """Round a floor to 4 significant digits, towards the stricter side."""
    if value == 0:
        return 0.0
    digits = 3 - math.floor(math.log10(abs(value)))
    scale = 10.0 ** digits
    rounded = (math.ceil if bound == "min" else math.floor)(value * scale - 1e-9 if bound == "min" else value * scale + 1e-9) / scale
    return round(rounded, max(digits, 0))


def drafted_gates(task: str, target, positive: Any, metrics: list[str]) -> tuple[list[dict], list[str], list[str]]:
    """(gates, comment per gate, terminal lines): floors above the baselines, then no regression on metrics[0]."""
    gates, comments, lines = [], [], []
    for found in baselines(task, target, positive):
        if found["metric"] not in metrics:
            continue
        sign = ">=" if found["bound"] == "min" else "<="
        gates.append({"metric": found["metric"], found["bound"]: found["floor"]})
        comments.append(f"baseline {found['baseline']:.4g} = {found['how']}; {REVIEW}")
        lines.append(f"  baseline {found['metric']} {found['baseline']:.4f} ({found['how']}): gate {found['metric']} {sign} {found['floor']}")
    gates.append({"metric": metrics[0], "min_delta_vs_champion": 0.0})
    comments.append("no regression: at least as good as the champion on the same held-out rows")
    return gates, comments, lines


# --- the spec ---------------------------------------------------------------------------------

def draft_spec(name: str, source: Path, target: str, key: str | None = None, source_uri: str | None = None,
               echo: Callable[[str], None] | None = print) -> Draft:
    """A spec dictionary for the file, ready to dump as YAML with `to_yaml`; `echo` receives what was
    measured and guessed (baselines, row key, time zone), one line at a time."""
    source = Path(source)
    frame = read_sample(source)
    if target not in frame.columns:
        raise ValueError(f"{source}: column '{target}' not found; columns are {list(frame.columns)}")
    entity_key = _entity_key(frame, target, key)
    spec = Draft()
    schema = {c: infer_column(frame[c], str(c)) for c in frame.columns}
    if entity_key is not None:
        schema[entity_key] = {"type": "integer" if frame[entity_key].dtype.kind in "iu" else "string",
                              "nullable": False, "unique": True}
        keys = [entity_key]
    else:
        row_key = _row_key_name(frame)
        schema = {row_key: {"type": "string", "nullable": False, "unique": True}, **schema}
        keys = [row_key]
        spec.comments[f"schema.{row_key}"] = "computed at ingest (source.row_key: hash); not in the file"
        spec.comments["source.row_key"] = (f"no id column: {row_key} = hash of each row's declared columns except "
                                           f"the target, at training and at scoring")
        spec.notes.append(f"  no unique id column (named like an id): key {row_key} is computed from each row's values "
                          f"(source.row_key: hash), the same at training and scoring; pass --key COLUMN to use a column")
    task = _task(frame[target])
    schema[target] = _target_column(frame[target])
    excluded = {target, *keys}
    event_time = next((c for c, s in schema.items() if s["type"] == "timestamp" and c not in excluded), None)
    dropped = [c for c, s in schema.items() if c not in excluded and s["type"] == "integer" and is_code_name(str(c))]
    for c, s in schema.items():
        if c in excluded:
            continue
        if "max" in s:
            spec.comments[f"schema.{c}"] = REVIEW
        elif s["type"] == "category" and s["values"] and isinstance(s["values"][0], int):
            spec.comments[f"schema.{c}"] = f"integer codes as categories; {REVIEW}"
    for c in dropped:
        spec.comments[f"schema.{c}"] = f"integer codes with more than {MAX_CODE_VALUES} values: not a feature; {REVIEW}"
    features = {
        "numeric": {"columns": [c for c, s in schema.items() if s["type"] in ("integer", "float") and c not in excluded
                                and c not in dropped]},
        "categorical": {"columns": [c for c, s in schema.items() if s["type"] in ("category", "boolean") and c not in excluded]},
    }
    if event_time:
        features["datetime"] = {"columns": [event_time], "parts": ["month", "dayofweek"]}
    metrics = {"binary": ["roc_auc", "pr_auc", "log_loss"], "multiclass": ["accuracy", "f1_macro", "log_loss"],
               "regression": ["rmse", "mae", "r2"]}[task]
    positive = sorted(frame[target].dropna().unique())[-1] if task == "binary" else None
    gates, gate_comments, gate_lines = drafted_gates(task, frame[target], positive, metrics)
    spec.comments.update({f"evaluation.gates.{i}": text for i, text in enumerate(gate_comments)})
    spec.notes += gate_lines
    source_block: dict[str, Any] = {
        "uri": source_uri or str(source),
        "format": "parquet" if source.suffix.lower() == ".parquet" else "csv",
        "partitioning": "none",
        "entity_key": keys,
    }
    if entity_key is None:
        source_block["row_key"] = "hash"
    if event_time:
        source_block["event_time"] = event_time
        if _is_naive_time(frame[event_time]):
            source_block["timezone"] = "UTC"
            spec.comments["source.timezone"] = f"{event_time} has no UTC offset: its times are read in this zone; review"
            spec.notes.append(f"  {event_time} has no UTC offset: read as source.timezone UTC (change it if they are local times)")
    else:
        source_block["score_uri"] = f"data/landing/{name}/{{ds}}.csv"
    subject = f"each {entity_key}" if entity_key else "each row"
    spec.update({
        "name": name,
        "description": f"Predicts {target} for {subject} (drafted from {source.name}; describe it in a sentence).",
        "owner": "nightshift",
        "schedule": {"train": "0 3 * * 0", "score": "0 2 * * *", "start_date": "2026-01-01"},
        "source": source_block,
        "target": {"column": target, "task": task, **({"positive_class": _plain(positive)} if positive is not None else {})},
        "schema": schema,
        "features": {**{k: v for k, v in features.items() if v["columns"]}, **({"drop": dropped} if dropped else {})},
        "training": {"split": {"method": "time" if event_time else "random", "test_fraction": 0.2},
                     "min_rows": max(20, min(100, len(frame) // 2))},
        "model": {"flavor": "xgboost", "params": {"n_estimators": 200, "max_depth": 4, "learning_rate": 0.05}},
        "evaluation": {"metrics": metrics, "gates": gates},
        "scoring": {"output_table": f"{name.upper()}_SCORES", "shards": 2},
    })
    if echo is not None:
        for line in [f"drafted {name} from {source} ({len(frame)} rows):", *spec.notes]:
            echo(line)
    return spec


def _target_column(series) -> dict[str, Any]:
    """The label as declared: never null; numbers keep their numeric type (a lower bound of 0 when never
    negative, no upper bound), text labels their values."""
    import pandas as pd

    column = infer_column(series)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        column = {"type": "integer" if column["type"] in ("integer", "category") else "float",
                  **({"min": 0} if series.notna().any() and series.min() >= 0 else {})}
    column.pop("max", None)
    return {**column, "nullable": False}


def _plain(value: Any) -> Any:
    """numpy scalars as plain Python values for YAML."""
    return value.item() if hasattr(value, "item") else value


def to_yaml(spec: dict) -> str:
    header = "# yaml-language-server: $schema=../pipeline.schema.json\n# Drafted by `nightshift new`: review every value.\n"
    text = yaml.safe_dump(dict(spec), sort_keys=False, default_flow_style=None, width=120)
    return header + annotate(text, getattr(spec, "comments", {}))


def annotate(text: str, comments: dict[str, str]) -> str:
    """Append `# comment` to the last line of the YAML entries named `top.key` or `top.key.N` (N-th list item
    under `top.key`), as safe_dump writes them (two-space indent, flow-style leaves, wrapped lines indented deeper)."""
    if not comments:
        return text
    lines = text.splitlines()
    ends: dict[str, int] = {}
    top = second = current = None
    item = -1
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip(" "))
        stripped = line.strip()
        if not stripped:
            continue
        if indent == 0 and not stripped.startswith("- "):
            top, second, item = stripped.split(":", 1)[0], None, -1
            current = None
        elif indent == 2 and stripped.startswith("- ") and second is not None:
            item += 1
            current = f"{top}.{second}.{item}"
        elif indent == 2:
            second, item = stripped.split(":", 1)[0], -1
            current = f"{top}.{second}"
        if current is not None:
            ends[current] = i  # continuation lines (deeper indent) move the entry's end down
    for path, comment in comments.items():
        if path in ends:
            lines[ends[path]] += f"  # {comment}"
    return "\n".join(lines) + "\n"
