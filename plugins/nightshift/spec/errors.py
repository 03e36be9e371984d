"""One way to say what failed: where, which column, what was expected, what was found, with short examples.

Every message a step raises for bad data or an unusable store goes through `render` or `bounded`, so it stays
readable whatever the data holds: each example value is cut to `MAX_VALUE` characters (a 1 MB category value
shows as `'xxxx…(1,000,000 chars)'`) and the whole message to `MAX_MESSAGE` characters. When the full text is
longer it belongs in the run folder (`Failure.detail`); the message then says where it was written.

Plain Python only (no pandas, no I/O): every layer above may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

MAX_MESSAGE = 2_000  # characters per message, everything included
MAX_VALUE = 80  # characters per example value
EXAMPLES_SHOWN = 5


def clip(text: str, limit: int = MAX_VALUE) -> str:
    """`text` itself when short, else its first `limit` characters and `…(1,000,000 chars)`."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text):,} chars)"


def show(value: Any, limit: int = MAX_VALUE) -> str:
    """repr() of one example value, a long string cut inside its quotes: `'xxxx…(1,000,000 chars)'`."""
    if isinstance(value, str) and len(value) > limit:
        quoted = repr(value[:limit])
        return f"{quoted[:-1]}…({len(value):,} chars){quoted[-1]}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(show(v, limit) for v in value[:EXAMPLES_SHOWN])
        more = ", …" if len(value) > EXAMPLES_SHOWN else ""
        return f"[{inner}{more}]" if isinstance(value, list) else f"({inner}{more})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{show(k, limit)}: {show(v, limit)}" for k, v in list(value.items())[:EXAMPLES_SHOWN]) + "}"
    return clip(repr(value), limit)


def examples(values: Iterable[Any], shown: int = EXAMPLES_SHOWN, limit: int = MAX_VALUE) -> str:
    """`['Q', 'xxxx…(1,000,000 chars)']`: the first `shown` values, each cut to `limit` characters."""
    values = list(values)
    return "[" + ", ".join(show(v, limit) for v in values[:shown]) + (", …" if len(values) > shown else "") + "]"


def bounded(message: str, limit: int = MAX_MESSAGE, detail_at: str | None = None) -> str:
    """The message itself when it fits, else cut to `limit` characters with a note of what was left out."""
    message = str(message)
    if len(message) <= limit:
        return message
    note = f" …({len(message) - limit:,} more chars" + (f"; full text in {detail_at})" if detail_at else ")")
    return message[: max(0, limit - len(note))] + note


@dataclass(frozen=True)
class Failure:
    """One thing that failed, in words: `where: column 'c': what (expected …; found …), e.g. [...]`."""

    where: str  # the file, folder, table or store
    what: str  # what is wrong, in plain words
    column: str | None = None
    expected: str | None = None
    found: str | None = None
    values: tuple = ()  # example offending values (shown truncated)

    def render(self, limit: int = MAX_MESSAGE) -> str:
        parts = [self.where]
        if self.column is not None:
            parts.append(f"column '{clip(self.column)}'")
        text = ": ".join(parts) + f": {self.what}"
        said = [f"expected {self.expected}" if self.expected else "", f"found {self.found}" if self.found else ""]
        if any(said):
            text += f" ({'; '.join(s for s in said if s)})"
        if self.values:
            text += f", e.g. {examples(self.values)}"
        return bounded(text, limit)


class ReportedFailure(Exception):
    """Base of the failures whose message is bounded (`MAX_MESSAGE`); the full text stays in `.detail`.

    `str(exc)` is the bounded message. `detail_at` (set by whoever wrote `.detail` to the run folder, see
    `with_detail_at`) is named in the message when the text had to be cut."""

    def __init__(self, message: str, *, detail: str | None = None, detail_at: str | None = None):
        self.full_message = str(message)
        self.detail = detail if detail is not None else self.full_message
        self.detail_at = detail_at
        super().__init__(bounded(self.full_message, detail_at=detail_at))

    @property
    def truncated(self) -> bool:
        """The message had to be cut, or the detail says more than the message shows."""
        return len(self.full_message) > MAX_MESSAGE or self.detail not in self.full_message

    def with_detail_at(self, uri: str) -> "ReportedFailure":
        """Record where `.detail` was written; the message names it when it had to be cut."""
        self.detail_at = uri
        self.args = (bounded(self.full_message, detail_at=uri),)
        return self
