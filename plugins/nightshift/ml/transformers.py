"""The feature transformer a spec declares, as scikit-learn objects (fit on train, apply the same at scoring).

Derived arithmetic columns, calendar parts, then one ColumnTransformer branch per column kind. The
fitted transformer ships inside the model (one sklearn Pipeline), so scoring applies exactly what
training fitted. Plain scikit-learn: no I/O, no Airflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder

from nightshift.spec import Pipeline, expressions

if TYPE_CHECKING:
    import pandas as pd


class DerivedColumns(TransformerMixin, BaseEstimator):
    """Adds derived arithmetic features and calendar parts of datetime columns (stateless)."""

    def __init__(self, derived: tuple[tuple[str, str], ...] = (), datetime_parts: tuple[tuple[str, tuple[str, ...]], ...] = ()):
        self.derived = derived
        self.datetime_parts = datetime_parts

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn's naming
        return self

    def transform(self, X):  # noqa: N803
        import pandas as pd

        added = {name: expressions.evaluate(expr, X) for name, expr in self.derived}
        for column, parts in self.datetime_parts:
            times = pd.to_datetime(X[column], utc=True)
            for part in parts:
                added[f"{column}_{part}"] = getattr(times.dt, part).astype("float64").to_numpy()
        return X.assign(**added) if added else X

    def get_feature_names_out(self, input_features=None):
        names = [name for name, _ in self.derived]
        names += [f"{c}_{p}" for c, parts in self.datetime_parts for p in parts]
        return [*(input_features or []), *names]


def model_input(frame: "pd.DataFrame", columns: list[str]) -> "pd.DataFrame":
    """The columns a model reads, in MLflow-friendly types: naive UTC datetimes, float integers.

    MLflow signatures reject time-zone-aware datetimes and integer columns that may hold nulls
    at scoring time, so training and scoring hand the model the same normalised frame.
    """
    import pandas as pd

    out = frame[columns].copy()
    for name in columns:
        dtype = out[name].dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[name] = out[name].dt.tz_convert("UTC").dt.tz_localize(None)
        elif pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            out[name] = out[name].astype("float64")
    return out


def _numeric_steps(spec: Pipeline) -> list:
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    n = spec.features.numeric
    steps = []
    if n.impute != "none":
        strategy = "constant" if n.impute == "zero" else n.impute
        imputer = _MedianImputer if strategy == "median" else SimpleImputer
        steps.append(("impute", imputer(strategy=strategy, fill_value=0.0, keep_empty_features=True)))
    scalers = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}
    if n.scale in scalers:
        steps.append(("scale", scalers[n.scale]()))
    return steps


class _MedianImputer(SimpleImputer):
    """SimpleImputer(strategy="median") whose fit takes each float column's median with np.nanmedian (a partition per
    column) instead of sorting a masked copy of the whole matrix (np.ma.median): the same statistics_
    (tests/test_transformers.py), and the larger part of the feature transformer's fit on 200k rows gone. Anything
    else (other strategies, other missing markers, non-float data) is SimpleImputer's own fit."""

    def _dense_fit(self, X, strategy, missing_values, fill_value):  # noqa: N803 - scikit-learn's naming
        import warnings

        import numpy as np

        nan_marker = isinstance(missing_values, float) and np.isnan(missing_values)
        if strategy != "median" or X.dtype.kind != "f" or not nan_marker:
            return super()._dense_fit(X, strategy, missing_values, fill_value)
        super()._fit_indicator(np.isnan(X))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: "All-NaN slice encountered"
            median = np.nanmedian(X, axis=0)
        median[np.isnan(median)] = 0 if self.keep_empty_features else np.nan
        return median


def _categorical_steps(spec: Pipeline) -> list:
    from sklearn.preprocessing import OrdinalEncoder

    c = spec.features.categorical
    if c.encode == "onehot":
        unknown = "infrequent_if_exist" if c.max_categories else "ignore"
        settings = dict(handle_unknown=unknown if c.unseen == "ignore" else "error", sparse_output=False)
        if not c.max_categories:
            return [("encode", _TextOneHot(**settings))]  # text and indicators in one step
        encoder = OneHotEncoder(max_categories=c.max_categories, **settings)
    elif c.unseen == "ignore":
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
    else:
        encoder = OrdinalEncoder()
    return [("as_text", _TextOrMissing()), ("encode", encoder)]


MISSING_CATEGORY = "__missing__"  # a missing category is a category of its own


