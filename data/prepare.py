"""Turn a resolved source into canonical train/valid/test parquet files with DuckDB.

The SQL lives in ``sql/*.sql`` (one statement per file, values bound as parameters); this module
only decides which files to run, in which order, with which parameters, and turns bad data into
:class:`reclab.errors.InputError` messages that say how to fix it.

Pipeline, inside a scratch DuckDB database next to ``out_dir``:

1. source loader -> tables ``users``, ``items`` and ``raw_interactions`` (user_id, item_id, weight,
   ts [, features for user files]);
2. optional repeatable Bernoulli row sample -> ``sampled``;
3. time-window split (or, without timestamps, a seeded random per-user 80/10/10 split) ->
   ``assigned``;
4. features joined on -> view ``canonical``;
5. ``train.parquet``, ``valid.parquet``, ``test.parquet``, ``items.parquet``, ``users.parquet``
   written to a temporary directory and moved into ``out_dir`` only when all are done.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from data.files import feature_name, read_error_message, read_file_relation
from data.hm import HmSource, load_hm
from data.lastfm import LastFm360kSource, load_lastfm_360k
from data.movielens import MovieLens100kSource, MovieLensSource, load_movielens, load_movielens_100k
from data.online_retail import OnlineRetailSource, load_online_retail
from data.registry import (
    FileSource,
    Source,
    SyntheticSource,
)
from reclab.errors import InputError
from reclab.evidence import thin_window_caveats

logger = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
SPLITS: tuple[str, ...] = ("train", "valid", "test")
METADATA_FILES: tuple[str, ...] = ("items.parquet", "users.parquet")
OUTPUT_FILES: tuple[str, ...] = tuple(f"{s}.parquet" for s in SPLITS) + METADATA_FILES
DATE_FORMAT_HELP = "yyyy-mm-dd, e.g. 1998-03-07 (meaning 00:00 UTC)"
MAX_SEED = 2**63 - 1

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
    | {"HUGEINT", "UHUGEINT"}
)
_NUMERIC_TYPES = _INTEGER_TYPES | {"FLOAT", "DOUBLE"}
_TEXT_TIME_TYPES = frozenset(
    {
        "VARCHAR",
        "DATE",
        "TIMESTAMP",
        "TIMESTAMP_S",
        "TIMESTAMP_MS",
        "TIMESTAMP_NS",
        "TIMESTAMP WITH TIME ZONE",
    }
)


# --------------------------------------------------------------------------------------------
# SQL runner
# --------------------------------------------------------------------------------------------


def load_sql(name: str) -> str:
    """Return the text of ``sql/<name>``.

    Args:
        name: File name inside the ``sql`` directory, e.g. ``"split_bounds.sql"``.

    Returns:
        The SQL text.
    """
    return (SQL_DIR / name).read_text(encoding="utf-8")


def run_sql(
    con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Execute one SQL file with bound parameters.

    Args:
        con: DuckDB connection.
        name: File name inside the ``sql`` directory.
        params: Values for the file's ``$name`` parameters.

    Returns:
        The connection, positioned on the statement's result.
    """
    return con.execute(load_sql(name), params or {})


