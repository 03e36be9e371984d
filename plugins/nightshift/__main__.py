"""`python -m nightshift` is the `nightshift` command."""

import sys

from nightshift.cli import main

if __name__ == "__main__":  # Airflow's plugin loader may import this file; only run as a script
    sys.exit(main())
