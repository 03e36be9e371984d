"""S3 access for sources and run artifacts, configured by an Airflow connection.

`s3://conn_id@bucket/prefix` reads credentials, region and endpoint (MinIO, moto) from the
Airflow connection `conn_id`; a plain `s3://bucket/prefix` uses `aws_default` when it exists and
the standard AWS environment otherwise. No credentials ever come from the spec.
"""

from __future__ import annotations

import os
from functools import lru_cache


def _connection_settings(conn_id: str) -> dict:
    """Access key, secret, region and endpoint from an Airflow AWS connection, if there is one."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # no Airflow context or no such connection: fall back to the environment
        return {}
    extra = conn.extra_dejson or {}
    endpoint = extra.get("endpoint_url") or (extra.get("service_config", {}).get("s3", {}).get("endpoint_url"))
    return {
        "access_key": conn.login or None,
        "secret_key": conn.password or None,
        "region": extra.get("region_name"),
        "endpoint_override": endpoint,
    }


@lru_cache(maxsize=16)
def filesystem(conn_id: str | None):
    """A pyarrow S3FileSystem for the connection (default `aws_default`)."""
    import pyarrow.fs as pafs

    settings = _connection_settings(conn_id or "aws_default")
    endpoint = settings.get("endpoint_override") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs = {k: v for k, v in settings.items() if v and k != "endpoint_override"}
    if endpoint:
        kwargs["endpoint_override"] = endpoint
        kwargs["scheme"] = "https" if endpoint.startswith("https") else "http"
    kwargs.setdefault("region", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    return pafs.S3FileSystem(**kwargs)
