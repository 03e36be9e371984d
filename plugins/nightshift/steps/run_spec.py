"""The spec a DAG run uses, pinned once: every task of the run sees the same resolved spec.

Without this, each task re-read every spec in the folder and resolved `${VAR}` in its own worker's
environment, so an edit to the YAML mid-run (or two workers with different variables) gave two
tasks of one run different specs. The first task of a run stores the resolved spec and its hash
in the run's folder; every later task (and every retry) loads that copy.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from nightshift import config
from nightshift.io import storage
from nightshift.spec import Pipeline, find_spec

log = logging.getLogger(__name__)


def pinned_spec_uri(pipeline: str, dag_id: str, run_id: str) -> str:
    return f"{config.artifacts_root().rstrip('/')}/{pipeline}/pinned/{config.safe_path_part(dag_id)}/{config.safe_path_part(run_id)}.json"


def run_spec(pipeline: str, dag_id: str, run_id: str, pin: bool = True) -> Pipeline:
    """The run's pinned spec; the first call of a run resolves it from the specs folder and (with `pin`) pins it.

    The folder's spec is validated first, before any file is touched: an invalid spec fails the task
    without I/O, and a mid-run edit that makes the spec invalid fails the run's remaining tasks (nothing is
    published from a spec that no longer loads). A valid edit mid-run changes nothing for this run.
    `pin=False` reads without writing, for a first task that pins only once its own step succeeded."""
    current = find_spec(pipeline)
    uri = pinned_spec_uri(pipeline, dag_id, run_id)
    loc = storage.locate(uri)
    if storage.exists(loc):
        with loc.fs.open_input_stream(loc.path) as stream:
            record = json.loads(stream.read())
        spec = Pipeline.model_validate(record["spec"])
        log.info("spec %s pinned for run %s (hash %s, from %s)", pipeline, run_id, record["hash"], record["path"])
        return spec
    check_deeply(current)
    if pin:
        pin_spec(current, dag_id, run_id)
    return current


def check_deeply(spec: Pipeline) -> None:
    """The checks parsing cannot afford (the estimator imports and is of the target's kind, extra expectations accept
    their kwargs), once per run before its first task touches anything: a spec that names a class that is not a
    classifier fails here, not after ingest and validation (`nightshift validate --deep` runs the same checks)."""
    from nightshift.spec import SpecError, deep_check, spec_path

    problems = deep_check(spec)
    if problems:
        raise SpecError(spec_path(spec.name) or config.pipelines_dir(), problems, pipeline=spec.name)


def pin_spec(spec: Pipeline, dag_id: str, run_id: str) -> str:
    """Store the resolved spec and its hash for the run (idempotent: a retry rewrites the same record)."""
    uri = pinned_spec_uri(spec.name, dag_id, run_id)
    record = {"spec": spec.model_dump(mode="json", by_alias=True), "hash": spec.spec_hash(),
              "path": str(config.pipelines_dir()), "dag_id": dag_id, "run_id": run_id}
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "spec.json"
        local.write_text(json.dumps(record, indent=1))
        storage.put_file(local, uri)
    log.info("spec %s (hash %s) pinned for run %s at %s", spec.name, record["hash"], run_id, uri)
    return uri
