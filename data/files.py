"""Read the user's own interactions file as it is: parquet, or delimited text of any usual dialect.

Users bring files in the layouts their systems published: MovieLens-1M's ``ratings.dat``
(``user::item::rating::ts``, no header), last.fm's play-count TSV (no header, no timestamps),
CSV exports with a header, latin-1 text, gzip. This module finds how to read such a file from
its first megabyte (format, delimiter, header, encoding, compression) so that the flow's
``start`` step can check the column mapping without reading the whole file, and pins what it
found in ``read_options`` so that ``get_dataset`` reads every row the same way.

What is found and what can be given in the column mapping (``--columns``):

* ``delimiter``: one of ``,`` ``;`` tab ``|`` ``::``; found as the candidate that splits every
  sampled line into the same number (at least two) of fields, the most fields winning.
* ``header``: whether the first line holds column names; DuckDB's sniffer decides (a first
  line that does not fit the types of the rows below is a header). When every column is text
  that cannot be told, so a mapping by position means no header and a mapping by name means one.
* ``encoding``: UTF-8 unless the sample is not valid UTF-8 (then latin-1) or starts with a
  UTF-16 byte-order mark.
* ``names``: names for the columns of a headerless file (one per column), used by the mapping
  and for feature names.

Mapped columns are names or 0-based positions. Anything else (Excel, JSON, zip, binary data,
lines with another number of fields) gets an :class:`~reclab.errors.InputError` that says what
the file is, where the problem is and how to fix it.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import json
import logging
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from data.source import check_mapping
from reclab.errors import InputError

logger = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

ROLE_KEYS: tuple[str, ...] = (
    "user",
    "item",
    "timestamp",
    "weight",
    "user_features",
    "item_features",
)
READ_KEYS: tuple[str, ...] = ("delimiter", "header", "encoding", "names")
COLUMN_KEYS: tuple[str, ...] = ROLE_KEYS + READ_KEYS

PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
TEXT_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".txt", ".dat")
# Candidates in order of preference when two split every line into as many fields.
DELIMITERS: tuple[str, ...] = ("::", "\t", ",", ";", "|")
DELIMITER_ALIASES: dict[str, str] = {"tab": "\t", "\\t": "\t"}
ENCODINGS: dict[str, str] = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "latin-1": "latin-1",
    "latin1": "latin-1",
    "iso-8859-1": "latin-1",
    "utf-16": "utf-16",
    "utf16": "utf-16",
}
# How much of the file start looks at: enough lines for a fair sample, cheap at any file size.
SAMPLE_BYTES = 1 << 20
SAMPLE_LINES = 20_000
MAX_CONTROL_SHARE = 0.05

# Leading bytes of formats that are not delimited text, with what to do instead.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls)"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive"),
    (b"ARROW1\x00\x00", "an Arrow IPC / Feather file"),
    (b"Obj\x01", "an Avro file"),
)
# bzip2: "BZh", the block size digit, then the block magic (pi in BCD), so a text file whose
# first line starts with "BZh" is not mistaken for one.
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
_SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_CONVERT_HINT = (
    "convert it to CSV or parquet, e.g. with DuckDB: "
    "COPY (FROM 'file.json') TO 'interactions.parquet'"
)


@dataclass(frozen=True)
class FileLayout:
    """How to read an interactions file, as found by :func:`inspect_file`.

    Attributes:
        file_format: ``"parquet"`` (a file or a directory of files) or ``"text"`` (delimited).
        read_options: For text: ``delimiter``, ``quote``, ``escape``, ``header``, ``skip``,
            ``encoding``, ``compression`` and ``names`` (a list or None); empty for parquet.
        notes: What was detected, in words, for the run's split notes.
    """

    file_format: str
    read_options: dict[str, Any]
    notes: tuple[str, ...] = ()


def _sql(name: str) -> str:
    """Return the text of ``sql/<name>``."""
    return (SQL_DIR / name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# The column mapping
# --------------------------------------------------------------------------------------------


def parse_mapping(
    columns: dict[str, Any] | str | None,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Split a column mapping into its roles and its read options, checking the read options.

    Args:
        columns: The mapping (dict or JSON string) or None.

    Returns:
        ``(roles, read_request)``: the role entries (``user``, ``item``, ...) or None when no
        role is given, and the normalised read options the user gave (``delimiter``, ``header``,
        ``encoding``, ``names``).

    Raises:
        InputError: For invalid JSON, a mapping that is not an object, unknown keys or invalid
            read options.
    """
    if isinstance(columns, str):
        try:
            columns = json.loads(columns) if columns.strip() else None
        except json.JSONDecodeError as exc:
            raise InputError(
                f"columns is not valid JSON ({exc}); pass an object such as "
                '{"user": "uid", "item": "song", "timestamp": "ts", "weight": "plays"}.'
            ) from exc
    if columns is None:
        return None, {}
    example = '{"user": "uid", "item": "song"} or {"user": 0, "item": 1}'
    columns = check_mapping(columns, "columns", COLUMN_KEYS, example)
    request: dict[str, Any] = {}
    if columns.get("delimiter") is not None:
        given = columns["delimiter"]
        delimiter = DELIMITER_ALIASES.get(given, given) if isinstance(given, str) else given
        if delimiter not in DELIMITERS:
            raise InputError(
                f"columns['delimiter'] = {given!r} is not supported; use one of "
                f'{", ".join(repr(d) for d in DELIMITERS)} (tab may be written "\\t" or '
                '"tab").'
            )
        request["delimiter"] = delimiter
    if columns.get("header") is not None:
        if not isinstance(columns["header"], bool):
            raise InputError(
                f"columns['header'] must be true or false, got {columns['header']!r}; false "
                "when the first line is data, true when it holds column names."
            )
        request["header"] = columns["header"]
    if columns.get("encoding") is not None:
        given = columns["encoding"]
        encoding = ENCODINGS.get(given.strip().lower()) if isinstance(given, str) else None
        if encoding is None:
            raise InputError(
                f"columns['encoding'] = {given!r} is not supported; use utf-8, latin-1 or "
                "utf-16 (other encodings: convert the file, e.g. iconv -f CP1252 -t UTF-8)."
            )
        request["encoding"] = encoding
    if columns.get("names") is not None:
        names = columns["names"]
        if (
            not isinstance(names, list)
            or not all(isinstance(n, str) and n.strip() for n in names)
            or len(set(names)) != len(names)
        ):
            raise InputError(
                f"columns['names'] must be a list of distinct, non-empty column names, one per "
                f"column of the file, got {names!r}; e.g. "
                '["user", "artist_id", "artist", "plays"].'
            )
        request["names"] = list(names)
    roles = {k: v for k, v in columns.items() if k in ROLE_KEYS}
    return (roles or None), request


