"""Validate operator: the spec's Great Expectations suite on the run's snapshot; nothing downstream runs unless it passes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nightshift.operators.base import NightshiftOperator


@contextmanager
def docs_kept(ingested: dict, docs: Path) -> Iterator[None]:
    """Keep the Data Docs in the run folder (and the MLflow run, when there is one), pass or fail."""
    from nightshift.io import storage, tracking

    try:
        yield
    finally:
        if any(docs.iterdir()):
            storage.put_dir(docs, f"{ingested['run_dir']}/validate/data_docs")
            if ingested.get("mlflow_run_id"):
                tracking.client().log_artifacts(ingested["mlflow_run_id"], str(docs), "validation/data_docs")


class ValidateOperator(NightshiftOperator):
    """Run the suite on `ingested`'s snapshot: with the target when training, without it when scoring.

    :param ingested: the ingest task's XCom (snapshot URI, source, file rows, run folder).
    :param include_target: check the label column too (training).
    """

    template_fields: Sequence[str] = ("pipeline", "ingested")
    ui_color = "#e3f4e8"

    def __init__(self, *, ingested: Any, include_target: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingested = ingested
        self.include_target = include_target

    def run_step(self, context: Any) -> dict:
        from nightshift.steps import score, validate

        ingested = self.ingested
        if not self.include_target and ingested["rows"] == 0:
            self.log.info("no rows to validate")
            return {"success": True, "rows": 0}
        with tempfile.TemporaryDirectory() as docs, docs_kept(ingested, Path(docs)):  # in batches: never the whole day
            return validate.validate_snapshot(ingested["snapshot_uri"], self.spec, include_target=self.include_target,
                                              source=ingested["source"], docs_dir=docs, files=ingested.get("file_rows"),
                                              run_dir=ingested["run_dir"], drop=(score.PARTITION_COLUMN,),
                                              docs_kept_at=f"{ingested['run_dir']}/validate/data_docs")
