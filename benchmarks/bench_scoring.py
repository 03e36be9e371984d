"""Scoring throughput: Nightshift's own path against the model's limit and a naive peer.

Rows: `--rows` credit applications (demo generator, tiled with fresh ids) in a snapshot parquet laid
out exactly as the scoring ingest step writes it. Model: the credit_default spec's pipeline fitted
on `--train-rows` generated rows, logged to a throwaway MLflow store, registered, made champion.

Timed, each from the same parquet file, each in a warm process (imports done before any clock):
  nightshift (sequential)  plan_shards, score_shard for every shard one after the other, publish
                           (one DuckDB transaction) -- what `dag.test()` or a one-slot worker does;
  nightshift (pool of N)   the same shards in a process pool of N warmed workers (LocalExecutor with
                           parallelism >= N), then publish;
  limit                    the same fitted pipeline's predict_proba on the rows already in memory
                           (read and cast outside the clock), in one call and in batch_rows
                           slices; the faster of the two is the model's own ceiling;
  naive peer               pandas.read_parquet, mlflow.pyfunc.load_model(...).predict,
                           DataFrame.to_sql(if_exists="append") via SQLAlchemy into SQLite, writing
                           the same columns Nightshift writes (key, SCORE, LABEL, six lineage
                           columns); a second variant writes only key and SCORE.
Best of `--repeats` for Nightshift and the limit, of `--naive-repeats` for the naive peers. Usage: python benchmarks/bench_scoring.py [--rows N]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import common


def nightshift_path(spec, snapshot: str, model_ref: dict, run_dir: Path, warehouse: Path, workers: int) -> dict:
    """plan_shards -> score_shard x N -> publish, timed as one job."""
    from nightshift.steps import publish, score

    os.environ["NIGHTSHIFT_WAREHOUSE"] = str(warehouse)
    scored_at = datetime.now(timezone.utc)
    with common.Timer() as total:
        shards = score.plan_shards(spec, snapshot)
        args = [(spec, snapshot, shard, model_ref, "bench__scoring", scored_at, str(run_dir)) for shard in shards]
        with common.Timer() as scoring:
            if workers > 1:
                results = list(POOL.map(_score_shard, args))
            else:
                results = [_score_shard(a) for a in args]
        with common.Timer() as publishing:
            published = publish.publish(spec, results, [common.SCORE_DAY.isoformat()], model_ref)
    return {"seconds": total.seconds, "score_seconds": scoring.seconds, "publish_seconds": publishing.seconds,
            "rows": published["rows"], "shards": len(shards)}


def _score_shard(args: tuple) -> dict:
    from nightshift.steps import score

    return score.score_shard(*args)


def _warm(model_uri: str) -> None:
    """Pay imports and MLflow's first-load costs before any clock starts (main process and pool workers)."""
    common.quiet_logs()
    import mlflow.sklearn
    import pyarrow.parquet  # noqa: F401

    from nightshift.io import tracking
    from nightshift.steps import score  # noqa: F401

    tracking.client()
    mlflow.sklearn.load_model(model_uri)


def _ready(_: int) -> int:
    time.sleep(0.5)  # both workers must exist and be initialised before timing
    return os.getpid()


POOL = None


def limit(spec, snapshot: str, model_uri: str, breakdown: bool) -> dict:
    """predict_proba of the fitted pipeline on rows already in memory, cast as scoring casts them:
    in one call over all rows (the brief's limit) and in batch_rows slices (the same batches the
    shards stream; faster here, so the stricter ceiling). Optionally where the time goes."""
    import mlflow.sklearn
    import pandas as pd

    from nightshift.steps import features

    model = mlflow.sklearn.load_model(model_uri)
    inputs = features.model_input(pd.read_parquet(snapshot), list(getattr(model, "feature_names_in_", spec.feature_columns)))
    n, step = len(inputs), spec.scoring.batch_rows
    with common.Timer() as whole:
        proba = model.predict_proba(inputs)[:, 1]
    with common.Timer() as batched:
        for start in range(0, n, step):
            model.predict_proba(inputs.iloc[start:start + step])
    out = {"seconds": min(whole.seconds, batched.seconds), "one_call_seconds": whole.seconds, "batched_seconds": batched.seconds,
           "rows": n, "proba": proba}
    if breakdown:
        with common.Timer() as transform:
            matrix = model[:-1].transform(inputs)
        booster = model[-1].get_booster()
        with common.Timer() as trees:
            booster.inplace_predict(matrix)
        out.update({"transform_seconds": transform.seconds, "trees_seconds": trees.seconds})
    return out


