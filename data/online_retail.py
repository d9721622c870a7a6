"""UCI Online Retail: a UK online shop's invoice lines, 2010-12-01 to 2011-12-09.

Published by the UCI Machine Learning Repository (dataset 352, CC BY 4.0) as
``online+retail.zip`` holding ``Online Retail.xlsx`` (columns InvoiceNo, StockCode,
Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country; 541,909 rows). The sheet is
converted once, streamed with openpyxl in read-only mode in chunks of rows, into a parquet file
in the cache (keyed by the file's SHA256); a CSV export of the same columns (UTF-8 or latin-1,
dates ISO or M/D/YYYY H:MM) is read directly.

The loader states and counts its rules (split notes): cancelled invoices (InvoiceNo starting
with C) dropped; rows with a zero, negative or missing Quantity (returns, adjustments) dropped;
rows without a CustomerID dropped; non-product stock codes (no 5-digit product number: postage,
fees, manual adjustments) dropped. Quantity is the weight (lines of one stock code on one invoice
added up), InvoiceDate the timestamp, StockCode the item with its most common Description as the
title and its median unit price as a feature, CustomerID the user with the country of their
latest purchase. No checksum of the zip is published: its SHA256 is logged and recorded.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as clock_time
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from data.download import file_digests
from data.named import (
    Publication,
    PublishedSource,
    check_loaded,
    check_still_there,
    duckdb_error_text,
    fetch_row,
    given_data_dir,
    resolve_published,
    run_reading,
    run_with_encoding_fallback,
)
from data.source import Source, cache_dir
from reclab.errors import InputError

logger = logging.getLogger(__name__)

XLSX_NAME = "Online Retail.xlsx"
COLUMNS: tuple[str, ...] = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
# Names a CSV export may have, in a folder given as --data-dir.
CSV_NAMES: tuple[str, ...] = ("Online Retail.csv", "online_retail.csv", "OnlineRetail.csv")
CHUNK_ROWS = 50_000

ONLINE_RETAIL = Publication(
    title="UCI Online Retail",
    archive_name="online+retail.zip",
    url="https://archive.ics.uci.edu/static/public/352/online+retail.zip",
    checksum=None,
    checksum_origin="none published by UCI",
    folder=None,
    required=(XLSX_NAME,),
    folder_aliases=("online+retail", "online-retail"),
    how_to_get=(
        "Download online+retail.zip from https://archive.ics.uci.edu/dataset/352/online+retail "
        "(CC BY 4.0) and pass --data-dir with the zip, 'Online Retail.xlsx', a CSV export of it "
        "(same columns), or the folder holding one of them; or leave --data-dir unset to "
        "download it into the cache."
    ),
)


@dataclass(frozen=True, kw_only=True)
class OnlineRetailSource(PublishedSource):
    """UCI Online Retail, from the user's xlsx / CSV / zip or downloaded.

    Attributes:
        local_file: The user's ``Online Retail.xlsx`` or CSV export, when they gave one.
    """

    name: str = "online-retail"
    local_file: str | None = None
    publication: ClassVar[Publication] = ONLINE_RETAIL

    def fetch(self) -> Path:
        """Return the file the loader reads: the converted parquet, or the user's CSV.

        Returns:
            A ``.parquet`` file (converted from the xlsx, cached) or the CSV export.

        Raises:
            InputError: If the file is gone, the archive is damaged or the sheet lacks columns.
        """
        if self.local_file is not None:
            path = Path(self.local_file)
            check_still_there(path, str(path), ONLINE_RETAIL.how_to_get)
            if path.suffix.lower() != ".xlsx":
                return path
            xlsx = path
        else:
            xlsx = super().fetch() / XLSX_NAME
        sha256 = file_digests(xlsx)["sha256"]
        target = Path(self.cache_root) / f"online-retail-{sha256[:16]}.parquet"
        if target.is_file():
            logger.info("%s: using %s, converted earlier", xlsx.name, target)
            return target
        xlsx_to_parquet(xlsx, target)
        return target

    def provenance(self, folder: Path) -> str:
        """Where the rows came from (the xlsx or CSV the user gave, or the zip's manifest)."""
        if self.local_file is not None:
            return f"UCI Online Retail read from {self.local_file} (no published checksum)"
        return super().provenance(self.cached_dir)


def resolve_online_retail(data_dir: str | None) -> OnlineRetailSource:
    """Resolve ``online-retail``: an xlsx or CSV file, a folder holding one, or the zip.

    Args:
        data_dir: The user's ``--data-dir`` (may be empty).

    Returns:
        The resolved source.

    Raises:
        InputError: See :func:`data.named.resolve_published`.
    """
    given, _ = given_data_dir(data_dir)
    if given is not None:
        base = Path(given).expanduser().resolve()
        if base.is_file() and base.suffix.lower() in (".xlsx", ".csv"):
            return _local_file_source(base)
        if base.is_dir():
            folders = [base] + [base / name for name in ONLINE_RETAIL.folder_aliases]
            for folder in folders:
                for name in CSV_NAMES:
                    if (folder / name).is_file() and not (folder / XLSX_NAME).is_file():
                        return _local_file_source(folder / name)
    source = resolve_published(OnlineRetailSource, "online-retail", ONLINE_RETAIL, data_dir)
    if source.local_dir is not None:  # a folder with the xlsx: read it where it is
        return _local_file_source(Path(source.local_dir) / XLSX_NAME)
    return source


def _local_file_source(path: Path) -> OnlineRetailSource:
    """A source reading the user's xlsx or CSV file where it is."""
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty; {ONLINE_RETAIL.how_to_get}")
    logger.info("UCI Online Retail: using the local file %s", path)
    return OnlineRetailSource(
        local_file=str(path),
        cache_root=str(cache_dir() / "online-retail"),
        url=ONLINE_RETAIL.url,
        checksum=ONLINE_RETAIL.checksum,
    )


def _cell_text(value: Any) -> str | None:
    """One spreadsheet cell as text: integral floats without ``.0``, dates in ISO form."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime | date | clock_time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def xlsx_to_parquet(xlsx: Path, target: Path, *, chunk_rows: int = CHUNK_ROWS) -> int:
    """Convert the Online Retail sheet to parquet (every column text), atomically.

    The sheet is streamed with openpyxl in read-only mode and written in chunks of
    ``chunk_rows`` rows, so memory stays flat; typing and the rules are left to DuckDB.

    Args:
        xlsx: ``Online Retail.xlsx``.
        target: The parquet file to write (a temporary file beside it is renamed into place).
        chunk_rows: Rows per parquet row group.

    Returns:
        The number of rows written.

    Raises:
        InputError: If the file is not a readable xlsx or its first sheet lacks a column.
    """
    try:
        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException
    except ImportError as exc:  # pragma: no cover - openpyxl is in requirements.txt
        raise InputError(
            f"reading {xlsx.name} needs openpyxl (listed in requirements.txt): run bash setup.sh"
        ) from exc
    try:
        book = openpyxl.load_workbook(xlsx, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as exc:
        raise InputError(
            f"could not open {xlsx} as an xlsx workbook ({exc}); {ONLINE_RETAIL.how_to_get}"
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    schema = pa.schema([(name, pa.string()) for name in COLUMNS])
    started = last_log = time.monotonic()
    written = 0
    try:
        sheet = book.worksheets[0]
        header = next(sheet.iter_rows(max_row=1, values_only=True), ())
        names = [str(v).strip() if v is not None else "" for v in header]
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise InputError(
                f"the first sheet of {xlsx} lacks column(s) {missing} (its header is {names}); "
                f"use the published file. {ONLINE_RETAIL.how_to_get}"
            )
        positions = [names.index(c) for c in COLUMNS]
        total = sheet.max_row - 1 if sheet.max_row else None
        logger.info("converting %s (%s rows) to %s", xlsx.name, total or "unknown", target)
        rows = sheet.iter_rows(min_row=2, max_col=len(names), values_only=True)
        with pq.ParquetWriter(tmp, schema) as writer:
            while chunk := list(islice(rows, chunk_rows)):
                columns = list(zip(*chunk, strict=True))
                arrays = [
                    pa.array([_cell_text(v) for v in columns[i]], pa.string()) for i in positions
                ]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                written += len(chunk)
                if time.monotonic() - last_log >= 10.0 or len(chunk) < chunk_rows:
                    last_log = time.monotonic()
                    rate = written / max(last_log - started, 1e-9)
                    logger.info(
                        "converted %d of %s rows of %s (%.0f rows/s)",
                        written,
                        total or "?",
                        xlsx.name,
                        rate,
                    )
        os.replace(tmp, target)
    finally:
        book.close()
        tmp.unlink(missing_ok=True)
    logger.info("converted %d rows of %s in %.1f s", written, xlsx.name, time.monotonic() - started)
    return written


def load_online_retail(con: duckdb.DuckDBPyConnection, source: Source, local: Path) -> list[str]:
    """Load UCI Online Retail into ``users``, ``items`` and ``raw_interactions``.

    Args:
        con: DuckDB connection of the scratch database.
        source: An :class:`OnlineRetailSource`.
        local: The file from :meth:`OnlineRetailSource.fetch` (parquet or CSV).

    Returns:
        Notes for the split info: where the rows came from and every rule with its count.

    Raises:
        InputError: If the file cannot be read, lacks a column, keeps no row, or a kept row has
            an unparsable InvoiceDate or CustomerID.
    """
    from data.prepare import run_sql

    if not isinstance(source, OnlineRetailSource):
        raise TypeError(f"load_online_retail needs an OnlineRetailSource, not {type(source)}")
    fix = f"the columns must be {', '.join(COLUMNS)} as published. {ONLINE_RETAIL.how_to_get}"
    if local.suffix.lower() == ".parquet":
        run_reading(con, "online_retail_text_parquet.sql", {"path": str(local)}, local, fix)
    else:
        try:
            run_with_encoding_fallback(
                con, run_sql, "online_retail_text_csv.sql", {"path": str(local)}, str(local)
            )
        except duckdb.Error as exc:
            raise InputError(f"could not read {local}: {duckdb_error_text(exc)}; {fix}") from exc
    run_sql(con, "online_retail_stage.sql")
    counts = fetch_row(run_sql(con, "online_retail_counts.sql"))
    if counts["bad_dates"]:
        raise InputError(
            f"{counts['bad_dates']} rows of {local} have an InvoiceDate that is neither ISO "
            f"(2010-12-01 08:26:00) nor M/D/YYYY H:MM (12/1/2010 8:26), e.g. "
            f"{counts['example_bad_date']!r}; export the dates in one of those forms."
        )
    if counts["bad_customers"]:
        raise InputError(
            f"{counts['bad_customers']} rows of {local} have a CustomerID that is not a number, "
            f"e.g. {counts['example_bad_customer']!r}; use the published CustomerID column."
        )
    if counts["kept"] == 0:
        raise InputError(f"no row of {local} passes the rules ({counts}); {fix}")
    run_sql(con, "online_retail_raw_interactions.sql")
    run_sql(con, "online_retail_items.sql")
    run_sql(con, "online_retail_users.sql")
    checks, coverage = check_loaded(con, ONLINE_RETAIL.title, has_timestamps=True, fix=fix)
    interactions = checks["rows"]
    return [
        source.provenance(local.parent),
        f"{counts['rows']} rows; dropped {counts['cancelled']} of cancelled invoices (InvoiceNo "
        f"starting with C), {counts['non_positive_quantity']} with a zero, negative or missing "
        f"Quantity (returns, adjustments), {counts['no_customer']} without a CustomerID, "
        f"{counts['non_product']} with a non-product StockCode (postage, fees, manual "
        f"adjustments: no 5-digit product number); kept {counts['kept']}",
        f"weight = Quantity; {counts['kept'] - counts['invoice_lines']} lines repeating a stock "
        f"code on the same invoice merged (quantities added), and "
        f"{counts['invoice_lines'] - interactions} more of another invoice of the same customer, "
        f"stock code and InvoiceDate (separate purchases, quantities added): "
        f"{interactions} interactions",
        *coverage,
    ]
