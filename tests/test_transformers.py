"""The categorical branch of the feature transformer against the chain it replaced, on real data.

New models turn categories into text with `__missing__` for a missing value in one step (_TextOrMissing, and for one-hot
encoding text and indicators in one step, _TextOneHot); models
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
    assert [name for name, _ in steps] == (["encode"] if encode == "onehot" and not max_categories else ["as_text", "encode"])
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


@pytest.mark.parametrize("unseen", ["ignore", "error"])
def test_text_one_hot_gives_the_two_step_chains_matrix_names_and_errors(wage, unseen):
    """_TextOneHot (Arrow's lookup, ones set in place) against _TextOrMissing + scikit-learn's OneHotEncoder with the
    same settings, fitted on the same rows: the same matrix for Arrow-backed text, a reader's categorical, missing and
    unseen values; the same names; and for unseen="error" the same error."""
    from sklearn.preprocessing import OneHotEncoder

    settings = dict(handle_unknown=unseen, sparse_output=False)
    fit_rows, new_rows = wage.iloc[:2000], wage.iloc[2000:].copy()
    assert isinstance(new_rows["region"].dtype, pd.StringDtype) and isinstance(new_rows["jobclass"].dtype, pd.CategoricalDtype)
    fast = transformers._TextOneHot(**settings).fit(fit_rows)
    chain = SkPipeline([("as_text", transformers._TextOrMissing()), ("encode", OneHotEncoder(**settings))]).fit(fit_rows)
    got = fast.transform(new_rows)
    np.testing.assert_array_equal(got, chain.transform(new_rows))
    assert got.dtype == chain.transform(new_rows).dtype and got[:, :].sum() == len(new_rows) * len(TEXT)
    assert list(fast.get_feature_names_out(TEXT)) == list(chain.get_feature_names_out(TEXT))
    new_rows.iloc[:6, 0] = "9. Never seen in training"
    if unseen == "ignore":
        got = fast.transform(new_rows)
        np.testing.assert_array_equal(got, chain.transform(new_rows))
        assert got[:6, : len(fast.categories_[0])].sum() == 0  # an unseen value sets no column of its feature
    else:
        with pytest.raises(ValueError) as ours:
            fast.transform(new_rows)
        with pytest.raises(ValueError) as theirs:
            chain.transform(new_rows)
        assert str(ours.value) == str(theirs.value) and "Never seen" in str(ours.value)


def test_integer_codes_and_object_text_take_the_same_categories():
    """Category columns a reader gave as integer codes (float with nulls) or as Python objects match as the chain's text."""
    from sklearn.preprocessing import OneHotEncoder

    fit_rows = pd.DataFrame({"code": [1.0, 2.0, None, 3.0, 1.0], "word": pd.Series(["a", None, "b", "a", "c"], dtype=object)})
    new_rows = pd.DataFrame({"code": [3.0, None, 7.0, 2.0], "word": pd.Series(["c", "z", None, "a"], dtype=object)})
    fast = transformers._TextOneHot(handle_unknown="ignore", sparse_output=False).fit(fit_rows)
    chain = SkPipeline([("as_text", transformers._TextOrMissing()),
                        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]).fit(fit_rows)
    np.testing.assert_array_equal(fast.transform(new_rows), chain.transform(new_rows))
    assert list(fast.categories_[0]) == ["1.0", "2.0", "3.0", transformers.MISSING_CATEGORY]


def test_new_models_one_hot_in_one_step_and_keep_the_chain_for_infrequent_categories():
    assert [type(t).__name__ for _, t in transformers._categorical_steps(_spec("onehot"))] == ["_TextOneHot"]
    assert [type(t).__name__ for _, t in transformers._categorical_steps(_spec("onehot", 3))] == ["_TextOrMissing", "OneHotEncoder"]


@pytest.mark.parametrize("keep_empty", [True, False])
def test_median_imputer_learns_scikit_learns_medians(keep_empty):
    """_MedianImputer (np.nanmedian per column) against SimpleImputer(strategy="median") (a masked sort) on ISLP's
    Wage numbers with missing values planted, an even and an odd count of present values, and an all-missing column."""
    found = importlib.util.find_spec("ISLP")
    frame = pd.read_csv(Path(found.origin).parent / "data" / "Wage.csv")[["year", "age", "logwage", "wage"]].astype("float64")
    frame.loc[frame.index[::7], "age"] = np.nan
    frame.loc[frame.index[3::11], "wage"] = np.nan
    frame = frame.iloc[:2999]  # odd rows: some columns keep an odd count of values, others an even one
    frame["empty"] = np.nan
    settings = dict(strategy="median", keep_empty_features=keep_empty)
    ours, theirs = transformers._MedianImputer(**settings).fit(frame), SimpleImputer(**settings).fit(frame)
    assert {int(c) % 2 for c in frame.notna().sum()} == {0, 1}
    np.testing.assert_array_equal(ours.statistics_, theirs.statistics_)
    np.testing.assert_array_equal(ours.transform(frame), theirs.transform(frame))
    assert list(ours.get_feature_names_out()) == list(theirs.get_feature_names_out())