def naive_peer(spec, snapshot: str, model_ref: dict, database: Path, same_columns: bool) -> dict:
    """read_parquet -> pyfunc predict -> to_sql(append) into SQLite."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    import sqlalchemy

    from nightshift.steps import features, score

    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    with common.Timer() as t:
        rows = pd.read_parquet(snapshot)
        model = mlflow.pyfunc.load_model(model_ref["model_uri"])
        # the casts the model's signature demands (ints as floats, naive UTC times), or pyfunc refuses the rows
        proba = np.asarray(model.predict(features.model_input(rows, spec.feature_columns)))[:, 1]
        out = pd.DataFrame({"APPLICATION_ID": rows["application_id"], "SCORE": proba})
        if same_columns:
            out["LABEL"] = (proba >= spec.scoring.threshold).astype("int64")
            out["MODEL_NAME"] = model_ref["model_name"]
            out["MODEL_VERSION"] = model_ref["model_version"]
            out["MLFLOW_RUN_ID"] = model_ref["mlflow_run_id"]
            out["PARTITION_DATE"] = rows[score.PARTITION_COLUMN]
            out["DAG_RUN_ID"] = "bench__naive"
            out["SCORED_AT"] = datetime.now(timezone.utc)
        out.to_sql("scores", engine, if_exists="append", index=False)
    with engine.connect() as con:
        written = con.execute(sqlalchemy.text("SELECT COUNT(*) FROM scores")).scalar()
    engine.dispose()
    return {"seconds": t.seconds, "rows": int(written), "columns": len(out.columns)}


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def check_same_scores(warehouse: Path, proba, sample: int = 2000) -> float:
    """Largest |SCORE - limit's probability| over a sample of ids: the paths compute the same thing."""
    import duckdb
    import numpy as np

    n = len(proba)
    picks = sorted({int(i) for i in np.linspace(0, n - 1, min(sample, n))})
    ids = [f"A{common.SCORE_DAY:%Y%m%d}-{i:010d}" for i in picks]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        got = dict(con.execute("SELECT APPLICATION_ID, SCORE FROM CREDIT_DEFAULT_SCORES WHERE APPLICATION_ID IN "
                               "(SELECT UNNEST(?::VARCHAR[]))", [ids]).fetchall())
    return float(max(abs(got[f"A{common.SCORE_DAY:%Y%m%d}-{i:010d}"] - proba[i]) for i in picks))


