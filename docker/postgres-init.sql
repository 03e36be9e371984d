-- A second database on the same server for MLflow's tracking store.
CREATE DATABASE mlflow;
