"""The only task of a broken spec's placeholder DAG: fail with the loader's message, every time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class SpecErrorOperator(BaseOperator):
    """Fails with `message` (the file, the field and the reason) without retries."""

    template_fields: Sequence[str] = ()
    ui_color = "#f8d7da"

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(self.message)
