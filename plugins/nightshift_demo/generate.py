"""Deterministic synthetic data for the demo pipelines.

Every dataset is a pure function of ``(seed, day)`` so that re-running the demo
reproduces byte-for-byte the same inputs, and a day file can be regenerated in
isolation.  Everything is vectorised with numpy: one Python iteration per *day*,
never per row.

Dtype conventions (pandas 3):

* string columns use pandas' default inferred string dtype, ``"str"``
  (``pd.StringDtype(na_value=np.nan)``); we never call ``astype("string")``;
* integer columns are ``int64``; floats are ``float64`` with ``NaN`` for nulls;
* event times are ``datetime64[us, UTC]``.

Datasets:

* credit applications - daily parquet partitions, binary label ``defaulted``
  (classification example);
* house sales - one CSV with target ``price`` (regression training example);
* house listings - daily CSVs without ``price`` (regression scoring example).
"""

from __future__ import annotations

import argparse
import datetime
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

MICROS_PER_DAY = 86_400 * 1_000_000

# --- credit applications -----------------------------------------------------

GRADES = np.array(list("ABCDEFG"))
GRADE_MIX = [0.12, 0.28, 0.27, 0.16, 0.09, 0.05, 0.03]
DRIFTED_GRADE_MIX = [0.04, 0.13, 0.23, 0.23, 0.17, 0.12, 0.08]
# Additive log-odds of default per grade: the grade is a (noisy) risk rating.
GRADE_RISK = dict(zip(GRADES, [-1.5, -0.8, 0.0, 0.6, 1.2, 1.7, 2.2]))
REGIONS = np.array(["north", "south", "east", "west", "central"])
REGION_MIX = [0.22, 0.24, 0.18, 0.20, 0.16]
HOME_OWNERSHIP = np.array(["rent", "own", "mortgage"])
HOME_OWNERSHIP_MIX = [0.40, 0.20, 0.40]

# --- houses ------------------------------------------------------------------

# Neighbourhood -> log price premium, so location matters as it does in reality.
NEIGHBORHOOD_PREMIUM = {
    "riverside": 0.35,
    "old_town": 0.25,
    "hillcrest": 0.15,
    "midtown": 0.0,
    "eastgate": -0.15,
    "mill_district": -0.30,
}
CONDITION_PREMIUM = {"poor": -0.25, "fair": -0.10, "good": 0.0, "excellent": 0.12}
CONDITION_MIX = [0.08, 0.25, 0.47, 0.20]
NEWEST_YEAR = 2025

# Distinct stream tags so per-day credit and listing draws never share numbers.
_LISTINGS_STREAM = 1


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """Seed a generator from the seed plus keys, so each day is independent and reproducible."""
    return np.random.default_rng([seed, *keys])


def _jittered(rng: np.random.Generator, rows: int) -> int:
    """Vary the row count by up to ±10% so daily volumes look organic."""
    spread = rows // 10
    return int(rows + rng.integers(-spread, spread + 1))


def _ids(prefix: str, n: int, width: int) -> pd.Series:
    """Return zero-padded ids ``prefix00001`` ... without a per-row Python loop."""
    numbers = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(width)
    return prefix + numbers


def _timestamps_within(rng: np.random.Generator, day: datetime.date, n: int) -> pd.DatetimeIndex:
    """Uniform, sorted UTC event times inside ``day``, so ids follow arrival order."""
    offsets = np.sort(rng.integers(0, MICROS_PER_DAY, n)).astype("timedelta64[us]")
    return pd.DatetimeIndex(np.datetime64(day, "us") + offsets).tz_localize("UTC")


