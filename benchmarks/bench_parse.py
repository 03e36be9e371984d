"""Parse time: DagBag load of the dags/ folder with 1, 10 and 100 specs in the pipelines folder.

The specs are copies of include/pipelines/credit_default.yaml with different names (and output
tables), in a temporary folder passed through NIGHTSHIFT_PIPELINES_DIR. Each load runs in a fresh
interpreter, as Airflow's DAG processor would: `from airflow.dag_processing.dagbag import DagBag`
(timed separately: Airflow's own import cost), then `DagBag(dag_folder=dags/)` (the figure). The
child also lists which heavy modules are in sys.modules before and after the load. Best of
`--repeats` fresh processes per count. Usage: python benchmarks/bench_parse.py [--counts 1 10 100]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import common

PROBE = """
import json, sys, time
heavy = %r
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
t1 = time.perf_counter()
before = [m for m in heavy if m in sys.modules]
c1 = time.process_time()
bag = DagBag(dag_folder=sys.argv[1])
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"import_seconds": t1 - t0, "load_seconds": t2 - t1, "load_cpu_seconds": c2 - c1, "dags": len(bag.dags),
                  "import_errors": {k: str(v)[:500] for k, v in bag.import_errors.items()},
                  "heavy_before": before, "heavy_after": [m for m in heavy if m in sys.modules]}))
""" % (common.HEAVY,)


def write_specs(folder: Path, count: int) -> None:
    text = common.SPEC_FILE.read_text(encoding="utf-8")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        copy = re.sub(r"(?m)^name: credit_default$", f"name: credit_default_{i:03d}", text)
        copy = re.sub(r"(?m)^(\s+output_table:) CREDIT_DEFAULT_SCORES$", rf"\1 CREDIT_DEFAULT_{i:03d}_SCORES", copy)
        if copy == text:
            raise SystemExit(f"{common.SPEC_FILE}: could not rename the pipeline (no 'name: credit_default' line)")
        (folder / f"credit_default_{i:03d}.yaml").write_text(copy, encoding="utf-8")


def load(folder: Path, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, str(common.ROOT / "dags")], capture_output=True, text=True,
                          env={**os.environ, **env, "NIGHTSHIFT_PIPELINES_DIR": str(folder)}, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"DagBag load with {folder} failed:\n{done.stderr[-3000:]}")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)

    figures: dict = {"counts": args.counts, "repeats": args.repeats}
    heavy: set[str] = set()
    airflow_heavy: set[str] = set()
    with common.workdir("parse", keep=args.keep) as work:
        env = common.isolate(work, pipelines=False)
        for count in args.counts:
            folder = work / f"specs-{count}"
            write_specs(folder, count)
            runs = [load(folder, env) for _ in range(args.repeats)]
            for run in runs:
                if run["import_errors"] or run["dags"] != 2 * count:
                    raise SystemExit(f"{count} specs: {run['dags']} DAGs, errors {run['import_errors']}")
                heavy.update(set(run["heavy_after"]) - set(run["heavy_before"]))
                airflow_heavy.update(run["heavy_before"])
            seconds = min(r["load_seconds"] for r in runs)  # contention only ever adds time: best of N
            figures[f"load_seconds_{count}"] = round(seconds, 3)
            figures[f"ms_per_spec_{count}"] = round(1000 * seconds / count, 2)
            figures[f"load_cpu_seconds_{count}"] = round(min(r["load_cpu_seconds"] for r in runs), 3)
            figures[f"airflow_import_seconds_{count}"] = round(min(r["import_seconds"] for r in runs), 3)
    low, high = min(args.counts), max(args.counts)
    if high > low:
        figures["marginal_ms_per_spec"] = round(1000 * (figures[f"load_seconds_{high}"] - figures[f"load_seconds_{low}"]) / (high - low), 2)
    figures["heavy_imported_by_nightshift"] = sorted(heavy)
    figures["heavy_imported_by_airflow_itself"] = sorted(airflow_heavy)
    common.emit("parse", figures)


if __name__ == "__main__":
    main()
