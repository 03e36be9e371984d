"""Training overhead: the train step's fit against a bare XGBoost fit on the same matrix.

  train step  nightshift.steps.train.fit_pipeline(spec, rows): model_input casts, the feature
              transformer's fit and transform (derived columns, calendar parts, impute, scale,
              one-hot) and the XGBoost fit, as one scikit-learn Pipeline;
  bare        make_estimator(spec).fit(X, y) on X already transformed by that same fitted
              transformer (transformed outside the clock): the same estimator and parameters.
`--rows` labelled rows from the demo generator; best of `--repeats` interleaved fits each.
Usage: python benchmarks/bench_training.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import common


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    common.quiet_logs()
    import sklearn.pipeline  # noqa: F401 - imports outside every clock
    import xgboost  # noqa: F401

    from nightshift.steps import features, train

    spec = common.spec()
    rows = common.training_rows(args.rows)
    y = train.target_values(spec, rows)

    inputs = features.model_input(rows, spec.feature_columns)
    step_times, bare_times = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine
        with common.Timer() as t:
            fitted = train.fit_pipeline(spec, rows)
        step_times.append(t.seconds)
        matrix = fitted[:-1].transform(inputs)  # what the pipeline handed its estimator
        estimator = train.make_estimator(spec)
        with common.Timer() as t:
            estimator.fit(matrix, y)
        bare_times.append(t.seconds)

    transformer = features.build_transformer(spec)
    with common.Timer() as fit_transform:
        transformer.fit_transform(inputs, y)

    step, bare = min(step_times), min(bare_times)  # contention only ever adds time: best of N
    common.emit("training", {
        "rows": len(rows), "features_in": len(spec.feature_columns), "matrix_columns": int(matrix.shape[1]),
        "estimator": f"{spec.model.flavor} {dict(spec.model.params)}", "repeats": args.repeats,
        "train_step_seconds": round(step, 3), "bare_fit_seconds": round(bare, 3),
        "features_fit_transform_seconds": round(fit_transform.seconds, 3),
        "ratio_train_step_to_bare": round(step / bare, 3),
        "train_step_all_seconds": [round(s, 3) for s in step_times], "bare_fit_all_seconds": [round(s, 3) for s in bare_times],
    })


if __name__ == "__main__":
    main()