def _fetch_dict(cursor: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Return the single result row of ``cursor`` as a dict."""
    (row,) = cursor.fetchall()
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def _sample_sql(row_sampling: float, seed: int) -> str:
    """Return ``sample_rows.sql`` with its two literals filled in.

    DuckDB accepts only constants in ``USING SAMPLE`` (a ``$param`` there is a parser error), so
    this is the one place where values enter SQL text. They are validated here as a finite float
    strictly between 0 and 100 and a non-negative int, and rendered by ``repr``/``str`` of those
    Python numbers, which can only produce digits, ``.``, ``e`` and ``-``.
    """
    percent = float(row_sampling)
    if not (math.isfinite(percent) and 0.0 < percent < 100.0):
        raise InputError(f"row_sampling={row_sampling!r} must be a number in (0, 100) here.")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed={seed!r} must be an integer between 0 and {MAX_SEED}.")
    return (
        load_sql("sample_rows.sql")
        .replace("__ROW_SAMPLING_PERCENT__", repr(percent))
        .replace("__SEED__", str(int(seed)))
    )


def _connect(work: Path) -> duckdb.DuckDBPyConnection:
    """Open the scratch DuckDB database in ``work`` with a UTC session time zone."""
    db = str(work / "prepare.duckdb")
    # No extension downloads from a pipeline step (a failed attempt also costs seconds).
    config = {
        "temp_directory": str(work / "spill"),
        "autoinstall_known_extensions": False,
    }
    try:
        con = duckdb.connect(db, config={**config, "TimeZone": "UTC"})
    except duckdb.InvalidInputException:
        # Setting TimeZone needs the ICU extension; without it DuckDB's zone is always UTC,
        # which the check below confirms.
        con = duckdb.connect(db, config=config)
    run_sql(con, "session_settings.sql")
    tz = run_sql(con, "session_timezone.sql").fetchall()[0][0]
    if tz not in ("UTC", "Etc/UTC", "GMT", "Etc/GMT"):
        con.close()
        raise RuntimeError(f"DuckDB session time zone is {tz!r}, not UTC; cannot parse times.")
    return con


# --------------------------------------------------------------------------------------------
# Parameter validation (cheap, for the flow's start step)
# --------------------------------------------------------------------------------------------


def _parse_date(value: str | date | None, name: str) -> date | None:
    """Parse an optional ``yyyy-mm-dd`` date parameter (None or "" means not given)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        raise InputError(
            f"{name}={value!r} must be a date, not a datetime: use {DATE_FORMAT_HELP}."
        )
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DATE_RE.match(value.strip()):
        raise InputError(
            f"{name}={value!r} is not a date in the expected format {DATE_FORMAT_HELP}."
        )
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError as exc:
        raise InputError(
            f"{name}={value!r} is not a valid calendar date ({exc}); use {DATE_FORMAT_HELP}."
        ) from exc


def validate_split_params(
    row_sampling: float = 100.0,
    training_end_date: str | None = None,
    validation_end_date: str | None = None,
    *,
    seed: int | None = None,
) -> dict[str, Any]:
    """Check the sampling and split parameters without touching data.

    Args:
        row_sampling: Percent of rows to keep, in [0, 100]; 0 and 100 both mean no sampling.
        training_end_date: First day of the validation window, ``yyyy-mm-dd`` (00:00 UTC), or
            None / "" to derive it from the data.
        validation_end_date: First day of the test window, same format, or None / "".
        seed: Optional seed to check as well (an int in [0, 2**63 - 1]).

    Returns:
        Normalised values: ``row_sampling`` (float), ``sampling`` (bool: rows are sampled),
        ``training_end_date`` and ``validation_end_date`` (``yyyy-mm-dd`` or None).

    Raises:
        InputError: If row_sampling is not a number in [0, 100], a date is not ``yyyy-mm-dd``,
            validation_end_date is not after training_end_date, or the seed is invalid.
    """
    if isinstance(row_sampling, bool) or not isinstance(row_sampling, numbers.Real):
        raise InputError(
            f"row_sampling={row_sampling!r} must be a number: the percent of rows to keep, in "
            "[0, 100] (0 or 100 = keep all rows)."
        )
    percent = float(row_sampling)
    if not math.isfinite(percent) or not 0.0 <= percent <= 100.0:
        raise InputError(
            f"row_sampling={row_sampling!r} is outside [0, 100]: pass the percent of rows to "
            "keep, e.g. 10 for 10% (0 or 100 = keep all rows)."
        )
    if seed is not None and (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not 0 <= seed <= MAX_SEED
    ):
        raise InputError(f"seed={seed!r} must be an integer between 0 and {MAX_SEED}.")
    train_end = _parse_date(training_end_date, "training_end_date")
    valid_end = _parse_date(validation_end_date, "validation_end_date")
    if train_end is not None and valid_end is not None and valid_end <= train_end:
        raise InputError(
            f"validation_end_date={valid_end.isoformat()} must be after training_end_date="
            f"{train_end.isoformat()}: train is ts < training_end_date, valid is "
            "training_end_date <= ts < validation_end_date, test is the rest; swap or move them."
        )
    return {
        "row_sampling": percent,
        "sampling": 0.0 < percent < 100.0,
        "training_end_date": train_end.isoformat() if train_end else None,
        "validation_end_date": valid_end.isoformat() if valid_end else None,
    }


# --------------------------------------------------------------------------------------------
# Source loaders: create users, items and raw_interactions
# --------------------------------------------------------------------------------------------


def _load_synthetic(con: duckdb.DuckDBPyConnection, source: Source, local: Path) -> list[str]:
    """Load a generated synthetic dataset."""
    run_sql(con, "synthetic_users.sql", {"path": str(local / "users.parquet")})
    run_sql(con, "synthetic_items.sql", {"path": str(local / "items.parquet")})
    run_sql(con, "synthetic_interactions.sql", {"path": str(local / "interactions.parquet")})
    return []


def _id_expression(column: str, canonical: str, dtype: str, path: str) -> duckdb.Expression:
    """Select an id column: integers become BIGINT, strings stay VARCHAR."""
    expr = duckdb.ColumnExpression(column)
    if dtype in _INTEGER_TYPES:
        expr = expr.cast(duckdb.sqltype("BIGINT"))
    elif dtype == "UUID":
        expr = expr.cast(duckdb.sqltype("VARCHAR"))
    elif dtype != "VARCHAR":
        raise InputError(
            f"column {column!r} of {path} (mapped to {canonical}) has type {dtype}; ids must be "
            "integers or strings: convert the column, or map another one."
        )
    return expr.alias(canonical)


def _duckdb_message(exc: duckdb.Error) -> str:
    """The first lines of a DuckDB error, enough to locate the problem."""
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return " ".join(lines[:3]) if lines else type(exc).__name__


def _load_file(con: duckdb.DuckDBPyConnection, source: Source, local: Path) -> list[str]:
    """Load a user interactions file through its column mapping; check ids, weights and times."""
    if not isinstance(source, FileSource):
        raise TypeError(f"_load_file needs a FileSource, got {type(source).__name__}")
    path = source.path
    rel = read_file_relation(con, source.scan_path, source.file_format, source.read_options)
    types = {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}
    m = source.columns
    mapped = [m[k] for k in ("user", "item", "timestamp", "weight") if m[k]]
    missing = [c for c in mapped + m["user_features"] + m["item_features"] if c not in types]
    if missing:
        raise InputError(
            f"mapped column(s) {missing} not found in {path}; it has columns {list(types)}. "
            "Fix the column mapping."
        )
    exprs, ts_kind = _file_columns(m, types, path)
    rel.select(*exprs).create_view("file_source", replace=True)
    try:
        # The full read: every row is parsed here, not in start.
        run_sql(con, "file_stage.sql", {"ts_kind": ts_kind})
    except duckdb.Error as exc:
        if source.file_format == "text":
            options = source.read_options
            raise InputError(
                read_error_message(exc, path, options["delimiter"], options["encoding"])
            ) from exc
        raise InputError(
            f"could not read {path} with the column mapping {m}: {_duckdb_message(exc)}; fix the "
            "offending rows or the mapping."
        ) from exc
    notes = list(source.notes) + _check_file_rows(
        _fetch_dict(run_sql(con, "file_checks.sql")), m, path
    )
    run_sql(con, "file_raw_interactions.sql")
    run_sql(con, "file_users.sql")
    run_sql(con, "file_items.sql")
    return notes


def _file_columns(
    m: dict[str, Any], types: dict[str, str], path: str
) -> tuple[list[duckdb.Expression], str]:
    """The mapped columns under their canonical names, and how to read the timestamp.

    Returns:
        The select expressions (ids, ``weight_raw``, ``ts_raw``, features) and the timestamp
        kind: ``"epoch"`` (numbers), ``"text"`` (dates and timestamps) or ``"none"``.

    Raises:
        InputError: If an id or the timestamp column has a type that cannot be read.
    """
    exprs = [
        _id_expression(m["user"], "user_id", types[m["user"]], path),
        _id_expression(m["item"], "item_id", types[m["item"]], path),
    ]
    if m["weight"]:
        exprs.append(duckdb.ColumnExpression(m["weight"]).alias("weight_raw"))
    else:
        exprs.append(duckdb.ConstantExpression(1.0).alias("weight_raw"))
    ts_kind = "none"
    if m["timestamp"]:
        ts_type = types[m["timestamp"]]
        if ts_type in _NUMERIC_TYPES or ts_type.startswith("DECIMAL"):
            ts_kind = "epoch"
        elif ts_type in _TEXT_TIME_TYPES:
            ts_kind = "text"
        else:
            raise InputError(
                f"timestamp column {m['timestamp']!r} of {path} has type {ts_type}; use unix "
                "seconds (a number) or dates/timestamps (text like 1998-03-07T10:00:00Z)."
            )
        exprs.append(duckdb.ColumnExpression(m["timestamp"]).alias("ts_raw"))
    else:
        exprs.append(duckdb.ConstantExpression(None).alias("ts_raw"))
    for prefix in ("user", "item"):
        for column in m[f"{prefix}_features"]:
            exprs.append(duckdb.ColumnExpression(column).alias(feature_name(prefix, column)))
    return exprs, ts_kind


def _check_file_rows(checks: dict[str, Any], m: dict[str, Any], path: str) -> list[str]:
    """Refuse null ids, bad weights and bad timestamps (``file_checks.sql``); the notes to add.

    Raises:
        InputError: Naming how many rows are bad, in which column, with an example and a fix.
    """
    n = checks["n_rows"]
    if n == 0:
        raise InputError(f"{path} has no data rows (only a header?); add interactions to it.")
    for key, column in (("null_users", m["user"]), ("null_items", m["item"])):
        if checks[key]:
            raise InputError(
                f"{checks[key]} of {n} rows of {path} have a null id in column {column!r} "
                f"(mapped to {'user' if key == 'null_users' else 'item'}); drop or fill them."
            )
    if checks["bad_weights"]:
        raise InputError(
            f"{checks['bad_weights']} of {n} rows of {path} have a missing or non-numeric "
            f"weight in column {m['weight']!r} (e.g. {checks['bad_weight_example']!r}); fix "
            "them, or drop the weight mapping to give every row weight 1.0."
        )
    ts_col = m["timestamp"]
    if not ts_col:
        return []
    if checks["bad_ts"]:
        raise InputError(
            f"{checks['bad_ts']} of {n} rows of {path} have an unparsable timestamp in "
            f"column {ts_col!r} (e.g. {checks['bad_ts_example']!r}); use unix seconds or "
            "ISO dates/timestamps such as 1998-03-07 or 1998-03-07T10:00:00Z."
        )
    if checks["far_ts"]:
        raise InputError(
            f"{checks['far_ts']} timestamps in column {ts_col!r} of {path} fall after the "
            "year 2200; numeric timestamps must be unix seconds (divide milliseconds by 1000)."
        )
    if 0 < checks["missing_ts"] < n:
        raise InputError(
            f"{checks['missing_ts']} of {n} rows of {path} have no timestamp in column "
            f"{ts_col!r}; fill or drop them, or remove the timestamp mapping to split at "
            "random per user."
        )
    if checks["missing_ts"] == n:
        return [f"timestamp column {ts_col!r} is empty: treated as no timestamps"]
    return []


_LOADERS: dict[type, Callable[[duckdb.DuckDBPyConnection, Source, Path], list[str]]] = {
    MovieLens100kSource: load_movielens_100k,
    SyntheticSource: _load_synthetic,
    FileSource: _load_file,
    MovieLensSource: load_movielens,
    LastFm360kSource: load_lastfm_360k,
    OnlineRetailSource: load_online_retail,
    HmSource: load_hm,
}


# --------------------------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------------------------


def _window_text(split: str, train_end: str | None, valid_end: str | None) -> str:
    """Human description of a split window's date range."""
    if train_end is None:
        return "of the random per-user split"
    return {
        "train": f"(ts < {train_end})",
        "valid": f"({train_end} <= ts < {valid_end})",
        "test": f"(ts >= {valid_end})",
    }[split]


def _derive_dates(
    given_train: str | None,
    given_valid: str | None,
    bounds: dict[str, Any],
    days: list[date],
    source: Source,
    sampled: bool = False,
) -> tuple[str, str, list[str]]:
    """Fill missing split dates with the days of the 80th / 90th percentile timestamps.

    Args:
        given_train: ``training_end_date`` as given, or None.
        given_valid: ``validation_end_date`` as given, or None.
        bounds: The row of ``split_bounds.sql``.
        days: The distinct days (UTC) holding rows, in order (``split_days.sql``).
        source: The source, for the messages.
        sampled: Whether the rows are a ``row_sampling`` sample (then more of them may help).

    Raises:
        InputError: If the rows cover fewer than 3 days (no whole-day dates can give three
            non-empty windows), or the dates are not in order; the message names dates that
            work where there are any.
    """
    notes = []
    if len(days) < 3:
        covered = ", ".join(day.isoformat() for day in days)
        remedies = ["use data that spans more days"]
        if sampled:
            remedies.append(f"raise --row-sampling (this sample kept {bounds['n_rows']} rows)")
        if isinstance(source, FileSource):
            remedies.append("drop the timestamp from --columns to split each user's rows at random")
        raise InputError(
            f"the {source.name} data covers only {len(days)} day(s) ({covered}, UTC): a time "
            "split with whole-day dates (train < training_end_date <= valid < "
            "validation_end_date <= test) needs rows on at least 3 different days; "
            f"{', or '.join(remedies)}."
        )
    train_end = given_train or bounds["default_training_end"].isoformat()
    valid_end = given_valid or bounds["default_validation_end"].isoformat()
    if not given_train:
        notes.append(f"training_end_date {train_end} = day of the 80th percentile timestamp")
    if not given_valid:
        notes.append(f"validation_end_date {valid_end} = day of the 90th percentile timestamp")
    if valid_end <= train_end:
        derived = [n for g, n in ((given_train, "training"), (given_valid, "validation")) if not g]
        raise InputError(
            f"validation_end_date={valid_end} is not after training_end_date={train_end} "
            f"({', '.join(derived)} end date derived from the data, whose timestamps run from "
            f"{bounds['ts_min']} to {bounds['ts_max']}){_dates_that_work(days, bounds)}."
        )
    return train_end, valid_end, notes


def suggest_split_dates(
    days: list[date], training_day: date, validation_day: date
) -> tuple[date, date] | None:
    """Whole-day split dates that give every window rows, as near the defaults as possible.

    Train is before the training date, validation from it to the validation date, test from
    that date on; all three get rows when both dates are days that hold rows and the
    training date is neither the first of them nor at or after the validation date.

    Args:
        days: The distinct days holding rows, in order.
        training_day: The preferred training end (the day of the 80th percentile timestamp).
        validation_day: The preferred validation end (the day of the 90th percentile).

    Returns:
        ``(training_end_date, validation_end_date)``, or None with fewer than 3 days.
    """
    if len(days) < 3:
        return None
    # The validation date is a data day from the third on; the training date a data day after
    # the first and before the validation date. Clamping a data day into such a range gives one.
    valid_end = min(max(validation_day, days[2]), days[-1])
    position = days.index(valid_end)
    train_end = min(max(training_day, days[1]), days[position - 1])
    return train_end, valid_end


def _dates_that_work(days: list[date], bounds: dict[str, Any]) -> str:
    """``"; e.g. pass --training-end-date X --validation-end-date Y"``, or "" where none exist."""
    suggestion = suggest_split_dates(
        days, bounds["default_training_end"], bounds["default_validation_end"]
    )
    if suggestion is None:
        return ""
    train_end, valid_end = (day.isoformat() for day in suggestion)
    return (
        f"; dates that give every window rows: --training-end-date {train_end} "
        f"--validation-end-date {valid_end}"
    )


def prepare_dataset(
    source: Source,
    out_dir: Path,
    *,
    row_sampling: float = 100.0,
    seed: int = 42,
    training_end_date: str | None = None,
    validation_end_date: str | None = None,
) -> dict[str, Any]:
    """Build the canonical split files for a source.

    Writes ``train.parquet``, ``valid.parquet``, ``test.parquet`` (columns ``user_id``,
    ``item_id``, ``weight`` DOUBLE, ``ts`` TIMESTAMP UTC or NULL, then ``user_*`` and ``item_*``
    features; the set of rows is deterministic, their order in the file is not),
    ``items.parquet`` (``item_id``, ``title``, ``item_*``) and ``users.parquet`` (``user_id``,
    ``user_*``) into ``out_dir``. Metadata tables hold every user/item of the source, sampled or
    not. Files are built in a temporary directory beside ``out_dir`` and moved in only when all
    succeeded; other files in ``out_dir`` are left alone, same-named ones are replaced.

    Sources with timestamps get a time-window split: train = ts < training_end_date, valid =
    training_end_date <= ts < validation_end_date, test = ts >= validation_end_date (dates are
    00:00 UTC; missing ones default to the day of the 80th / 90th percentile timestamp of the
    sampled rows). Sources without timestamps get a seeded random 80/10/10 split per user.

    Args:
        source: A source from :func:`data.registry.resolve_source`; fetched here if needed.
        out_dir: Output directory.
        row_sampling: Percent of rows to keep with a repeatable Bernoulli sample; 0 or 100 keep
            all rows.
        seed: Seed of the row sample and of the random per-user split.
        training_end_date: ``yyyy-mm-dd`` or None.
        validation_end_date: ``yyyy-mm-dd`` or None.

    Returns:
        Split info: ``method`` ("time_window" | "random_per_user"), ``training_end_date``,
        ``validation_end_date`` (None for a random split), ``row_sampling``, ``seed``,
        ``rows_source``, ``rows_sampled``, ``ts_min``, ``ts_max``, ``user_features``,
        ``item_features``, ``train`` / ``valid`` / ``test`` (each ``{"rows", "users", "items"}``)
        and ``notes``.

    Raises:
        InputError: For bad parameters, bad data, dates given for a source without timestamps,
            a sample with no rows, or a split window with no rows (naming the window, its date
            range and the data's time range).
    """
    params = validate_split_params(row_sampling, training_end_date, validation_end_date, seed=seed)
    seed = int(seed)
    if not source.has_timestamps and (params["training_end_date"] or params["validation_end_date"]):
        raise InputError(
            f"split dates were given but the {source.name} source has no timestamp column, so it "
            "is split at random per user; drop the dates or map a timestamp column."
        )
    loader = _LOADERS.get(type(source))
    if loader is None:
        raise InputError(f"no loader for source {source!r}; resolve it with resolve_source().")
    local = source.fetch()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        staged = work / "out"
        staged.mkdir()
        con = _connect(work)
        try:
            info = _prepare(con, source, local, staged, params, seed)
        finally:
            con.close()
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in OUTPUT_FILES:
            os.replace(staged / name, out_dir / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return info


def _prepare(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    local: Path,
    staged: Path,
    params: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Run loader, sample, split and writes on an open connection (see prepare_dataset)."""
    notes = _LOADERS[type(source)](con, source, local)
    rows_source = int(run_sql(con, "raw_count.sql").fetchall()[0][0])
    if rows_source == 0:
        raise InputError(f"the {source.name} source has no interactions; check its files.")
    duplicates, notes_on_rows = _check_interactions(con, source)
    notes += notes_on_rows
    bounds = _sample(con, source, params, seed, rows_source, notes)
    window = _split(con, source, params, seed, bounds, notes)
    counts = {
        row[0]: {"rows": int(row[1]), "users": int(row[2]), "items": int(row[3])}
        for row in run_sql(con, "split_counts.sql").fetchall()
    }
    _check_windows_have_rows(counts, window, bounds)
    evaluable = _evaluable_users(
        con, counts, window.method, window.train_end, window.valid_end, notes
    )
    run_sql(
        con, "canonical_passthrough.sql" if isinstance(source, FileSource) else "join_features.sql"
    )
    for split in SPLITS:
        run_sql(con, "write_split.sql", {"split": split, "path": str(staged / f"{split}.parquet")})
    run_sql(con, "write_items.sql", {"path": str(staged / "items.parquet")})
    run_sql(con, "write_users.sql", {"path": str(staged / "users.parquet")})
    columns = [row[0] for row in run_sql(con, "canonical_columns.sql").fetchall()]
    info: dict[str, Any] = {
        "method": window.method,
        "training_end_date": window.train_end,
        "validation_end_date": window.valid_end,
        "row_sampling": params["row_sampling"],
        "seed": seed,
        "rows_source": rows_source,
        "rows_sampled": int(bounds["n_rows"]),
        "ts_min": bounds["ts_min"].isoformat(sep=" ") if bounds["ts_min"] else None,
        "ts_max": bounds["ts_max"].isoformat(sep=" ") if bounds["ts_max"] else None,
        "user_features": [c for c in columns if c.startswith("user_") and c != "user_id"],
        "item_features": [c for c in columns if c.startswith("item_") and c != "item_id"],
        **{split: counts[split] for split in SPLITS},
        "duplicates_dropped": duplicates,
        "evaluable_users": evaluable,
        "caveats": thin_window_caveats(evaluable),
        "notes": notes,
    }
    for caveat in info["caveats"]:
        logger.warning("THIN EVIDENCE: %s", caveat)
    logger.info(
        "split %s of %s: training_end_date=%s validation_end_date=%s; %s",
        window.method,
        source.name,
        window.train_end,
        window.valid_end,
        "; ".join(
            f"{s} {counts[s]['rows']} rows / {counts[s]['users']} users / "
            f"{counts[s]['items']} items"
            for s in SPLITS
        ),
    )
    return info


def _sample(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    params: dict[str, Any],
    seed: int,
    rows_source: int,
    notes: list[str],
) -> dict[str, Any]:
    """Keep the sampled rows (table ``sampled``); their bounds (``split_bounds.sql``).

    Raises:
        InputError: If the sample kept no row.
    """
    if params["sampling"]:
        con.execute(_sample_sql(params["row_sampling"], seed))
    else:
        run_sql(con, "no_sample.sql")
    bounds = _fetch_dict(run_sql(con, "split_bounds.sql"))
    n = int(bounds["n_rows"])
    if n == 0:
        raise InputError(
            f"row_sampling={params['row_sampling']} kept none of the {rows_source} rows of the "
            f"{source.name} source; raise row_sampling (0 or 100 keep all rows)."
        )
    if params["sampling"]:
        notes.append(
            f"row_sampling {params['row_sampling']}% (bernoulli, seed {seed}) kept {n} of "
            f"{rows_source} rows"
        )
    return bounds


@dataclass
class _Split:
    """How the sampled rows were split: ``time_window`` (with its dates and the days holding
    rows) or ``random_per_user`` (no dates)."""

    method: str
    train_end: str | None = None
    valid_end: str | None = None
    days: list[date] = field(default_factory=list)


def _split(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    params: dict[str, Any],
    seed: int,
    bounds: dict[str, Any],
    notes: list[str],
) -> _Split:
    """Assign every sampled row to a window (table ``assigned``): by time, else at random.

    Raises:
        InputError: If only some rows have timestamps, dates were given without timestamps, or
            the dates do not give three windows.
    """
    n = int(bounds["n_rows"])
    if bounds["n_ts"] == n:
        days = [row[0] for row in run_sql(con, "split_days.sql").fetchall()]
        train_end, valid_end, date_notes = _derive_dates(
            params["training_end_date"],
            params["validation_end_date"],
            bounds,
            days,
            source,
            sampled=params["sampling"],
        )
        notes += date_notes
        run_sql(
            con, "split_time_window.sql", {"training_end": train_end, "validation_end": valid_end}
        )
        return _Split("time_window", train_end, valid_end, days)
    if bounds["n_ts"]:
        raise InputError(
            f"{n - bounds['n_ts']} of {n} rows of the {source.name} source have no timestamp; "
            "fill or drop them."
        )
    if params["training_end_date"] or params["validation_end_date"]:
        raise InputError(
            f"split dates were given but the {source.name} source has no timestamps; drop "
            "the dates or provide timestamps."
        )
    logger.warning(
        "NO TIMESTAMPS in the %s source: falling back to a seeded RANDOM per-user 80/10/10 "
        "split (seed=%d). Valid and test rows are NOT later than train rows, so offline "
        "metrics will be optimistic.",
        source.name,
        seed,
    )
    notes.append("no timestamps: seeded random per-user 80/10/10 split")
    run_sql(con, "split_random_per_user.sql", {"seed": seed})
    return _Split("random_per_user")


def _check_windows_have_rows(
    counts: dict[str, dict[str, int]], window: _Split, bounds: dict[str, Any]
) -> None:
    """Raise InputError naming the first split window with no rows, and what to change."""
    for split in SPLITS:
        if split in counts:
            continue
        if window.method == "time_window":
            raise InputError(
                f"the {split} window {_window_text(split, window.train_end, window.valid_end)} "
                f"has no rows: the data's timestamps run from {bounds['ts_min']} to "
                f"{bounds['ts_max']} (UTC); choose training_end_date and validation_end_date "
                "inside that range so that every window gets rows"
                f"{_dates_that_work(window.days, bounds)}."
            )
        raise InputError(
            f"the {split} window of the random per-user split has no rows: users have too few "
            "interactions (a user needs 10 rows to reach test for sure); use more data or a "
            "higher row_sampling."
        )


def _check_interactions(con: duckdb.DuckDBPyConnection, source: Source) -> tuple[int, list[str]]:
    """Refuse unusable weights; apply the duplicate-row rule. Creates ``interactions``.

    The rule: with timestamps, a row equal to another in every column (user, item, timestamp,
    weight, features) is the same event logged twice and is kept once. Without timestamps an
    identical row cannot be told from a repeat (a second purchase), so it is kept and its
    weight adds up with the first. Either way the count goes into the split notes.

    Returns:
        The number of duplicate rows dropped, and the notes to add.

    Raises:
        InputError: If a weight is missing, NaN or infinite, or negative.
    """
    checks = _fetch_dict(run_sql(con, "interaction_checks.sql"))
    n = checks["n_rows"]
    weight_from = (
        f"the weight column {source.columns['weight']!r}"
        if isinstance(source, FileSource) and source.columns.get("weight")
        else "the weights"
    )
    if checks["bad_weights"]:
        raise InputError(
            f"{checks['bad_weights']} of {n} rows of the {source.name} source have a missing, "
            f"NaN or infinite weight in {weight_from} (e.g. {checks['bad_weight_example']}); "
            "drop or fix those rows, or remove the weight mapping to give every row weight 1.0."
        )
    if checks["negative_weights"]:
        raise InputError(
            f"{checks['negative_weights']} of {n} rows of the {source.name} source have a "
            f"negative weight in {weight_from} (lowest {checks['min_weight']}): weights are "
            "interaction strengths (counts, ratings, seconds watched) and must be >= 0. Drop "
            "those rows (e.g. dislikes) or map a non-negative column, or remove the weight "
            "mapping to give every row weight 1.0."
        )
    repeated = int(n - checks["distinct_rows"])
    if not repeated:
        run_sql(con, "interactions_all.sql")
        return 0, []
    if checks["n_ts"]:
        run_sql(con, "interactions_deduplicated.sql")
        note = (
            f"{repeated} exact duplicate rows (same user, item, timestamp, weight and features "
            "as another row) dropped: each event is kept once"
        )
        dropped = repeated
    else:
        run_sql(con, "interactions_all.sql")
        note = (
            f"{repeated} rows repeat another row exactly; without timestamps they count as "
            "repeated interactions, whose weights add up"
        )
        dropped = 0
    logger.warning("%s source: %s", source.name, note)
    return dropped, [note]


def _evaluable_users(
    con: duckdb.DuckDBPyConnection,
    counts: dict[str, dict[str, int]],
    method: str,
    train_end: str | None,
    valid_end: str | None,
    notes: list[str],
) -> dict[str, int]:
    """Evaluable users of the validation and test windows (``evaluable_users.sql``).

    Raises:
        InputError: If a window has no evaluable user: no candidate could be compared on it.
    """
    rows = {
        row[0]: (int(row[1]), int(row[2])) for row in run_sql(con, "evaluable_users.sql").fetchall()
    }
    evaluable = {}
    for split, label in (("valid", "validation"), ("test", "test")):
        window_users, users = rows.get(split, (0, 0))
        evaluable[split] = users
        notes.append(f"{label} window: {users} evaluable users of {window_users}")
        if users:
            continue
        advice = (
            "move --training-end-date earlier (or use more data, or a higher --row-sampling) "
            "so that users seen in train come back with new items"
            if method == "time_window"
            else "use more data or a higher --row-sampling, so that users have enough rows"
        )
        raise InputError(
            f"the {label} window {_window_text(split, train_end, valid_end)} has "
            f"{counts[split]['rows']} rows from {window_users} users, but no evaluable user: "
            "an evaluable user is in train and has a window item that is not already among "
            f"their train items, so no candidate could be compared on it; {advice}."
        )
    return evaluable
