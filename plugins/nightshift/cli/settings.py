"""Apply an Astro-format `airflow_settings.yaml` (connections, pools, variables) to any Airflow.

Astro's CLI reads that file itself; everyone else runs `python -m nightshift.cli.settings FILE`. It
converts the file to the JSON that Airflow's own `pools/connections/variables import` commands
take, and overwrites on conflict, so applying it twice changes nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


def to_import_files(settings: dict) -> dict[str, dict]:
    """The Astro sections as Airflow's import formats: {"pools": {...}, "connections": {...}, "variables": {...}}."""
    section = (settings or {}).get("airflow") or {}
    pools = {
        p["pool_name"]: {"slots": int(p["pool_slot"]), "description": p.get("pool_description") or "", "include_deferred": False}
        for p in section.get("pools") or []
    }
    connections = {
        c["conn_id"]: {
            "conn_type": c["conn_type"],
            "host": c.get("conn_host") or None,
            "schema": c.get("conn_schema") or None,
            "login": c.get("conn_login") or None,
            "password": c.get("conn_password") or None,
            "port": c.get("conn_port") or None,
            "extra": json.dumps(c.get("conn_extra") or {}),
        }
        for c in section.get("connections") or []
    }
    variables = {v["variable_name"]: v.get("variable_value") for v in section.get("variables") or []}
    return {"pools": pools, "connections": connections, "variables": variables}


IMPORT_COMMANDS = {
    "pools": ["pools", "import"],
    "connections": ["connections", "import", "--overwrite"],
    "variables": ["variables", "import", "--action-on-existing-key", "overwrite"],
}


def apply(path: str | Path, airflow: str = "airflow") -> list[str]:
    """Import every non-empty section through the Airflow CLI; returns what was applied."""
    files = to_import_files(yaml.safe_load(Path(path).read_text()))
    applied = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, content in files.items():
            if not content:
                continue
            target = Path(tmp) / f"{kind}.json"
            target.write_text(json.dumps(content))
            done = subprocess.run([airflow, *IMPORT_COMMANDS[kind], str(target)], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"airflow {' '.join(IMPORT_COMMANDS[kind])} failed:\n{done.stdout}\n{done.stderr}")
            applied.append(f"{kind}: {', '.join(content)}")
    return applied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nightshift.cli.settings", description=__doc__)
    parser.add_argument("file", nargs="?", default="airflow_settings.yaml")
    parser.add_argument("--airflow", default="airflow", help="the airflow executable")
    args = parser.parse_args(argv)
    for line in apply(args.file, args.airflow):
        print(f"applied {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
