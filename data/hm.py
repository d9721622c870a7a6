"""H&M Personalized Fashion Recommendations (Kaggle, 2022): purchases with article and customer
tables, read from local files only.

Kaggle needs a login and the acceptance of the competition rules, so the files are never
downloaded: the user puts ``transactions_train.csv``, ``articles.csv`` and ``customers.csv`` in
a folder (or passes the competition zip, from which only those three are unpacked) and passes it
as ``--data-dir``. ``article_id`` (ten digits with a leading zero) and ``customer_id`` (64 hex
digits) are read as text so the files join. Purchases are per day (``t_dat``, day resolution):
the rows of one customer, article and day (one row per unit) become one interaction whose weight
is the number of units, at 00:00 UTC of that day, so the time-window split works on days. Items
carry the product name as title and product type / group, colour group, department, index and
garment group as features; users their age bucket, club membership and newsletter frequency.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import duckdb

from data.named import Publication, PublishedSource, check_loaded, run_reading
from data.source import Source

KAGGLE_URL = "https://www.kaggle.com/competitions/h-and-m-personalized-fashion-recommendations/data"
HM_FILES: tuple[str, ...] = ("transactions_train.csv", "articles.csv", "customers.csv")

HM = Publication(
    title="H&M",
    archive_name="h-and-m-personalized-fashion-recommendations.zip",
    url=None,
    checksum=None,
    checksum_origin="Kaggle publishes no checksum",
    folder=None,
    folder_aliases=("h-and-m-personalized-fashion-recommendations",),
    required=HM_FILES,
    how_to_get=(
        "The H&M data needs a Kaggle login, so it is never downloaded: accept the competition "
        f"rules and download {', '.join(HM_FILES)} from {KAGGLE_URL} (or the whole competition "
        "zip), put them in one folder and pass it as --data-dir (or set RECLAB_DATA_DIR)."
    ),
)
_FIX = f"use the files as downloaded from {KAGGLE_URL} (never re-saved by a spreadsheet)."


@dataclass(frozen=True, kw_only=True)
class HmSource(PublishedSource):
    """The H&M purchases, articles and customers from the user's folder or zip (no download)."""

    name: str = "hm"
    publication: ClassVar[Publication] = HM


def load_hm(con: duckdb.DuckDBPyConnection, source: Source, local: Path) -> list[str]:
    """Load the H&M files into ``users``, ``items`` and ``raw_interactions``.

    Args:
        con: DuckDB connection of the scratch database.
        source: An :class:`HmSource`.
        local: The folder holding the three files (from :meth:`HmSource.fetch`).

    Returns:
        Notes for the split info: where the files came from, the merged rows, metadata coverage.

    Raises:
        InputError: If a file cannot be read, or its ids do not join.
    """
    if not isinstance(source, HmSource):
        raise TypeError(f"load_hm needs an HmSource, got {type(source).__name__}")
    transactions, articles, customers = (local / name for name in HM_FILES)
    run_reading(con, "hm_transactions.sql", {"path": str(transactions)}, transactions, _FIX)
    run_reading(con, "hm_items.sql", {"path": str(articles)}, articles, _FIX)
    run_reading(con, "hm_users.sql", {"path": str(customers)}, customers, _FIX)
    checks, coverage = check_loaded(
        con, HM.title, has_timestamps=True, fix=_FIX, items_from_file=True, users_from_file=True
    )
    rows, units = checks["rows"], int(checks["units"] or 0)
    return [
        source.provenance(local),
        f"{units} purchase rows of {HM_FILES[0]}; {units - rows} repeating a (customer, "
        f"article, day) merged: weight = units bought that day, {rows} interactions",
        *coverage,
    ]
