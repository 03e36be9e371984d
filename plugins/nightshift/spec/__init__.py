"""Layer `spec`: what a pipeline YAML may say, how it is loaded, and its generated docs.

Bottom of the package (above `config` only): pydantic and YAML, never Airflow or the ML stack,
so the DAG file can load every spec at parse time. The public names are re-exported here.
"""

from nightshift.spec.model import (  # noqa: F401 - the layer's public interface
    CLASSIFICATION_METRICS,
    METRICS_BY_TASK,
    Drift,
    Expectation,
    FairnessGate,
    Gate,
    Notify,
    Pipeline,
    SliceGate,
    SpecError,
    find_spec,
    json_schema,
    load_all,
    load_spec,
    parse_spec,
    spec_files,
)
