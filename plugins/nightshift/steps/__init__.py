"""Pipeline steps: plain functions, testable without Airflow."""
