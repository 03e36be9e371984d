"""Plain-text formatting shared by every report: numbers, bounds, the data's class labels. No HTML here:
templates escape what these return."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from nightshift.spec import Pipeline


def fmt(value: Any, digits: int = 4, missing: str = "n/a") -> str:
    """`missing` for None and NaN, floats with `digits` decimals, anything else as text."""
    if value is None or (isinstance(value, float) and value != value):
        return missing
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def number(value: float) -> str:
    """A bound as the spec wrote it: `0`, `120`, `0.5`."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def bounds(low: float | None, high: float | None) -> str | None:
    """`≥ 0`, `≤ 1` or `between 18 and 120`; None when neither bound is declared."""
    if low is None and high is None:
        return None
    if high is None:
        return f"≥ {number(low)}"
    if low is None:
        return f"≤ {number(high)}"
    return f"between {number(low)} and {number(high)}"


def training_rows(data: dict) -> str:
    """`4000` or, when `training.max_rows` sampled the split, `200000 (a seeded sample of 4000000; training.max_rows)`:
    plain numbers, as the report and the card print the window's rows."""
    used, available = data.get("train_rows"), data.get("train_rows_available")
    if used is None:
        return "n/a"
    if available and available > used:
        return f"{used} (a seeded sample of {available}; training.max_rows)"
    return f"{used}"


def binary_labels(spec: Pipeline, *observed: Iterable[Any]) -> tuple[str, str]:
    """(negative, positive) as the data spells them, for a binary target.

    The positive label is the spec's `target.positive_class`; the negative one is the other value the
    schema declares for the target column or, without declared values, the other value seen in
    `observed` (raw target values). When neither names exactly one other value: `not <positive>`.
    """
    positive = str(spec.target.positive_class)
    column = spec.columns.get(spec.target.column)
    others = {str(v) for v in (column.values or [])} - {positive} if column is not None else set()
    if not others:
        for values in observed:
            others |= {str(v) for v in set(values) if v is not None and v == v}
        others -= {positive}
    return (next(iter(others)) if len(others) == 1 else f"not {positive}"), positive
