"""Airflow DAG entry point: every spec in include/pipelines/ becomes its DAGs.

Kept thin on purpose: the render layer lives in plugins/nightshift/render.py, and nothing heavy
(pandas, scikit-learn, MLflow, Great Expectations) is imported while Airflow parses this file.
"""

from nightshift.render import render_pipelines

globals().update(render_pipelines())
