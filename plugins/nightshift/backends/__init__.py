"""Adapters to the outside world: object storage, tracking and registry, warehouses."""
