"""Layer `cli`: the `nightshift` command (validate, new, run, status, rollback), settings and dev server."""

from nightshift.cli.main import main  # noqa: F401 - the console script's entry point