def uses_positions(roles: dict[str, Any] | None) -> bool:
    """True when the mapping names some column by its 0-based position."""
    if not roles:
        return False
    values: list[Any] = [roles.get(k) for k in ("user", "item", "timestamp", "weight")]
    for key in ("user_features", "item_features"):
        if isinstance(roles.get(key), list):
            values += roles[key]
    return any(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _column_ref(key: str, value: Any, existing: list[str]) -> str:
    """Resolve one mapped column, a name or a 0-based position, to the file's column name."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(existing):
            listing = ", ".join(f"{i}: {c}" for i, c in enumerate(existing))
            raise InputError(
                f"columns[{key!r}] = {value} is not a column position: the file has "
                f"{len(existing)} columns, 0-based ({listing}); fix the position."
            )
        return existing[value]
    if isinstance(value, str) and value:
        return value
    raise InputError(
        f"columns[{key!r}] must be a column name (string) or a 0-based position (integer), got "
        f"{value!r}."
    )


def normalise_columns(
    roles: dict[str, Any] | None, existing: list[str], *, header: bool = True
) -> dict[str, Any]:
    """Check the role entries of a mapping against the file's columns and fill in defaults.

    Args:
        roles: The role entries from :func:`parse_mapping`, or None: then the file must use the
            canonical names ``user_id``, ``item_id`` and, when present, ``weight``, ``ts``,
            ``user_*``, ``item_*``.
        existing: The file's column names, in order.
        header: Whether the file has a header row (only changes the advice in errors).

    Returns:
        The mapping with keys ``user``, ``item``, ``timestamp`` (or None), ``weight`` (or None),
        ``user_features`` and ``item_features`` (lists), every column given by its name.

    Raises:
        InputError: For a missing ``user``/``item`` entry, a column or position the file does
            not have, or features whose output names clash.
    """
    if roles is None:
        roles = {
            "user": "user_id",
            "item": "item_id",
            "timestamp": "ts" if "ts" in existing else None,
            "weight": "weight" if "weight" in existing else None,
            "user_features": [c for c in existing if c.startswith("user_") and c != "user_id"],
            "item_features": [c for c in existing if c.startswith("item_") and c != "item_id"],
        }
    out: dict[str, Any] = {}
    for key in ("user", "item", "timestamp", "weight"):
        value = roles.get(key)
        if key in ("user", "item") and (value is None or value == ""):
            raise InputError(
                f"columns needs a {key!r} entry naming the {key} id column (or its 0-based "
                f"position); the file has columns {existing}."
            )
        out[key] = None if value is None or value == "" else _column_ref(key, value, existing)
    for key in ("user_features", "item_features"):
        value = roles.get(key) or []
        if not isinstance(value, list):
            raise InputError(
                f"columns[{key!r}] must be a list of column names or positions, got {value!r}; "
                'write e.g. ["age", "country"] or [4, 5].'
            )
        out[key] = [_column_ref(key, v, existing) for v in value]
    mapped = [out[k] for k in ("user", "item", "timestamp", "weight") if out[k]]
    mapped += out["user_features"] + out["item_features"]
    missing = [c for c in mapped if c not in existing]
    if missing:
        advice = "Fix the column mapping."
        if not header:
            advice = (
                "The file has no header row, so its columns are unnamed: map them by 0-based "
                'position, e.g. {"user": 0, "item": 1}, name them with "names", or set '
                '"header": true if the first line holds names.'
            )
        raise InputError(
            f"mapped column(s) {missing} not found in the interactions file; it has columns "
            f"{existing}. {advice}"
        )
    canonical = ["user_id", "item_id", "weight", "ts"]
    canonical += [feature_name("user", c) for c in out["user_features"]]
    canonical += [feature_name("item", c) for c in out["item_features"]]
    clashes = sorted({c for c in canonical if canonical.count(c) > 1})
    if clashes:
        raise InputError(
            f"the column mapping produces duplicate output columns {clashes}; features become "
            "user_<name> / item_<name>, so rename or drop the clashing features."
        )
    return out


def feature_name(prefix: str, column: str) -> str:
    """Return the canonical name of a feature column: ``<prefix>_<column>`` unless prefixed.

    Args:
        prefix: ``"user"`` or ``"item"``.
        column: The source column name.

    Returns:
        The canonical column name.
    """
    return column if column.startswith(f"{prefix}_") else f"{prefix}_{column}"


# --------------------------------------------------------------------------------------------
# Format, encoding and dialect (cheap: the first megabyte)
# --------------------------------------------------------------------------------------------


def inspect_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    request: dict[str, Any],
    *,
    by_position: bool = False,
) -> FileLayout:
    """Find how to read an interactions file from its first megabyte.

    Args:
        con: DuckDB connection (for DuckDB's CSV sniffer).
        path: The file, or a directory of parquet files (already known to exist).
        request: Read options the user gave (from :func:`parse_mapping`).
        by_position: Whether the mapping names columns by position (decides the header when
            every column is text).

    Returns:
        The file's layout.

    Raises:
        InputError: For an empty file, a format that is not parquet or delimited text, read
            options given for parquet, an encoding that does not fit, or lines that do not
            split into the same number of fields.
    """
    shown = str(path)
    compression = _binary_format(path, shown)
    if compression == "parquet":
        _refuse_text_options(shown, request)
        return FileLayout("parquet", {})
    head, truncated = _read_head(path, compression, shown)
    notes: list[str] = []
    encoding, text = _decode_head(head, truncated, request.get("encoding"), shown, notes)
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        raise InputError(
            f"interactions_file {shown!r} looks like JSON (it starts with {stripped[:1]!r}), "
            f"which is not read here; {_CONVERT_HINT.replace('file.json', shown)}."
        )
    lines = text.splitlines()[:SAMPLE_LINES]
    delimiter = request.get("delimiter") or _detect_delimiter(lines, shown)
    sniffed = _sniff_text(con, path, delimiter, encoding, compression)
    header = request.get("header")
    if header is None:
        header = _detect_header(sniffed, path.name, by_position, notes)
    options = {
        "delimiter": delimiter,
        "quote": sniffed["quote"],
        "escape": sniffed["escape"],
        "header": header,
        "skip": int(sniffed["skip_rows"]),
        "encoding": encoding,
        "compression": compression,
        "names": request.get("names"),
    }
    notes.insert(
        0,
        f"read {path.name} as delimited text: delimiter {delimiter!r} "
        f"({'given' if request.get('delimiter') else 'detected'}), "
        f"{'a header row' if header else 'no header row'}, {encoding}"
        f"{', gzip' if compression == 'gzip' else ''}",
    )
    logger.info("%s", "; ".join(notes))
    return FileLayout("text", options, tuple(notes))


def _binary_format(path: Path, shown: str) -> str:
    """``"parquet"``, or the compression of a text file (``"gzip"`` or ``"none"``).

    Raises:
        InputError: For a directory without parquet files, an empty file, or a known format
            that is neither parquet nor text (spreadsheets, JSON, archives, ...).
    """
    if path.is_dir():
        if not any(path.rglob("*.parquet")):
            raise InputError(
                f"interactions_file {shown!r} is a directory without .parquet files; point it at "
                "a parquet or delimited text file, or a directory of .parquet files."
            )
        return "parquet"
    if path.stat().st_size == 0:
        raise InputError(
            f"interactions_file {shown!r} is empty (0 bytes); pass a file with at least one "
            "interaction."
        )
    lower = path.name.lower()
    with path.open("rb") as fh:
        magic = fh.read(16)
    _refuse_other_formats(shown, lower, magic)
    if magic.startswith(_PARQUET_MAGIC) or (
        lower.endswith(PARQUET_SUFFIXES) and not magic.startswith(_GZIP_MAGIC)
    ):
        return "parquet"
    return "gzip" if magic.startswith(_GZIP_MAGIC) else "none"


def _detect_header(sniffed: dict[str, Any], name: str, by_position: bool, notes: list[str]) -> bool:
    """Whether the first line is a header: DuckDB's answer, or the mapping's hint for text."""
    if not all(c["type"] == "VARCHAR" for c in sniffed["columns"]):
        return bool(sniffed["has_header"])
    # DuckDB calls a first line of text a header; with text columns only, the mapping is the
    # better hint.
    decided = (
        "no header row, since columns are mapped by position"
        if by_position
        else "the first line is the header, since columns are mapped by name"
    )
    notes.append(
        f"every column of {name} is text, so a header row cannot be detected: "
        f'{decided}; set "header" in the column mapping to be sure'
    )
    return not by_position


def _refuse_text_options(shown: str, request: dict[str, Any]) -> None:
    """Parquet has its own schema: delimiter, header, encoding and names do not apply."""
    if request:
        raise InputError(
            f"columns sets {sorted(request)} but interactions_file {shown!r} is parquet, which "
            "has its own column names and types; drop those keys (they apply to delimited text)."
        )


def _refuse_other_formats(shown: str, lower_name: str, magic: bytes) -> None:
    """Raise a clear error for spreadsheets, JSON, archives and other non-text formats."""
    if lower_name.endswith(_SPREADSHEET_SUFFIXES):
        raise InputError(
            f"interactions_file {shown!r} is a spreadsheet, which is not read here; export the "
            "sheet as CSV (File > Save as > CSV UTF-8) and pass that file."
        )
    if lower_name.endswith(_JSON_SUFFIXES):
        raise InputError(
            f"interactions_file {shown!r} is JSON, which is not read here; "
            f"{_CONVERT_HINT.replace('file.json', shown)}."
        )
    known = [what for prefix, what in _MAGIC if magic.startswith(prefix)]
    if _BZIP2.match(magic):
        known.append("bzip2-compressed")
    if not known:
        return
    what = known[0]
    if "compressed" in what:
        fix = "decompress it, or recompress it with gzip (read directly)"
    elif "archive" in what:
        fix = "extract it and pass the interactions file inside"
    elif "workbook" in what:
        fix = "export the sheet as CSV and pass that file"
    else:
        fix = "convert it to parquet or CSV"
    raise InputError(
        f"interactions_file {shown!r} is {what}, which is not read here; {fix}. Readable: "
        "parquet (a file or a directory), delimited text (.csv, .tsv, .txt, .dat), optionally "
        "gzip-compressed (.gz)."
    )


def _read_head(path: Path, compression: str, shown: str) -> tuple[bytes, bool]:
    """Return the file's first ``SAMPLE_BYTES`` (decompressed) and whether there is more.

    Raises:
        InputError: For a corrupt gzip file, or one holding another format than text.
    """
    try:
        opener = gzip.open if compression == "gzip" else open
        with opener(path, "rb") as fh:
            data = fh.read(SAMPLE_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(
            f"interactions_file {shown!r} starts like gzip but cannot be decompressed ({exc}); "
            "the file is corrupt or truncated: download or compress it again."
        ) from exc
    if compression == "gzip":
        _refuse_other_formats(shown, path.name.lower().removesuffix(".gz"), data[:16])
        if data.startswith(_PARQUET_MAGIC):
            raise InputError(
                f"interactions_file {shown!r} is a gzip-compressed parquet file; decompress it "
                "(gunzip): parquet is compressed inside already."
            )
    return data[:SAMPLE_BYTES], len(data) > SAMPLE_BYTES


def _line_of(data: bytes, offset: int) -> int:
    """1-based line number of a byte offset."""
    return data.count(b"\n", 0, offset) + 1


def _decode_head(
    head: bytes, truncated: bool, requested: str | None, shown: str, notes: list[str]
) -> tuple[str, str]:
    """Pick the encoding and decode the sample; refuse binary data.

    Returns:
        ``(encoding, text)``, the text cut after its last full line when the sample is cut.
    """
    if requested is None and head.startswith(_UTF16_BOMS):
        encoding = "utf-16"
        notes.append("UTF-16 byte-order mark found: reading as utf-16")
    else:
        encoding = requested or "utf-8"
    if encoding != "utf-16" and b"\x00" in head:
        offset = head.index(b"\x00")
        raise InputError(
            f"could not parse interactions_file {shown!r}: it is a binary file, not delimited "
            f"text (a NUL byte on line {_line_of(head, offset)}, byte {offset}); pass a parquet "
            "file or delimited text (CSV, TSV, .dat)."
        )
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        text = decoder.decode(head, final=not truncated)
    except UnicodeDecodeError as exc:
        line = _line_of(head, exc.start)
        if requested is not None:
            raise InputError(
                f"interactions_file {shown!r} is not valid {requested} text: line {line} has "
                f"the byte {head[exc.start : exc.start + 1]!r}; give the right encoding "
                '("encoding": "latin-1" or "utf-8"), or convert the file to UTF-8.'
            ) from exc
        encoding = "latin-1"
        text = head.decode("latin-1")
        notes.append(f"line {line} is not valid UTF-8: reading the file as latin-1")
    if truncated and "\n" in text:
        text = text[: text.rindex("\n") + 1]
    text = text.removeprefix("\ufeff")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    if text and controls / len(text) > MAX_CONTROL_SHARE:
        raise InputError(
            f"could not parse interactions_file {shown!r}: it is a binary file, not delimited "
            f"text ({controls} control characters in its first {len(text)}); pass a parquet "
            "file or delimited text (CSV, TSV, .dat)."
        )
    return encoding, text


def _field_counts(lines: list[str], delimiter: str, quoted: bool) -> list[tuple[int, int]]:
    """``(line number, number of fields)`` of each non-blank record of the sample."""
    if len(delimiter) > 1:
        return [(i, ln.count(delimiter) + 1) for i, ln in enumerate(lines, 1) if ln.strip()]
    reader = csv.reader(
        lines, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    )
    counts = []
    try:
        for record in reader:
            if record and any(field.strip() for field in record):
                counts.append((reader.line_num, len(record)))
    except csv.Error:
        counts.append((reader.line_num, -1))  # unparsable quoting: not this dialect
    return counts


def _detect_delimiter(lines: list[str], shown: str) -> str:
    """The candidate delimiter that splits every sampled line into the same number of fields.

    Raises:
        InputError: When no candidate splits the lines into two or more fields, or the best one
            gives some line another number of fields (naming that line).
    """
    best: tuple[float, int, str, list[tuple[int, int]]] | None = None
    consistent: list[tuple[int, str]] = []
    for rank, delimiter in enumerate(DELIMITERS):
        for quoted in (True, False) if len(delimiter) == 1 else (False,):
            counts = _field_counts(lines, delimiter, quoted)
            if not counts:
                continue
            widths = Counter(c for _, c in counts)
            modal, hits = widths.most_common(1)[0]
            if modal < 2:
                continue
            if hits == len(counts):
                consistent.append((-modal, rank))
                break
            share = hits / len(counts)
            if best is None or (share, modal) > (best[0], best[1]):
                best = (share, modal, delimiter, counts)
    if consistent:
        return DELIMITERS[min(consistent)[1]]
    if best is None:
        raise InputError(
            f"could not parse interactions_file {shown!r}: none of the delimiters "
            f"{', '.join(repr(d) for d in DELIMITERS)} splits its first lines into two or more "
            "fields; it needs one interaction per line with user and item in separate fields "
            '(give another supported delimiter with "delimiter" in the column mapping).'
        )
    _, modal, delimiter, counts = best
    line, width = next((ln, c) for ln, c in counts if c != modal)
    first = next(ln for ln, c in counts if c == modal)
    raise InputError(
        f"interactions_file {shown!r}: line {line} splits into {width} fields on {delimiter!r} "
        f"where line {first} and most others have {modal}; every line needs the same number of "
        "fields: fix or remove that line (quote fields that contain the delimiter), or give the "
        'right "delimiter" in the column mapping.'
    )


def _sniff_text(
    con: duckdb.DuckDBPyConnection, path: Path, delimiter: str, encoding: str, compression: str
) -> dict[str, Any]:
    """Run DuckDB's sniffer with the delimiter fixed: quote, escape, header, types."""
    params = {
        "path": str(path),
        "delim": delimiter,
        "encoding": encoding,
        "compression": compression,
    }
    try:
        cursor = con.execute(_sql("file_sniff_text.sql"), params)
        (row,) = cursor.fetchall()
    except duckdb.Error as exc:
        raise InputError(read_error_message(exc, str(path), delimiter, encoding)) from exc
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_file_relation(
    con: duckdb.DuckDBPyConnection,
    scan_path: str,
    file_format: str,
    read_options: dict[str, Any] | None = None,
) -> duckdb.DuckDBPyRelation:
    """Open an interactions file as a DuckDB relation (schema sniffed, nothing scanned yet).

    Args:
        con: DuckDB connection.
        scan_path: File path or parquet glob.
        file_format: ``"parquet"`` or ``"text"``.
        read_options: For text, the options of :class:`FileLayout`; ``names`` renames the
            columns.

    Returns:
        The relation over the file.

    Raises:
        InputError: If DuckDB cannot read the file, or ``names`` does not give one name per
            column.
    """
    options = read_options or {}
    try:
        if file_format == "parquet":
            return con.read_parquet(scan_path)
        rel = con.sql(
            _sql("file_read_text.sql"),
            params={
                "path": scan_path,
                "delim": options["delimiter"],
                "quote": options["quote"],
                "escape": options["escape"],
                "header": options["header"],
                "skip": options["skip"],
                "encoding": options["encoding"],
                "compression": options["compression"],
            },
        )
    except duckdb.Error as exc:
        if file_format == "parquet":
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"could not parse interactions_file {scan_path!r} as parquet: {first}; check "
                "that it is a valid parquet file (or give it a .csv/.tsv/.dat name if it is "
                "text)."
            ) from exc
        raise InputError(
            read_error_message(exc, scan_path, options["delimiter"], options["encoding"])
        ) from exc
    names = options.get("names")
    if names:
        if len(names) != len(rel.columns):
            raise InputError(
                f"columns['names'] gives {len(names)} names but {scan_path!r} has "
                f"{len(rel.columns)} columns ({rel.columns}); give one name per column."
            )
        rel = rel.select(
            *[duckdb.ColumnExpression(c).alias(n) for c, n in zip(rel.columns, names, strict=True)]
        )
    return rel


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_ORIGINAL_LINE = re.compile(r"Original Line: ?(.*)")
_COLUMN_COUNT = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")
_CONVERSION = re.compile(
    r"Error when converting column \"(.+?)\"\. Could not convert string \"(.*?)\" to '(\w+)'"
)


def read_error_message(exc: duckdb.Error, path: str, delimiter: str, encoding: str) -> str:
    """Turn DuckDB's error about a delimited text file into what, where and how to fix it.

    Args:
        exc: The DuckDB error (from the sniffer or from the full read).
        path: The file, as shown to the user.
        delimiter: The delimiter used.
        encoding: The encoding used.

    Returns:
        The message for an :class:`InputError`.
    """
    text = str(exc)
    line_match = _CSV_LINE.search(text)
    where = f"line {line_match.group(1)} of {path}" if line_match else path
    original = _ORIGINAL_LINE.search(text)
    shown_line = f" ({original.group(1)[:200]!r})" if original and line_match else ""
    count = _COLUMN_COUNT.search(text)
    if count:
        return (
            f"{where}{shown_line} has {count.group(2)} fields where the lines before it have "
            f"{count.group(1)} (delimiter {delimiter!r}); every line needs the same number of "
            "fields: fix or remove that line (quote fields that contain the delimiter), or give "
            'the right "delimiter" in the column mapping.'
        )
    if "Invalid unicode" in text:
        return (
            f"{where} is not valid {encoding} text{shown_line}; the first lines were, so "
            f'{encoding} was assumed: set "encoding": "latin-1" in the column mapping if '
            "the file is latin-1, or convert it to UTF-8."
        )
    conversion = _CONVERSION.search(text)
    if conversion:
        column, value, type_name = conversion.groups()
        return (
            f"{where}: column {column!r} holds {value!r}, but its type was detected as "
            f"{type_name} from the file's first rows; fix or remove that line (ids must be "
            "all integers or all text in a column)."
        )
    if "not possible to automatically detect" in text:
        return (
            f"could not parse interactions_file {path!r} as delimited text with delimiter "
            f"{delimiter!r}: DuckDB found no consistent quoting in its first rows; check the "
            'delimiter (set "delimiter" in the column mapping) and unbalanced quotes.'
        )
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    detail = " ".join(lines[:3]) if lines else type(exc).__name__
    return (
        f"could not read {where} as delimited text (delimiter {delimiter!r}, {encoding}): "
        f"{detail}; fix the file, or the delimiter/header/encoding in the column mapping."
    )
