"""Nightshift: one YAML spec declares one ML pipeline; this package renders it into Airflow DAGs.

The render layer (`nightshift.render`) is the only part that imports Airflow; the steps under
`nightshift.steps` are plain functions that tests call directly.
"""

__version__ = "0.1.0"
