"""Demo helpers: deterministic synthetic data so the example pipelines run end to end."""
