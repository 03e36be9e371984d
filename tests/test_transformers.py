"""The categorical branch of the feature transformer against the chain it replaced, on real data.

New models turn categories into text with `__missing__` for a missing value in one step (_TextOrMissing); models
trained before kept _AsText (None for missing) followed by scikit-learn's constant imputer. Both must give the same
matrix, fitted on the same rows: ISLP's `Wage` (3,000 workers, seven text columns), with missing and unseen values.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline as SkPipeline

from nightshift.ml import transformers
from nightshift.spec import find_spec

TEXT = ["maritl", "race", "education", "region", "jobclass", "health", "health_ins"]


@pytest.fixture(scope="module")
def wage() -> pd.DataFrame:
    """ISLP/data/Wage.csv from the installed wheel (found without importing ISLP, whose imports need torch)."""
    found = importlib.util.find_spec("ISLP")
    frame = pd.read_csv(Path(found.origin).parent / "data" / "Wage.csv")[TEXT]
    frame.loc[frame.index[::37], "region"] = None  # missing values, in training and in new rows
    frame.loc[frame.index[5::53], "health"] = np.nan
    frame["jobclass"] = frame["jobclass"].astype("category")  # a reader's categorical, not text
    return frame


def _spec(encode: str, max_categories: int | None = None):
    spec = find_spec("credit_default")
    categorical = spec.features.categorical.model_copy(update={"encode": encode, "max_categories": max_categories})
    return spec.model_copy(update={"features": spec.features.model_copy(update={"categorical": categorical})})


def _previous_chain(steps: list) -> SkPipeline:
    """The branch as models trained before _TextOrMissing hold it: _AsText, the constant imputer, the same encoder."""
    impute = SimpleImputer(strategy="constant", fill_value=transformers.MISSING_CATEGORY, missing_values=None)
    return SkPipeline([("as_text", transformers._AsText()), ("impute", impute), ("encode", steps[-1][1])])


@pytest.mark.parametrize("encode,max_categories", [("onehot", None), ("onehot", 3), ("ordinal", None)])
def test_one_step_text_gives_the_matrix_of_the_previous_chain(wage, encode, max_categories):
    steps = transformers._categorical_steps(_spec(encode, max_categories))
    assert [name for name, _ in steps] == ["as_text", "encode"]
    fit_rows, new_rows = wage.iloc[:2000], wage.iloc[2000:].copy()
    new_rows.iloc[:6, 0] = "9. Never seen in training"
    current = SkPipeline(steps).fit(fit_rows)
    previous = _previous_chain(transformers._categorical_steps(_spec(encode, max_categories))).fit(fit_rows)
    got, expected = current.transform(new_rows), previous.transform(new_rows)
    np.testing.assert_array_equal(got, expected)
    assert list(current.get_feature_names_out(TEXT)) == list(previous.get_feature_names_out(TEXT))
    if encode == "onehot":
        names = list(current.get_feature_names_out(TEXT))
        assert "region___missing__" in names or max_categories  # missing is a category of its own
        assert got.sum(axis=1).min() >= len(TEXT) - 1  # every row sets one column per feature, the unseen one aside
    else:
        assert (got == -1).any()  # unseen values get the unknown code, as before


def test_text_or_missing_only_changes_the_missing_marker(wage):
    as_text, filled = transformers._AsText().transform(wage), transformers._TextOrMissing().transform(wage)
    missing = np.vectorize(lambda v: v is None)(as_text)
    assert missing.sum() == wage.isna().sum().sum() > 0
    assert (filled[missing] == transformers.MISSING_CATEGORY).all()
    assert (filled[~missing] == as_text[~missing]).all()
