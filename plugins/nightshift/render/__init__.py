"""Layer `render`: specs in, Airflow DAGs out, built from the project's operators (like cosmos for dbt).

Parse-time light: Airflow's SDK, pydantic and YAML only; the operators import their steps lazily.
"""

from nightshift.render.dags import (  # noqa: F401 - the layer's public interface
    broken_spec_dag,
    build_score_dag,
    build_train_dag,
    render_pipelines,
    score_params,
    train_params,
)
