"""Deployment glue: Celery worker settings and the warm imports its forked tasks inherit."""
