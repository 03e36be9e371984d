# The image for every Airflow component and the MLflow server in docker-compose.yaml.
FROM apache/airflow:3.3.2-python3.11

# Pinned set (Airflow's constraints file is not used): the same versions the tests run with.
COPY --chown=airflow:root requirements.txt /opt/nightshift/requirements.txt
RUN pip install --no-cache-dir -r /opt/nightshift/requirements.txt

# The library is also mounted by compose for development; baking it in makes the image runnable alone.
COPY --chown=airflow:root pyproject.toml /opt/nightshift/pyproject.toml
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root include/ /opt/airflow/include/
ENV NIGHTSHIFT_HOME=/opt/airflow \
    PYTHONPATH=/opt/airflow/plugins
