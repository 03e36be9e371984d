"""A publish in its own process that can pause at a named point, so a test can SIGKILL it there.

    python tests/reliability/publish_child.py '{"warehouse": ..., "table": ..., "files": [...], "model_name": ...,
        "dates": ["2026-02-04"], "expected": 60, "pause_at": "after_delete", "hold_seconds": 600}'

Points: before_begin, after_delete, after_insert, before_commit, after_commit (or none). At the point the child
prints `PAUSED <point>` and sleeps `hold_seconds` (default: long enough to be killed), then carries on. It ends
with `PUBLISHED <rows>`. The pause wraps the DuckDB connection that DuckDBWarehouse opens (statements are
matched by their first keyword), so the product code needs no fault-injection hook.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))

import duckdb  # noqa: E402

POINTS = {"before_begin": ("before", "BEGIN"), "after_delete": ("after", "DELETE"), "after_insert": ("after", "INSERT"),
          "before_commit": ("before", "COMMIT"), "after_commit": ("after", "COMMIT")}


class PausingConnection:
    """Delegates to a DuckDB connection; sleeps before or after the statement named by `point`."""

    def __init__(self, con, point: str | None, hold_seconds: float):
        self._con, self._point, self._hold = con, point, hold_seconds
        self._when, self._keyword = POINTS.get(point or "", (None, None))

    def _pause(self) -> None:
        print(f"PAUSED {self._point}", flush=True)
        time.sleep(self._hold)

    def execute(self, sql: str, *args):
        hit = self._keyword is not None and sql.lstrip().upper().startswith(self._keyword)
        if hit and self._when == "before":
            self._pause()
        result = self._con.execute(sql, *args)
        if hit and self._when == "after":
            self._pause()
        return result

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._con.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._con, name)


def main(cfg: dict) -> int:
    import pyarrow.parquet as pq

    from nightshift.io.warehouse import DuckDBWarehouse

    real_connect = duckdb.connect
    duckdb.connect = lambda *a, **k: PausingConnection(real_connect(*a, **k), cfg.get("pause_at"), cfg.get("hold_seconds", 600))
    warehouse = DuckDBWarehouse(cfg["warehouse"], lock_retries=cfg.get("lock_retries", 5),
                                lock_wait_seconds=cfg.get("lock_wait_seconds", 1.0))
    print("STARTED", flush=True)
    rows = warehouse.publish(cfg["table"], pq.read_schema(cfg["files"][0]), cfg["files"], cfg["model_name"],
                             [date.fromisoformat(d) for d in cfg["dates"]], cfg["expected"])
    print(f"PUBLISHED {rows}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
