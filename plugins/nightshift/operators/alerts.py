"""Drift alerts: always a warning in the task log; also an Airflow notifier when the spec names one.

Notifiers are Airflow's own classes (SMTP, Slack, ... from the providers), configured in the spec by
import path and keyword arguments, so credentials stay in Airflow connections. Only classes under
`airflow.providers.` or `nightshift.` may be named (the spec validates the path) and the class must be
a BaseNotifier, so a spec cannot make a task instantiate arbitrary code.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from nightshift.spec import Pipeline

log = logging.getLogger(__name__)


class AlertedFailure(AirflowFailException):
    """A failure whose alert has already gone out (a drift failure): failing the task must not send it twice."""


def drift_message(summary: dict) -> str:
    """One readable paragraph: verdict, dates, and the features past a threshold with their PSI."""
    flagged = [f"{r['feature']} {r['status']} (PSI {r['psi']:.3f}) on {r['partition_date']}" for r in summary["flagged"]]
    return (f"{summary['pipeline']}: drift {summary['verdict'].upper()} for {', '.join(summary['partition_dates'])} "
            f"against {summary['model']}'s training reference: {'; '.join(flagged) or 'nothing flagged'}. "
            f"Report: {summary['report']}")


def notifier_class(path: str) -> type:
    """Import a notifier class by path and check that it is an Airflow BaseNotifier."""
    from airflow.sdk import BaseNotifier

    module_name, _, class_name = path.rpartition(".")
    found = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(found, type) and issubclass(found, BaseNotifier)):
        raise TypeError(f"monitoring.notify.notifier: {path} is not an Airflow BaseNotifier class")
    return found


def notify(spec: Pipeline, context: Any, summary: dict) -> str:
    """Log the alert and hand it to the configured notifier (its templates see `drift` and `drift_message`)."""
    message = drift_message(summary)
    log.warning("DRIFT ALERT %s", message)
    config = spec.monitoring.notify
    if config.notifier:
        notifier = notifier_class(config.notifier)(**config.kwargs)
        notifier({**dict(context or {}), "drift": summary, "drift_message": message})
        log.info("drift alert sent with %s", config.notifier)
    return message


def send(spec: Pipeline, context: Any, message: str) -> None:
    """Any other alert (e.g. data that never landed): the task log, and the spec's notifier when it names one."""
    log.warning("ALERT %s: %s", spec.name, message)
    config = spec.monitoring.notify
    if config.notifier:
        notifier_class(config.notifier)(**config.kwargs)({**dict(context or {}), "alert_message": message, "drift_message": message})
