"""Layer `io`: storage (local and S3), MLflow tracking, warehouses (DuckDB, Snowflake). No Airflow."""
