"""The performance report: realized and estimated values of the deciding metric over time, per model version, with
their intervals and the version's held-out baseline (one PNG, embedded), then the table of the evaluated dates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nightshift.reporting import html
from nightshift.reporting.plots import axes, png
from nightshift.spec import Pipeline

if TYPE_CHECKING:
    import pandas as pd

STATUS_COLOURS = {"ok": "#e6f4ea", "degraded": "#fde0dc", "warn": "#fff4ce", "no_labels": "#eeeeee", "insufficient": "#eeeeee",
                  "no_baseline": "#eeeeee", "reported": "#ffffff"}
KIND_STYLE = {"realized": ("o", "-"), "estimated": ("s", ":")}


def _role(part: "pd.DataFrame") -> str:
    return "shadow " if "ROLE" in part.columns and (part["ROLE"] == "shadow").any() else ""


def over_time(frame: "pd.DataFrame", metric: str) -> str | None:
    """Base64 PNG: one line per (version, kind) with LOWER..UPPER bars, a dashed held-out baseline per version."""
    import pandas as pd

    rows = frame[frame["METRIC"] == metric].dropna(subset=["VALUE"]) if not frame.empty else frame
    if rows.empty:
        return None
    fig, ax = axes(9, 3.6)
    colours = {}
    for (version, kind), part in rows.sort_values("PARTITION_DATE").groupby(["MODEL_VERSION", "KIND"]):
        marker, style = KIND_STYLE.get(kind, ("^", "-"))
        days = pd.to_datetime(part["PARTITION_DATE"])
        low, high = (part["VALUE"] - part["LOWER"]).clip(lower=0), (part["UPPER"] - part["VALUE"]).clip(lower=0)
        line = ax.errorbar(days, part["VALUE"], yerr=[low.fillna(0), high.fillna(0)], marker=marker, linestyle=style, capsize=3,
                           color=colours.get(version), label=f"v{version} {_role(part)}{kind}")
        colours.setdefault(version, line[0].get_color())
        baseline = part["BASELINE"].dropna()
        if len(baseline):
            ax.axhline(float(baseline.iloc[0]), color=colours[version], linestyle="--", linewidth=0.8)
    ax.set(title=f"{metric} per partition date (dashed: the version's held-out value)", ylabel=metric)
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return png(fig)


def page(spec: Pipeline, frame: "pd.DataFrame", summary: dict, duels: list[dict] | None = None) -> str:
    metric = summary["metric"]
    evaluated = set(summary["partition_dates"])
    table = frame[frame["PARTITION_DATE"].astype(str).isin(evaluated)] if not frame.empty else frame
    table = table.sort_values(["PARTITION_DATE", "MODEL_VERSION", "KIND", "METRIC"]) if not table.empty else table
    records: list[dict[str, Any]] = table.to_dict("records") if not table.empty else []
    return html.render("performance_report.html", spec=spec, summary=summary, metric=metric, image=over_time(frame, metric),
                       rows=records, colours=STATUS_COLOURS, duels=[d for d in duels or [] if d["days"]])


def save(spec: Pipeline, frame: "pd.DataFrame", summary: dict, out_dir: Path, duels: list[dict] | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    path.write_text(page(spec, frame, summary, duels), encoding="utf-8")
    return path