def _with_nulls(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """Blank out roughly ``rate`` of the values, as real feeds have missing fields."""
    return np.where(rng.random(len(values)) < rate, np.nan, values)


def _days(start: datetime.date, end: datetime.date) -> Iterator[datetime.date]:
    """Yield every day from ``start`` to ``end`` inclusive."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    for offset in range((end - start).days + 1):
        yield start + datetime.timedelta(days=offset)


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write via a hidden temp file and rename, so a crash never leaves a half file behind.

    The dot prefix keeps readers that scan the directory (pyarrow datasets)
    from picking up the temp file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


# --- credit applications -----------------------------------------------------


def _credit_features(rng: np.random.Generator, n: int, drift: bool) -> pd.DataFrame:
    """Draw applicant features; ``drift`` makes applicants poorer and riskier."""
    income = rng.lognormal(np.log(55_000), 0.45, n) * (0.6 if drift else 1.0)
    age = np.clip(np.rint(rng.normal(41, 12, n)), 18, 80).astype(np.int64)
    # Nobody has worked longer than they have been an adult.
    employment_years = np.minimum(np.rint(rng.exponential(6, n)), np.minimum(age - 18, 40))
    utilization = rng.beta(3.5, 2.0, n) if drift else rng.beta(2.0, 3.0, n)
    return pd.DataFrame(
        {
            "income": income.round(2),
            "loan_amount": np.maximum(income * rng.lognormal(np.log(0.25), 0.5, n), 500).round(2),
            "debt": (income * rng.gamma(2.0, 0.12, n) * (rng.random(n) > 0.1)).round(2),
            "utilization": utilization.round(4),
            "employment_years": employment_years.astype(np.int64),
            "age": age,
            "grade": rng.choice(GRADES, n, p=DRIFTED_GRADE_MIX if drift else GRADE_MIX),
            "region": rng.choice(REGIONS, n, p=REGION_MIX),
            "home_ownership": rng.choice(HOME_OWNERSHIP, n, p=HOME_OWNERSHIP_MIX),
        }
    )


def _default_log_odds(frame: pd.DataFrame) -> np.ndarray:
    """Log-odds of default: a known logistic model, so a classifier has something to learn."""
    debt_to_income = frame["debt"] / frame["income"]
    loan_to_income = frame["loan_amount"] / frame["income"]
    return (
        -2.4
        + 4.0 * (debt_to_income - 0.24)
        + 3.5 * (frame["utilization"] - 0.4)
        + 1.0 * (loan_to_income - 0.28)
        + frame["grade"].map(GRADE_RISK)
        - 0.08 * (frame["employment_years"] - 5)
        + 0.25 * (frame["home_ownership"] == "rent")
    ).to_numpy(dtype=float)


def credit_applications_for_day(
    day: datetime.date, seed: int = 7, rows: int = 200, drift: bool = False
) -> pd.DataFrame:
    """Synthetic credit applications received on ``day``; identical for the same (day, seed).

    Columns: application_id, application_date (datetime64[us, UTC]), income,
    loan_amount, debt, utilization, employment_years, age, grade, region,
    home_ownership, defaulted.  Strings use pandas' inferred ``str`` dtype;
    ``income`` (~2%) and ``utilization`` (~3%) contain NaNs.

    ``defaulted`` is drawn from a logistic model of the features (base rate
    ~15%).  In reality that label only matures months later; we write it in the
    same row anyway and let the pipeline's ``label_delay_days`` decide when a
    row's label may be used.

    ``drift=True`` scales income by 0.6, pushes utilization up and shifts the
    grade mix towards worse grades, so PSI-style drift checks fire.
    """
    rng = _rng(seed, day.toordinal())
    n = _jittered(rng, rows)
    frame = _credit_features(rng, n, drift)
    frame.insert(0, "application_date", _timestamps_within(rng, day, n))
    frame.insert(0, "application_id", _ids(f"A{day:%Y%m%d}-", n, width=5))
    # Labels come from the complete features; the nulls are a reporting artefact.
    probability = 1 / (1 + np.exp(-_default_log_odds(frame)))
    frame["defaulted"] = (rng.random(n) < probability).astype(np.int64)
    frame["income"] = _with_nulls(rng, frame["income"].to_numpy(), 0.02)
    frame["utilization"] = _with_nulls(rng, frame["utilization"].to_numpy(), 0.03)
    return frame


def write_credit_applications(
    root: Path,
    start: datetime.date,
    end: datetime.date,
    seed: int = 7,
    rows_per_day: int = 200,
    drift_from: datetime.date | None = None,
    *,
    skip_existing: bool = False,
) -> list[Path]:
    """Write ``root/dt=YYYY-MM-DD/part-0.parquet`` per day in [start, end]; return paths written.

    Existing day files are overwritten (regeneration is idempotent) unless
    ``skip_existing`` is set, which makes re-running the demo fast.  Days on
    or after ``drift_from`` are generated with ``drift=True``.
    """
    written = []
    for day in _days(start, end):
        path = Path(root) / f"dt={day:%Y-%m-%d}" / "part-0.parquet"
        if skip_existing and path.exists():
            continue
        drift = drift_from is not None and day >= drift_from
        frame = credit_applications_for_day(day, seed, rows_per_day, drift)
        _write_atomically(path, lambda tmp: frame.to_parquet(tmp, engine="pyarrow", index=False))
        written.append(path)
    return written


# --- houses --------------------------------------------------------------------


def _house_features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Draw plausible, mutually consistent house attributes (bigger houses have more rooms)."""
    sqft = np.clip(rng.lognormal(np.log(1700), 0.35, n), 450, 7000).round(-1)
    bedrooms = np.clip(np.rint(sqft / 550 + rng.normal(0, 0.6, n)), 1, 7).astype(np.int64)
    bathrooms = np.clip(np.rint((0.5 + 0.55 * bedrooms + rng.normal(0, 0.4, n)) * 2) / 2, 1, 5)
    house_age = np.clip(np.rint(rng.gamma(2.0, 18.0, n)), 0, 125)
    return pd.DataFrame(
        {
            "sqft": sqft,
            "bedrooms": bedrooms,
            "bathrooms": bathrooms,
            "year_built": (NEWEST_YEAR - house_age).astype(np.int64),
            "neighborhood": rng.choice(np.array(list(NEIGHBORHOOD_PREMIUM)), n),
            "condition": rng.choice(np.array(list(CONDITION_PREMIUM)), n, p=CONDITION_MIX),
            "lot_size": rng.lognormal(np.log(6500), 0.5, n).round(-1),
        }
    )


def _house_price(rng: np.random.Generator, houses: pd.DataFrame) -> np.ndarray:
    """Price as a noisy multiplicative function of the features (computed before lot nulls)."""
    log_premium = (
        houses["neighborhood"].map(NEIGHBORHOOD_PREMIUM)
        + houses["condition"].map(CONDITION_PREMIUM)
        + 0.04 * (houses["bathrooms"] - 2)
        - 0.002 * (NEWEST_YEAR - houses["year_built"])
        + 0.08 * np.log(houses["lot_size"] / 6500)
    ).to_numpy(dtype=float)
    noise = rng.normal(0, 0.17, len(houses))
    return (185 * houses["sqft"].to_numpy() * np.exp(log_premium + noise)).round(-2)


def house_sales(seed: int = 7, rows: int = 3000) -> pd.DataFrame:
    """Historical house sales with target ``price`` for the regression example.

    Columns: sale_id ("H000001"...), sqft, bedrooms, bathrooms (halves),
    year_built, neighborhood, condition, lot_size (~2% NaN), price.  No
    event-time column: it is a single static training table.
    """
    rng = _rng(seed)
    houses = _house_features(rng, rows)
    houses["price"] = _house_price(rng, houses)
    houses["lot_size"] = _with_nulls(rng, houses["lot_size"].to_numpy(), 0.02)
    houses.insert(0, "sale_id", _ids("H", rows, width=6))
    return houses


def write_house_sales(path: Path, seed: int = 7, rows: int = 3000) -> Path:
    """Write the house sales table as one CSV file (overwriting it) and return its path."""
    path = Path(path)
    frame = house_sales(seed, rows)
    _write_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))
    return path