class _AsText(TransformerMixin, BaseEstimator):
    """Categories as Python objects with None for missing, whatever dtype the reader produced. Models trained before
    _TextOrMissing follow it with a constant imputer; kept so they still load and score the same."""

    fill = None

    def fit(self, X, y=None):  # noqa: N803
        return self

    def transform(self, X):  # noqa: N803
        import numpy as np
        import pandas as pd

        frame = pd.DataFrame(X)
        out = np.empty(frame.shape, dtype=object)
        for i in range(frame.shape[1]):
            column = frame.iloc[:, i]
            if isinstance(column.dtype, pd.StringDtype):  # already text: same values, without a str() round trip (~6x faster)
                out[:, i] = column.to_numpy(dtype=object, na_value=self.fill)
            else:
                values = column.astype(object).where(column.notna(), None).to_numpy(dtype=object)
                out[:, i] = np.where(values == None, self.fill, values.astype(str))  # noqa: E711
        return out

    def get_feature_names_out(self, input_features=None):
        return input_features


class _TextOrMissing(_AsText):
    """Categories as Python strings with MISSING_CATEGORY for a missing value: _AsText and the constant imputer that
    followed it, in one pass and the same matrix. The imputer's input checks cost more than the fill (0.16 s of a
    0.82 s transform per 1M rows, docs/benchmarks.md)."""

    fill = MISSING_CATEGORY


class _TextOneHot(OneHotEncoder):
    """_TextOrMissing and a dense OneHotEncoder as one step (new models, one-hot without infrequent categories).

    Fit is OneHotEncoder's on _TextOrMissing's text, so the categories, names and matrix are the two-step chain's
    (tests/test_transformers.py). Transform looks each column's text up with Arrow's `index_in` and sets the ones in
    place: text the reader gave as Arrow-backed strings never becomes one Python string per row, and no sparse matrix
    is built only to be densified. The two steps took 0.4 s of the champion's 1.3 s predict on 1M rows, this one
    0.07 s (docs/benchmarks.md). A setting it was not written for, or an unknown value with handle_unknown="error",
    takes the two-step path, and so OneHotEncoder's own errors."""

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn's naming
        return super().fit(_TextOrMissing().transform(X), y)

    def transform(self, X):  # noqa: N803
        import numpy as np
        import pandas as pd
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
        if not (frame.shape[1] == self.n_features_in_ and not self.sparse_output and self.drop is None
                and not self._infrequent_enabled and self.handle_unknown in ("ignore", "error")):
            return self._two_steps(X)
        width = sum(len(c) for c in self.categories_)
        out = np.zeros((len(frame), width), dtype=self.dtype)
        flat, starts = out.reshape(-1), np.arange(len(frame), dtype=np.int64) * width  # each row's first cell
        offset = 0
        for i, categories in enumerate(self.categories_):
            codes = _text_codes(frame.iloc[:, i], categories)
            if codes is None or (self.handle_unknown == "error" and (codes < 0).any()):
                return self._two_steps(X)
            flat[(starts + (offset + codes))[codes >= 0]] = 1  # one flat index per row: cheaper than out[rows, cols]
            offset += len(categories)
        return out

    def _two_steps(self, X):  # noqa: N803
        """_TextOrMissing, then OneHotEncoder's own transform (and its errors)."""
        return super().transform(_TextOrMissing().transform(X))


def _text_codes(column: "pd.Series", categories) -> "np.ndarray | None":
    """Each value's position among the fitted text categories (-1 where unseen), as _TextOrMissing's text would
    match them; None when the categories are not all text."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if not all(isinstance(c, str) for c in categories):
        return None
    if isinstance(column.dtype, pd.StringDtype):
        text = pa.array(column.array)  # Arrow-backed: no copy
        if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
            text = text.cast(pa.string())
        text = pc.fill_null(text, MISSING_CATEGORY)
    else:
        text = pa.array(_TextOrMissing().transform(column.to_frame())[:, 0], type=pa.string())
    found = pc.index_in(text, value_set=pa.array(list(categories), type=text.type))
    return pc.fill_null(found, -1).to_numpy()


def build_transformer(spec: Pipeline):
    """The unfitted feature transformer: derived columns, then one branch per column kind."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline as SkPipeline

    f = spec.features
    derived = tuple((d.name, d.expr) for d in f.derived)
    parts = tuple((c, tuple(f.datetime.parts)) for c in f.datetime.columns)
    numeric = [*f.numeric.columns, *(name for name, _ in derived), *(f"{c}_{p}" for c, ps in parts for p in ps)]
    branches = []
    if numeric:
        steps = _numeric_steps(spec)
        branches.append(("numeric", SkPipeline(steps) if steps else "passthrough", numeric))
    if f.categorical.columns:
        branches.append(("categorical", SkPipeline(_categorical_steps(spec)), list(f.categorical.columns)))
    if f.passthrough:
        branches.append(("passthrough", "passthrough", list(f.passthrough)))
    columns = ColumnTransformer(branches, remainder="drop", verbose_feature_names_out=True)
    return SkPipeline([("derive", DerivedColumns(derived, parts)), ("columns", columns)])
