"""Celery settings for Nightshift's workers: Airflow's defaults plus warm imports.

Airflow 3 runs every task in a process forked from its Celery worker. Importing the step
libraries once in the worker (before Celery forks its pool) lets every task inherit them instead
of paying seconds of imports each time. Enable it with
`AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=nightshift.deploy.celery_config.CELERY_CONFIG`.
"""

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    "imports": [*DEFAULT_CELERY_CONFIG.get("imports", ()), "nightshift.deploy.warm_imports"],
}
