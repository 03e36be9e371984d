"""Generate `docs/spec.md`, the spec reference, from the pydantic models themselves.

The models are the single source of truth; a test fails when the committed reference is stale.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from nightshift.spec import Pipeline, loader
from nightshift.spec.model import MAX_COLUMNS, MAX_EXPECTATIONS, MAX_GATES


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}" if args else "map"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()
        return "see section" if isinstance(value, BaseModel) else f"`{value!r}`"
    return "" if field.default is PydanticUndefined else f"`{field.default!r}`"


def _models(model: type[BaseModel], seen: list[type[BaseModel]]) -> list[type[BaseModel]]:
    """The model and every model its fields use, in reading order."""
    if model in seen:
        return seen
    seen.append(model)
    for field in model.model_fields.values():
        for candidate in _nested(field.annotation):
            _models(candidate, seen)
    return seen


def _nested(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested(arg)]


def _rules() -> list[str]:
    """The loader's rules, from its own constants."""
    fields = ", ".join(f"`{f}`" for f in loader.SUBSTITUTABLE_FIELDS)
    return [
        "## Loading rules",
        "",
        f"- **Environment substitution**: `${{VAR}}` or `${{VAR:-default}}`, only in the per-environment fields {fields}, "
        f"and only for variables named `{loader.ENV_PREFIX}*` or listed in `{loader.ENV_ALLOW_SETTING}` (comma-separated, "
        "e.g. `CREDIT_URI,OTHER`). A reference anywhere else (description, intended_use, tags, owner, notifier "
        "messages, ...) or to another variable is an error naming the field and the variable, never its value. An unset "
        "variable without a default is an error.",
        "- **Allowed roots**: a local `source.uri` or `source.score_uri` (relative to the project root) must lie inside the "
        "project's `data/` or `.local/`, the local state folder (`NIGHTSHIFT_LOCAL_DIR`), a local `NIGHTSHIFT_ARTIFACTS`, "
        "or a folder of `NIGHTSHIFT_ALLOWED_ROOTS` (separated by `os.pathsep`). `..` segments and schemes other than a "
        "local path and `s3://[conn_id@]bucket/prefix` (`file://`, `http://`, ...) are refused at load; a symlink that "
        "leaves the roots is refused when the file is read.",
        f"- **Limits**, checked before the document is built: at most {loader.MAX_SPEC_BYTES:,} bytes, "
        f"{loader.MAX_NESTING} levels of nesting, {loader.MAX_SPEC_VALUES:,} values after YAML aliases, "
        f"{MAX_COLUMNS:,} columns, {MAX_EXPECTATIONS:,} expectations and {MAX_GATES} gates (gates, slice_gates and "
        "fairness together).",
        "- **Resolved at load**, without importing anything heavy: cron strings (croniter), the estimator's and the "
        "notifier's module exists and defines the class, every expectation is exported by the installed Great "
        "Expectations. `nightshift validate --deep` also imports the estimator (a scikit-learn classifier or regressor "
        "matching `target.task` that accepts `model.params`) and builds each expectation with its kwargs.",
        "- **Unique names**: two files with the same `name` are both invalid; each error names the other file. A "
        f"registered model belongs to the spec file in its `{loader.REGISTRY_OWNER_TAG}` tag.",
        "",
    ]


def _data_rules() -> list[str]:
    """What the data must look like: what ingest (steps/ingest.py) and validation (steps/validate.py) accept."""
    return [
        "## Data the pipeline accepts",
        "",
        "Ingest reads the files (or the Snowflake rows) and refuses, naming the file and the reason, anything it cannot read "
        "as declared; validation (Great Expectations) then checks every declared rule and lists every failure.",
        "",
        "| logical type | accepted column dtypes | notes |",
        "|---|---|---|",
        "| `string` | str, string, object holding text | `max_length` limits the length |",
        "| `category` | str, string, object, pandas categorical, **integer** or whole-number float (an integer column read "
        "with nulls), boolean | compared as text with `values`: `1`, `1.0` and `\"1\"` are the same category, so "
        "integer codes (`season: {type: category, values: [1, 2, 3, 4]}`) work at validation, in the model and at scoring |",
        "| `integer` | any int dtype, or float64 holding only whole numbers (nulls in a CSV) | `min` / `max` |",
        "| `float` | any float or int dtype | `min` / `max`; +inf / -inf are refused |",
        "| `boolean` | bool, boolean | |",
        "| `timestamp` | datetime64, with or without time zone; CSV: ISO-8601 text | naive values are localised with "
        "`source.timezone` at ingest |",
        "| `date` | datetime64, object holding dates; CSV: ISO-8601 text | |",
        "",
        "- **Time zones**: event times (and other `timestamp` columns) written without a UTC offset are wall-clock times in "
        "`source.timezone` (default `UTC`): ingest localises them, and every window, partition day and scoring interval is "
        "then computed in UTC. Times with an offset are kept as written (`2026-01-02T10:00:00+01:00`). A naive time that "
        "does not exist or is ambiguous in the zone (a daylight-saving change) is refused: write such data with offsets. "
        "Snowflake `TIMESTAMP_NTZ` is read the same way.",
        "- **Nulls**: allowed unless the column says `nullable: false`; entity key columns and the target (at training) "
        "never may be null, and neither may the event time (a row without one belongs to no window). Numeric features are "
        "imputed (`features.numeric.impute`), categorical ones become their own `__missing__` category.",
        "- **Categories**: values outside `values` fail validation; categories never seen in training are encoded as "
        "unknown (`features.categorical.unseen: ignore`) or refused.",
        "- **Entity key**: unique and non-null. Data without an id column uses `source.row_key: hash`: ingest computes the "
        "key (first 16 hex digits of SHA-1 over the row's declared columns except the target and the key, sorted by name, "
        "joined by the unit separator; whole numbers written without a decimal point, other numbers as their shortest "
        "repr, times as UTC `YYYY-MM-DDTHH:MM:SS.ffffff`, nulls as `\\x1e`; the n-th repeat of an identical row in the same "
        "read gets `-n`), identical at training and at scoring, and the scores carry it like any key.",
        "- **Ingest refuses**: a missing file or partition folder (scoring needs every day), an empty (0-byte) or unreadable "
        "file, text that is not valid `source.csv.encoding`, a header that looks separated by another delimiter, a file "
        "missing a declared column or holding an undeclared one (one odd file must not hide as nulls), a file holding the "
        "computed row-key column, a column whose type differs between files, CSV times that are not ISO-8601, event times "
        "that are null, not timestamps, or outside their `dt=` partition's day, unexpected files in a partition folder, "
        "and a training window with fewer than `training.min_rows` rows.",
        "",
    ]


def render() -> str:
    lines = [
        "# Spec reference",
        "",
        "Generated from `plugins/nightshift/spec/model.py` and `spec/loader.py` by `make schema`; do not edit by hand.",
        "",
        *_rules(),
        *_data_rules(),
    ]
    for model in _models(Pipeline, []):
        lines += [f"## {model.__name__}", "", (model.__doc__ or "").strip().splitlines()[0], "",
                  "| field | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            key = field.alias or name
            description = (field.description or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
        lines.append("")
    return "\n".join(lines)
