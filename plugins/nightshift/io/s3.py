"""S3 access for sources and run artifacts, with credentials from the Amazon provider's hook.

Credentials never come from the spec. Which ones a uri uses:

- `s3://conn_id@bucket/prefix`: the Airflow connection `conn_id`, through
  `airflow.providers.amazon.aws.hooks.s3.S3Hook(aws_conn_id=conn_id)`, so everything the provider supports works
  (access keys, `role_arn` assumed roles, session tokens, profiles, the connection's region and `endpoint_url` for
  MinIO or moto). A connection that does not exist is an error naming it (S3ConnectionMissing): never a silent
  fall-back to whatever credentials the worker happens to have.
- `s3://bucket/prefix`: the connection `aws_default` when it is defined (same hook), else the standard AWS
  credential chain of the worker (environment variables, shared config and credentials files, instance or task
  role), with `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` and `AWS_DEFAULT_REGION` from the environment.

The hook's credentials (temporary ones included) feed a pyarrow S3FileSystem; filesystems are cached per connection
for at most CACHE_SECONDS, so assumed-role sessions are refreshed well before they expire.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache

DEFAULT_CONN_ID = "aws_default"
CACHE_SECONDS = 600


class S3ConnectionMissing(RuntimeError):
    """An `s3://conn_id@...` uri names an Airflow connection that is not defined. Deterministic: not retried."""


def _defined(conn_id: str) -> bool:
    """Whether Airflow knows the connection (environment variable, secrets backend or metadata database)."""
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:  # Airflow is not installed: no connection is defined
        return False
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def _hook_settings(conn_id: str) -> dict:
    """Access key, secret, session token, region and endpoint of an Airflow AWS connection, through the provider's hook
    (which resolves role ARNs, profiles and the rest of the provider's options)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=conn_id)
    config = hook.conn_config
    endpoint = None
    if hasattr(config, "get_service_endpoint_url"):
        endpoint = config.get_service_endpoint_url("s3")
    endpoint = endpoint or config.endpoint_url
    credentials = hook.get_credentials()
    return {
        "access_key": credentials.access_key,
        "secret_key": credentials.secret_key,
        "session_token": credentials.token,
        "region": hook.conn_region_name,
        "endpoint_override": endpoint,
    }


def settings(conn_id: str | None) -> dict:
    """The S3FileSystem settings for a uri's connection (None: `aws_default` if defined, else the standard chain)."""
    if conn_id is not None:
        if not _defined(conn_id):
            raise S3ConnectionMissing(f"Airflow connection '{conn_id}' (named by an s3://{conn_id}@... uri) is not defined: "
                                      "define it (e.g. AIRFLOW_CONN_" + conn_id.upper().replace("-", "_").replace(".", "_")
                                      + ", airflow_settings.yaml or a secrets backend), or drop the conn_id@ part to use "
                                      "aws_default / the standard AWS credential chain")
        return {**_hook_settings(conn_id), "source": f"connection {conn_id}"}
    if _defined(DEFAULT_CONN_ID):
        return {**_hook_settings(DEFAULT_CONN_ID), "source": f"connection {DEFAULT_CONN_ID}"}
    return {"source": "the standard AWS credential chain"}


@lru_cache(maxsize=32)
def _filesystem(conn_id: str | None, period: int):
    import pyarrow.fs as pafs

    found = settings(conn_id)
    endpoint = found.get("endpoint_override") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs = {k: v for k, v in found.items() if v and k not in ("endpoint_override", "source")}
    if endpoint:
        kwargs["endpoint_override"] = endpoint
        kwargs["scheme"] = "https" if endpoint.startswith("https") else "http"
    kwargs.setdefault("region", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    return pafs.S3FileSystem(**kwargs)


def filesystem(conn_id: str | None):
    """A pyarrow S3FileSystem for a uri's connection (see the module docstring for which credentials it uses)."""
    return _filesystem(conn_id, int(time.time() // CACHE_SECONDS))


filesystem.cache_clear = _filesystem.cache_clear  # type: ignore[attr-defined]