def house_listings_for_day(day: datetime.date, seed: int = 7, rows: int = 150) -> pd.DataFrame:
    """Houses listed on ``day`` - the sales columns minus ``price`` - to be scored by the model.

    ``sale_id`` ("L20250101-0001", the sale being priced; the spec's entity key) is unique across days; output is identical
    for the same (day, seed).
    """
    rng = _rng(seed, day.toordinal(), _LISTINGS_STREAM)
    n = _jittered(rng, rows)
    houses = _house_features(rng, n)
    houses["lot_size"] = _with_nulls(rng, houses["lot_size"].to_numpy(), 0.02)
    houses.insert(0, "sale_id", _ids(f"L{day:%Y%m%d}-", n, width=4))
    return houses


def write_house_listings(
    root: Path,
    start: datetime.date,
    end: datetime.date,
    seed: int = 7,
    rows_per_day: int = 150,
    *,
    skip_existing: bool = False,
) -> list[Path]:
    """Write ``root/YYYY-MM-DD.csv`` for each day in [start, end]; return the paths written.

    Overwrites existing files unless ``skip_existing`` is set.
    """
    written = []
    for day in _days(start, end):
        path = Path(root) / f"{day:%Y-%m-%d}.csv"
        if skip_existing and path.exists():
            continue
        frame = house_listings_for_day(day, seed, rows_per_day)
        _write_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))
        written.append(path)
    return written


# --- command line ------------------------------------------------------------------


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``generate`` options; the caller owns the parser (e.g. a sub-command)."""
    date = datetime.date.fromisoformat
    parser.add_argument("--start", type=date, required=True, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", type=date, required=True, help="last day (inclusive)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--rows-per-day", type=int, default=200, help="credit applications per day (±10%%)"
    )
    parser.add_argument(
        "--drift-from", type=date, default=None, help="drift credit data from this day on"
    )
    parser.add_argument("--root", type=Path, default=Path("data/landing"))
    parser.add_argument("--force", action="store_true", help="regenerate files that already exist")


def _rows_in(paths: list[Path]) -> int:
    """Count data rows in written parquet/CSV files, cheaply (metadata or line count)."""
    total = 0
    for path in paths:
        if path.suffix == ".parquet":
            total += pq.read_metadata(path).num_rows
        else:
            with path.open() as lines:
                total += sum(1 for _ in lines) - 1
    return total


def _report(name: str, written: list[Path], expected: int, target: Path) -> None:
    """Print one summary line per dataset so `make demo` output stays short."""
    print(
        f"{name}: {len(written)} files written, {expected - len(written)} skipped, "
        f"{_rows_in(written):,} rows -> {target}"
    )


def run_generate(args: argparse.Namespace) -> None:
    """Generate every demo dataset under ``args.root``; existing files are kept unless --force."""
    root = Path(args.root)
    skip = not args.force
    days = (args.end - args.start).days + 1

    credit_root = root / "credit_applications"
    credit = write_credit_applications(
        credit_root, args.start, args.end, args.seed, args.rows_per_day, args.drift_from,
        skip_existing=skip,
    )
    _report("credit_applications", credit, days, credit_root)

    sales_path = root / "house_sales.csv"
    sales = [] if skip and sales_path.exists() else [write_house_sales(sales_path, args.seed)]
    _report("house_sales", sales, 1, sales_path)

    listings_root = root / "house_listings"
    listings = write_house_listings(
        listings_root, args.start, args.end, args.seed, skip_existing=skip
    )
    _report("house_listings", listings, days, listings_root)
