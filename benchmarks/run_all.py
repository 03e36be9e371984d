"""Run every benchmark (one fresh process each) and write docs/benchmarks.md: `make bench`.

Each script prints one JSON line; this collects them, keeps the raw results and logs in
.local/bench/, and renders a markdown report with the machine's cores and memory, the system load
around each run (the machine may be shared), the six figures with their ratios against the aims,
per-benchmark details, and the hand-written analysis in benchmarks/NOTES.md.

    python benchmarks/run_all.py                 # full sizes (~8 minutes on 2 idle cores)
    python benchmarks/run_all.py --quick --out /tmp/b.md   # tiny sizes: the smoke test
    python benchmarks/run_all.py --only parse training
    python benchmarks/run_all.py --render-only   # after editing benchmarks/NOTES.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
BENCHMARKS = {  # name: (script, full-size arguments, smoke-test arguments)
    "scoring": ("bench_scoring.py", ["--rows", "2000000", "--train-rows", "50000", "--repeats", "2"],
                ["--rows", "3000", "--train-rows", "1000", "--workers", "0"]),
    "memory": ("bench_memory.py", ["--rows", "1000000", "10000000"], ["--rows", "2000", "6000", "--train-rows", "1000"]),
    "parse": ("bench_parse.py", ["--counts", "1", "10", "100", "--repeats", "3"], ["--counts", "1", "2", "--repeats", "1"]),
    "training": ("bench_training.py", ["--rows", "200000", "--repeats", "3"], ["--rows", "2000", "--repeats", "1"]),
    "tasks": ("bench_tasks.py", ["--rows", "100000"], ["--rows", "2000", "--train-rows", "1000"]),
    "dag": ("bench_dag.py", ["--rows", "1000000", "10000000"],
            ["--rows", "3000", "9000", "--train-rows", "1000", "--predict-rows", "3000"]),
}
AIMS = {  # training_ratio: issue #16 asks 1.1 (issue #9 asked 1.3)
    "scoring_limit": 0.5, "scoring_naive": 5.0, "memory_ratio": 1.3, "parse_ms_per_spec": 30.0, "parse_100_seconds": 3.0,
    "training_ratio": 1.1, "dag_rss_ratio": 1.3, "dag_marginal_to_predict": 0.5, "dag_predict_to_booster": 0.6,
}


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def settle(max_seconds: float, threshold: float) -> float:
    """Wait (at most max_seconds) for the 1-minute load average to fall below threshold."""
    deadline = time.monotonic() + max_seconds
    while loadavg() >= threshold and time.monotonic() < deadline:
        time.sleep(5)
    return loadavg()


def run(name: str, quick: bool, log_dir: Path, timeout: float) -> dict:
    script, full, small = BENCHMARKS[name]
    log = log_dir / f"{name}.log"
    started = time.perf_counter()
    with log.open("w") as err:
        done = subprocess.run([sys.executable, str(HERE / script), *(small if quick else full)], stdout=subprocess.PIPE,
                              stderr=err, text=True, timeout=timeout, cwd=common.ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"benchmark {name} failed (exit {done.returncode}); log {log}:\n{tail}")
    figures = json.loads(lines[-1])
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    return figures


# --- report -----------------------------------------------------------------------------------

def _n(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:  # NaN: e.g. no measurable margin between two tiny sizes (--quick)
        return "n/a"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}" if isinstance(value, (int, float)) else str(value)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def summary_rows(r: dict) -> list[list[str]]:
    rows = []
    if s := r.get("scoring"):
        rows.append(["1 Scoring throughput", f"Nightshift {_n(s['rows'])} rows, shards in sequence: **{_n(s['nightshift_rows_per_s'])} rows/s** "
                     f"({s['nightshift_seconds']:.2f} s); limit {_n(s['limit_rows_per_s'])} rows/s; naive peer {_n(s['naive_rows_per_s'])} rows/s",
                     f"pipeline/limit **{s['ratio_nightshift_to_limit']:.2f}**<br>pipeline/naive **{s['ratio_nightshift_to_naive']:.2f}**",
                     f"≥ {AIMS['scoring_limit']}<br>≥ {AIMS['scoring_naive']}",
                     f"{_verdict(s['ratio_nightshift_to_limit'] >= AIMS['scoring_limit'])}<br>"
                     f"{_verdict(s['ratio_nightshift_to_naive'] >= AIMS['scoring_naive'])}"])
        if "pool_rows_per_s" in s:
            rows.append(["1b … with a process pool", f"same job, {s['pool_workers']} worker processes: **{_n(s['pool_rows_per_s'])} rows/s** "
                         f"({s['pool_seconds']:.2f} s)",
                         f"pool/limit **{s['ratio_pool_to_limit']:.2f}**<br>pool/naive **{s['ratio_pool_to_naive']:.2f}**",
                         f"≥ {AIMS['scoring_limit']}<br>≥ {AIMS['scoring_naive']}",
                         f"{_verdict(s['ratio_pool_to_limit'] >= AIMS['scoring_limit'])}<br>"
                         f"{_verdict(s['ratio_pool_to_naive'] >= AIMS['scoring_naive'])}"])
    if m := r.get("memory"):
        rows.append(["2 Memory (one shard)", f"peak RSS {_n(m['rows_small'])} rows **{_n(m['small_peak_rss_mib'])} MiB**, "
                     f"{_n(m['rows_large'])} rows **{_n(m['large_peak_rss_mib'])} MiB**",
                     f"large/small **{m['ratio_peak_large_to_small']:.2f}**", f"≤ {AIMS['memory_ratio']}",
                     _verdict(m["ratio_peak_large_to_small"] <= AIMS["memory_ratio"])])
    if p := r.get("parse"):
        top = max(p["counts"])
        per_spec = p[f"ms_per_spec_{top}"]
        load = p[f"load_seconds_{top}"]
        detail = ", ".join(f"{c} spec{'s' if c > 1 else ''} {p[f'load_seconds_{c}'] * 1000:,.0f} ms" for c in p["counts"])
        heavy = ", ".join(p["heavy_imported_by_nightshift"]) or "none"
        rows.append(["3 Parse time (DagBag)", f"{detail}; heavy modules imported: {heavy}",
                     f"**{per_spec:.1f} ms/spec**<br>{top} specs **{load:.2f} s**",
                     f"≤ {AIMS['parse_ms_per_spec']:.0f} ms<br>≤ {AIMS['parse_100_seconds']:.0f} s",
                     f"{_verdict(per_spec <= AIMS['parse_ms_per_spec'])}<br>{_verdict(load <= AIMS['parse_100_seconds'])}"
                     + ("" if top >= 100 else " (fewer than 100 specs)")])
    if t := r.get("training"):
        rows.append(["4 Training overhead", f"{_n(t['rows'])} rows: train step **{t['train_step_seconds']:.2f} s**, "
                     f"bare XGBoost fit **{t['bare_fit_seconds']:.2f} s**",
                     f"step/bare **{t['ratio_train_step_to_bare']:.2f}**", f"≤ {AIMS['training_ratio']}",
                     _verdict(t["ratio_train_step_to_bare"] <= AIMS["training_ratio"])])
    if k := r.get("tasks"):
        warm = k["warm_tasks"]
        score_share = warm.get("score", {}).get("seconds", 0) / k["warm_wall_seconds"]
        rows.append(["5 Per-task overhead", f"`{common.PIPELINE}_score` on {_n(k['rows'])} rows via dag.test(): "
                     f"warm **{k['warm_wall_seconds']:.1f} s** (cold {k['cold_wall_seconds']:.1f} s)",
                     f"scoring tasks {score_share:.0%} of warm wall time; outside tasks {k['warm_overhead_seconds']:.1f} s",
                     "none set", "-"])
    if d := r.get("dag"):
        small, large = d["small"], d["large"]
        rows.append(["6 Whole scoring DAG", f"{_n(small['rows'])} and {_n(large['rows'])} rows, each task in a fresh process: "
                     f"steps {small['step_seconds']:.1f} s and **{large['step_seconds']:.1f} s**; marginal "
                     f"**{_n(d['marginal_rows_per_s'])} rows/s**; in-memory predict {_n(d['predict_rows_per_s'])} rows/s, "
                     f"bare booster {_n(d['booster_rows_per_s'])} rows/s",
                     f"worst per-task peak RSS large/small **{d['worst_peak_rss_ratio']:.2f}** ({d['worst_peak_rss_task']})<br>"
                     f"marginal/predict **{d['ratio_marginal_to_predict']:.2f}**<br>predict/booster **{d['ratio_predict_to_booster']:.2f}**",
                     f"≤ {AIMS['dag_rss_ratio']}<br>≥ {AIMS['dag_marginal_to_predict']}<br>≥ {AIMS['dag_predict_to_booster']}",
                     f"{_verdict(d['worst_peak_rss_ratio'] <= AIMS['dag_rss_ratio'])}<br>"
                     f"{_verdict(d['ratio_marginal_to_predict'] >= AIMS['dag_marginal_to_predict'])}<br>"
                     f"{_verdict(d['ratio_predict_to_booster'] >= AIMS['dag_predict_to_booster'])}"])
    return rows


def details(r: dict) -> list[str]:
    out: list[str] = []
    if s := r.get("scoring"):
        out += ["### 1. Scoring throughput", "",
                f"{_n(s['rows'])} rows, {s['shards']} shards of {_n(s['batch_rows'])}-row batches, model trained on {_n(s['train_rows'])} rows; "
                f"best of {s['repeats']} for Nightshift and the limit, of {s.get('naive_repeats', s['repeats'])} for the naive peers (single-threaded SQLite "
                f"inserts: slow and steady); every variant reads the same snapshot parquet and is timed in a warm process.", "",
                "| variant | what is timed | seconds | rows/s |", "|---|---|---:|---:|",
                f"| Nightshift, shards in sequence | plan_shards, score_shard ×{s['shards']} ({s['nightshift_score_seconds']:.2f} s), "
                f"publish to DuckDB in one transaction ({s['nightshift_publish_seconds']:.2f} s) | {s['nightshift_seconds']:.2f} | {_n(s['nightshift_rows_per_s'])} |"]
        if "pool_seconds" in s:
            out.append(f"| Nightshift, process pool of {s['pool_workers']} | the same, shards in {s['pool_workers']} warmed worker processes "
                       f"({s['pool_score_seconds']:.2f} s), publish ({s['pool_publish_seconds']:.2f} s) | {s['pool_seconds']:.2f} | {_n(s['pool_rows_per_s'])} |")
        out += [f"| limit | the fitted pipeline's predict_proba on the rows already in memory, the faster of one call over all rows "
                f"({s['limit_one_call_seconds']:.2f} s) and {_n(s['batch_rows'])}-row slices ({s['limit_batched_seconds']:.2f} s); of one call, "
                f"the feature transform alone takes {s['limit_transform_seconds']:.2f} s and the booster on the transformed matrix "
                f"{s['limit_trees_seconds']:.2f} s | {s['limit_seconds']:.2f} | {_n(s['limit_rows_per_s'])} |",
                f"| naive peer | read_parquet → pyfunc predict → to_sql(append) into SQLite, the same {s['naive_columns']} columns | "
                f"{s['naive_seconds']:.2f} | {_n(s['naive_rows_per_s'])} |",
                f"| naive peer, key and score only | the same with {s['naive_min_columns']} columns written | {s['naive_min_seconds']:.2f} | "
                f"{_n(s['naive_min_rows_per_s'])} |", "",
                f"Ratios: pipeline/limit {s['ratio_nightshift_to_limit']:.2f}, pipeline/naive {s['ratio_nightshift_to_naive']:.2f} "
                f"(against the key-and-score-only peer {s['ratio_nightshift_to_naive_min']:.2f})"
                + (f"; with the pool {s['ratio_pool_to_limit']:.2f} and {s['ratio_pool_to_naive']:.2f} "
                   f"({s['ratio_pool_to_naive_min']:.2f})" if "pool_seconds" in s else "")
                + f". Published scores equal the limit's probabilities (largest difference on a sample: {s['max_abs_score_diff_vs_limit']:.1e}).", ""]
    if m := r.get("memory"):
        out += ["### 2. Memory: one shard, fresh process per size", "",
                "| rows | row groups | snapshot MiB | baseline RSS MiB | peak RSS MiB | growth MiB | seconds | rows/s |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for label in ("small", "large"):
            out.append(f"| {_n(m[f'rows_{label}'])} | {m[f'{label}_row_groups']} | {_n(m[f'{label}_snapshot_mib'])} | "
                       f"{_n(m[f'{label}_baseline_rss_mib'])} | {_n(m[f'{label}_peak_rss_mib'])} | {_n(m[f'{label}_growth_mib'])} | "
                       f"{m[f'{label}_seconds']:.1f} | {_n(m[f'{label}_rows_per_s'])} |")
        out += ["", f"Peak ratio large/small {m['ratio_peak_large_to_small']:.2f}; growth above the baseline (imports and model "
                f"loaded) large/small {_n(m['ratio_growth_large_to_small'], 2)}. Peak is ru_maxrss of the child; the parent's "
                f"RUSAGE_CHILDREN agrees ({_n(m['small_children_maxrss_mib'])} and {_n(m['large_children_maxrss_mib'])} MiB).", ""]
    if p := r.get("parse"):
        out += ["### 3. Parse time", "", "| specs | DAGs | DagBag load ms (best of %d) | of which CPU ms | ms per spec | Airflow import s |" % p["repeats"],
                "|---:|---:|---:|---:|---:|---:|"]
        for c in p["counts"]:
            out.append(f"| {c} | {2 * c} | {p[f'load_seconds_{c}'] * 1000:,.0f} | {p[f'load_cpu_seconds_{c}'] * 1000:,.0f} | "
                       f"{p[f'ms_per_spec_{c}']:.1f} | {p[f'airflow_import_seconds_{c}']:.2f} |")
        out += ["", f"Marginal cost per extra spec: {_n(p.get('marginal_ms_per_spec'), 1)} ms. Heavy modules ({', '.join(common.HEAVY)}) "
                f"imported by loading the DAGs: {', '.join(p['heavy_imported_by_nightshift']) or 'none'}; already imported by Airflow "
                f"itself: {', '.join(p['heavy_imported_by_airflow_itself']) or 'none'}.", ""]
    if t := r.get("training"):
        out += ["### 4. Training overhead", "",
                f"{_n(t['rows'])} labelled rows, {t['features_in']} raw feature columns → {t['matrix_columns']} model columns, {t['estimator']}; "
                f"best of {t['repeats']} interleaved runs each.", "",
                "| what | seconds |", "|---|---:|",
                f"| train step: `fit_pipeline` (casts, transformer fit+transform, XGBoost fit) | {t['train_step_seconds']:.2f} |",
                f"| bare `XGBClassifier.fit` on the already-transformed matrix | {t['bare_fit_seconds']:.2f} |",
                f"| of which the feature transformer: fit+transform alone | {t['features_fit_transform_seconds']:.2f} |", "",
                f"Ratio {t['ratio_train_step_to_bare']:.2f}. All runs: step {t['train_step_all_seconds']}, bare {t['bare_fit_all_seconds']}.", ""]
    if k := r.get("tasks"):
        names = list(dict.fromkeys([*k["warm_tasks"], *k["cold_tasks"]]))
        out += ["### 5. Per-task wall time of the scoring DAG", "",
                f"`{common.PIPELINE}_score` for one day of {_n(k['rows'])} rows, `dag.test()` (tasks run one after another in one "
                f"process). Cold = first run in the process; warm = the same day again.", "",
                "| task | instances | cold s | warm s |", "|---|---:|---:|---:|"]
        for name in names:
            c, w = k["cold_tasks"].get(name, {}), k["warm_tasks"].get(name, {})
            out.append(f"| {name} | {w.get('instances', c.get('instances', 0))} | {c.get('seconds', 0):.2f} | {w.get('seconds', 0):.2f} |")
        out += [f"| *outside tasks (dag.test bookkeeping)* | | {k['cold_overhead_seconds']:.2f} | {k['warm_overhead_seconds']:.2f} |",
                f"| **wall time** | | **{k['cold_wall_seconds']:.2f}** | **{k['warm_wall_seconds']:.2f}** |", "",
                f"A cold `import nightshift.operators.base` in a fresh interpreter takes {k['cold_import_runtime_seconds']:.2f} s: in a deployment "
                f"every task is its own process and pays it (plus what its step imports) each time. Setup, not timed above: "
                f"`airflow db migrate` {k['airflow_db_migrate_seconds']:.0f} s, data and champion {k['setup_seconds']:.0f} s.", ""]
    if d := r.get("dag"):
        small, large = d["small"], d["large"]
        out += ["### 6. The whole scoring DAG at scale, task by task", "",
                f"`{common.PIPELINE}_score` for one day landed as parquet files of at most 1M rows: resolve_model, ingest, validate, "
                "plan_shards, score ×shards, publish, monitor, each in a fresh process calling the step as its operator does "
                "(`benchmarks/bench_dag.py`). Step s = inside the step; process s = the child's wall time (interpreter and imports "
                "too); peak = the child's ru_maxrss (the largest shard for score).", "",
                f"| task | instances | step s {_n(small['rows'])} | step s {_n(large['rows'])} | process s {_n(large['rows'])} | "
                f"peak RSS MiB {_n(small['rows'])} | peak RSS MiB {_n(large['rows'])} | large/small |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, t in large["tasks"].items():
            s0 = small["tasks"][name]
            out.append(f"| {name} | {t['instances']} | {s0['seconds']:.2f} | {t['seconds']:.2f} | {t['wall_seconds']:.2f} | "
                       f"{_n(s0['peak_rss_mib'])} | {_n(t['peak_rss_mib'])} | {d['peak_rss_ratio_by_task'][name]:.2f} |")
        p = large["predict"]
        out += [f"| **all tasks** | | **{small['step_seconds']:.2f}** | **{large['step_seconds']:.2f}** | **{large['wall_seconds']:.2f}** | | | |",
                "", f"Marginal throughput of the whole DAG ({_n(large['rows'] - small['rows'])} extra rows over the extra step seconds): "
                f"{_n(d['marginal_rows_per_s'])} rows/s. The champion's predict_proba on {_n(p['rows'])} rows already in memory: "
                f"{p['pipeline']:.2f} s ({_n(d['predict_rows_per_s'])} rows/s), of which the fitted transform {p['transform']:.2f} s; "
                f"the bare booster's inplace_predict on the transformed matrix {p['booster']:.2f} s ({_n(d['booster_rows_per_s'])} rows/s). "
                f"Ratios: marginal/predict {d['ratio_marginal_to_predict']:.2f}, predict/booster {d['ratio_predict_to_booster']:.2f}.", ""]
    return out


def render(results: dict, meta: dict) -> str:
    mach = meta["machine"]
    lines = [
        "# Benchmarks", "",
        f"Generated by `make bench` (`benchmarks/run_all.py`{' --quick' if meta['quick'] else ''}) on {meta['finished_at']}, "
        f"commit `{meta['commit']}`. Measurements, not tests: rerun to compare.", "",
        f"Machine: **{mach['cores']} cores, {mach['memory_gib']} GiB memory**, {mach['cpu']}, Python {mach['python']}, {mach['platform']}. "
        f"Whole run {meta['wall_seconds'] / 60:.1f} min.", "",
        "| benchmark | load average before → after | wall s |", "|---|---|---:|",
        *[f"| {name} | {f['load_before']} → {f['load_after']} | {f['wall_seconds']:.0f} |" for name, f in results.items()], "",
        "The machine may be shared (a load average well above the core count means other work competed for the CPUs).", "",
        "## Summary", "",
        "| # | figures | ratios | aim | verdict |", "|---|---|---|---|---|",
        *["| " + " | ".join(row) + " |" for row in summary_rows(results)], "",
        "## Details", "", *details(results),
    ]
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the benchmarks and write the markdown report.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--out", type=Path, default=common.ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--state-dir", type=Path, default=common.ROOT / ".local" / "bench", help="raw results and logs")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="before each benchmark wait up to this many seconds for the load average to drop below the core count")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--render-only", action="store_true", help="rewrite the report from the last results.json (e.g. after editing NOTES.md)")
    args = parser.parse_args(argv)
    if args.render_only:
        saved = json.loads((args.state_dir / "results.json").read_text())
        args.out.write_text(render(saved["results"], saved["meta"]), encoding="utf-8")
        print(f"[bench] rewrote {args.out} from {args.state_dir / 'results.json'}")
        return

    log_dir = args.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, dict] = {}
    for name in args.only:
        before = settle(args.settle, float(os.cpu_count() or 1)) if args.settle else loadavg()
        print(f"[bench] {name} (load {before}) ...", flush=True)
        figures = run(name, args.quick, log_dir, args.timeout)
        figures["load_before"], figures["load_after"] = before, loadavg()
        results[name] = figures
        print(f"[bench] {name}: {json.dumps(figures)}", flush=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=common.ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    meta = {"machine": {**common.machine(), "cpu": cpu_model()}, "quick": args.quick, "commit": commit or "unknown",
            "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "wall_seconds": time.perf_counter() - started}
    (args.state_dir / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, meta), encoding="utf-8")
    print(f"[bench] wrote {args.out} ({meta['wall_seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