def main(argv: list[str] | None = None) -> None:
    global POOL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--train-rows", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2, help="process pool size for the parallel variant (0 = skip)")
    parser.add_argument("--repeats", type=int, default=1, help="best of N for the Nightshift and limit variants")
    parser.add_argument("--naive-repeats", type=int, default=1, help="best of N for the naive peers (slow, single-threaded)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    with common.workdir("scoring", keep=args.keep) as work:
        common.isolate(work)
        common.quiet_logs()
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        import duckdb  # noqa: F401 - warm imports: no clock pays them
        import mlflow.pyfunc  # noqa: F401
        import sqlalchemy  # noqa: F401

        spec = common.spec()
        with common.Timer() as setup:
            model_ref = common.train_champion(spec, args.train_rows)
            model_ref.pop("fitted")
            snapshot = str(common.write_snapshot(work / "snapshot.parquet", args.rows, spec.scoring.batch_rows, spec.scoring.shards))

        _warm(model_ref["model_uri"])
        sequential = best([nightshift_path(spec, snapshot, model_ref, work / f"seq{i}", work / f"seq{i}.duckdb", 1)
                           for i in range(args.repeats)])
        pooled = None
        if args.workers > 1:
            POOL = ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn"), initializer=_warm,
                                       initargs=(model_ref["model_uri"],))
            list(POOL.map(_ready, range(args.workers)))
            pooled = best([nightshift_path(spec, snapshot, model_ref, work / f"pool{i}", work / f"pool{i}.duckdb", args.workers)
                           for i in range(args.repeats)])
            POOL.shutdown()
        limits = [limit(spec, snapshot, model_ref["model_uri"], breakdown=i == 0) for i in range(args.repeats)]
        max_diff = check_same_scores(work / "seq0.duckdb", limits[0]["proba"])
        lim = {**best(limits), "one_call_seconds": min(x["one_call_seconds"] for x in limits),
               "batched_seconds": min(x["batched_seconds"] for x in limits),
               "transform_seconds": limits[0]["transform_seconds"], "trees_seconds": limits[0]["trees_seconds"]}
        for other in limits:
            other.pop("proba")
        naive_same = best([naive_peer(spec, snapshot, model_ref, work / f"naive-same{i}.sqlite", True) for i in range(args.naive_repeats)])
        naive_min = best([naive_peer(spec, snapshot, model_ref, work / f"naive-min{i}.sqlite", False) for i in range(args.naive_repeats)])

    for name, run in [("nightshift", sequential), ("pool", pooled), ("limit", lim), ("naive", naive_same), ("naive_min", naive_min)]:
        if run is not None and run["rows"] != args.rows:
            raise SystemExit(f"{name} handled {run['rows']} rows, expected {args.rows}")
    r = {k: common.rate(args.rows, v["seconds"]) for k, v in
         [("nightshift", sequential), ("limit", lim), ("naive", naive_same), ("naive_min", naive_min)]}
    figures = {
        "rows": args.rows, "train_rows": args.train_rows, "shards": sequential["shards"], "batch_rows": spec.scoring.batch_rows,
        "repeats": args.repeats, "naive_repeats": args.naive_repeats, "setup_seconds": round(setup.seconds, 2),
        "nightshift_seconds": round(sequential["seconds"], 3), "nightshift_rows_per_s": r["nightshift"],
        "nightshift_score_seconds": round(sequential["score_seconds"], 3),
        "nightshift_publish_seconds": round(sequential["publish_seconds"], 3),
        "limit_seconds": round(lim["seconds"], 3), "limit_rows_per_s": r["limit"],
        "limit_one_call_seconds": round(lim["one_call_seconds"], 3), "limit_batched_seconds": round(lim["batched_seconds"], 3),
        "limit_transform_seconds": round(lim["transform_seconds"], 3), "limit_trees_seconds": round(lim["trees_seconds"], 3),
        "naive_seconds": round(naive_same["seconds"], 3), "naive_rows_per_s": r["naive"], "naive_columns": naive_same["columns"],
        "naive_min_seconds": round(naive_min["seconds"], 3), "naive_min_rows_per_s": r["naive_min"],
        "naive_min_columns": naive_min["columns"],
        "ratio_nightshift_to_limit": round(r["nightshift"] / r["limit"], 3),
        "ratio_nightshift_to_naive": round(r["nightshift"] / r["naive"], 3),
        "ratio_nightshift_to_naive_min": round(r["nightshift"] / r["naive_min"], 3),
        "max_abs_score_diff_vs_limit": max_diff,
    }
    if pooled:
        pool_rate = common.rate(args.rows, pooled["seconds"])
        figures.update({
            "pool_workers": args.workers, "pool_seconds": round(pooled["seconds"], 3), "pool_rows_per_s": pool_rate,
            "pool_score_seconds": round(pooled["score_seconds"], 3), "pool_publish_seconds": round(pooled["publish_seconds"], 3),
            "ratio_pool_to_limit": round(pool_rate / r["limit"], 3), "ratio_pool_to_naive": round(pool_rate / r["naive"], 3),
            "ratio_pool_to_naive_min": round(pool_rate / r["naive_min"], 3),
        })
    common.emit("scoring", figures)


if __name__ == "__main__":
    main()
