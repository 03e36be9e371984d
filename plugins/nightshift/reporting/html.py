"""HTML from Jinja2 templates with autoescaping on: every value a spec, the data or a person supplied is
escaped where it lands. The templates live in `templates/` next to this module (package data)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from nightshift.reporting.formatting import fmt

TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    return env


def render(template_name: str, **context: Any) -> str:
    """One template of `templates/`, rendered with `context` (autoescaped)."""
    return environment().get_template(template_name).render(**context)


def markdown_html(text: str) -> Any:
    """CommonMark plus tables, with raw HTML off: tags in the text come out as text. Returns Markup (safe to embed)."""
    from markdown_it import MarkdownIt
    from markupsafe import Markup

    return Markup(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))
