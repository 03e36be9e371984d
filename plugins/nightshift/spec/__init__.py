"""Layer `spec`: what a pipeline YAML may say, how it is loaded, and its generated docs.

Bottom of the package (above `config` only): pydantic and YAML, never Airflow or the ML stack,
so the DAG file can load every spec at parse time. `model` holds the pydantic models, `loader`
the loading rules (limits, substitution, allowed roots, unique names, resolution, deep checks).
The public names are re-exported here.
"""

from nightshift.spec.loader import (  # noqa: F401 - the layer's public interface
    REGISTRY_OWNER_TAG,
    SpecError,
    check_registry_owner,
    spec_path,
    deep_check,
    find_spec,
    load_all,
    load_spec,
    parse_spec,
    registry_owner_id,
    spec_files,
    substitute_env,
)
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
    json_schema,
)
