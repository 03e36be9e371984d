"""Reliability and security tier (`pytest -m reliability`): bad inputs, faults, reruns, bad models, hostile specs.

Every test here carries `pytest.mark.reliability("<category>")`; `conftest.py` counts them per category and
writes docs/reliability.md and the README's Reliability section from the run's own reports.
"""
