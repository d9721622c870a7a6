"""``--dataset file`` on interaction files as they are published: every format, delimiter,
encoding, header and position case, and a clear error for each file that cannot be read.

Fixtures are MovieLens-100k's ratings (through the ``ml100k_dir`` fixture) rewritten in the
published layouts of :mod:`tests.file_layouts`; each test resolves the file as the flow's
``start`` step does and, where rows matter, prepares the split as ``get_dataset`` does and
compares every row with what was written.
"""

from __future__ import annotations

import bz2
import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data import prepare_dataset, resolve_source
from data.files import SAMPLE_BYTES
from reclab.errors import InputError
from tests.file_layouts import (
    bookcrossing_ratings,
    lastfm_plays,
    ml100k_ratings,
    ml100k_titles,
    write_bookcrossing_csv,
    write_hetrec_user_artists,
    write_lastfm_tsv,
    write_movielens_csv,
    write_movielens_dat,
)

POSITIONS = {"user": 0, "item": 1, "weight": 2, "timestamp": 3}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RECLAB_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def ratings(ml100k_dir) -> pd.DataFrame:
    """u.data of the first 100 users (about 10k rows, every user with 20+ ratings)."""
    return ml100k_ratings(ml100k_dir, max_user=100)


@pytest.fixture(scope="module")
def all_ratings(ml100k_dir) -> pd.DataFrame:
    """All of u.data (100k rows, about 2 MB as text: more than the 1 MiB start looks at)."""
    return ml100k_ratings(ml100k_dir)


@pytest.fixture(scope="module")
def plays(ratings, ml100k_dir) -> pd.DataFrame:
    return lastfm_plays(ratings, ml100k_titles(ml100k_dir))


def read_splits(out: Path) -> pd.DataFrame:
    """train/valid/test of a prepared dataset, concatenated."""
    return pd.concat(
        [pd.read_parquet(out / f"{s}.parquet") for s in ("train", "valid", "test")],
        ignore_index=True,
    )


def assert_rows(out: Path, want: pd.DataFrame) -> pd.DataFrame:
    """The prepared rows are exactly ``want`` (user_id, item_id, weight and, if given, ts)."""
    got = read_splits(out)
    columns = list(want.columns)
    sort = [c for c in ("user_id", "item_id", "ts", "weight") if c in columns]
    pd.testing.assert_frame_equal(
        got[columns].sort_values(sort).reset_index(drop=True),
        want.sort_values(sort).reset_index(drop=True),
        check_dtype=False,
    )
    return got


def rated(frame: pd.DataFrame, weight: str = "rating") -> pd.DataFrame:
    """Expected canonical rows of a MovieLens-style frame."""
    return pd.DataFrame(
        {
            "user_id": frame["user"],
            "item_id": frame["item"],
            "weight": frame[weight].astype(float),
            "ts": pd.to_datetime(frame["ts"], unit="s"),
        }
    )


# ------------------------------------------------------------------------------------------
# Published layouts
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ratings.dat", "ratings.dat.gz"])
def test_movielens_dat_by_position(tmp_path, ratings, name):
    path = write_movielens_dat(ratings, tmp_path / name)
    source = resolve_source("file", interactions_file=str(path), columns=POSITIONS)
    options = source.read_options
    assert source.file_format == "text"
    assert (options["delimiter"], options["header"], options["encoding"]) == ("::", False, "utf-8")
    assert options["compression"] == ("gzip" if name.endswith(".gz") else "none")
    assert source.columns["user"] == "column0" and source.columns["timestamp"] == "column3"
    info = prepare_dataset(source, tmp_path / "out")
    assert info["method"] == "time_window"
    assert any("delimiter '::' (detected), no header row" in n for n in info["notes"])
    assert_rows(tmp_path / "out", rated(ratings))


def test_movielens_dat_as_json_string_mapping(tmp_path, ratings):
    """The flow passes --columns as JSON text; positions survive the round trip."""
    path = write_movielens_dat(ratings, tmp_path / "ratings.dat")
    columns = json.dumps({**POSITIONS, "delimiter": "::", "header": False})
    source = resolve_source("file", interactions_file=str(path), columns=columns)
    assert source.columns["weight"] == "column2"
    assert "given" in source.notes[0]


@pytest.mark.parametrize("name", ["plays.tsv", "plays.tsv.gz"])
def test_lastfm_play_counts_headerless_by_position(tmp_path, plays, name):
    path = write_lastfm_tsv(plays, tmp_path / name)
    columns = {"user": 0, "item": 1, "weight": 3, "item_features": [2]}
    source = resolve_source("file", interactions_file=str(path), columns=columns)
    assert (source.read_options["delimiter"], source.read_options["header"]) == ("\t", False)
    assert not source.has_timestamps
    info = prepare_dataset(source, tmp_path / "out")
    assert info["method"] == "random_per_user"
    assert info["item_features"] == ["item_column2"]
    want = pd.DataFrame(
        {"user_id": plays["user"], "item_id": plays["artist_id"], "weight": plays["plays"]}
    )
    got = assert_rows(tmp_path / "out", want)
    assert got["ts"].isna().all()
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").set_index("item_id")
    first = plays.iloc[0]
    assert items.loc[first["artist_id"], "item_column2"] == first["artist"]


def test_lastfm_play_counts_with_names(tmp_path, plays):
    path = write_lastfm_tsv(plays, tmp_path / "plays.tsv")
    columns = {
        "names": ["user", "artist_id", "artist", "plays"],
        "user": "user",
        "item": "artist_id",
        "weight": "plays",
        "item_features": ["artist"],
    }
    source = resolve_source("file", interactions_file=str(path), columns=columns)
    assert list(source.schema) == ["user", "artist_id", "artist", "plays"]
    info = prepare_dataset(source, tmp_path / "out")
    assert info["item_features"] == ["item_artist"]
    assert len(read_splits(tmp_path / "out")) == len(plays)


def test_movielens_csv_with_header_gzip(tmp_path, ratings):
    path = write_movielens_csv(ratings, tmp_path / "ratings.csv.gz")
    columns = {"user": "userId", "item": "movieId", "weight": "rating", "timestamp": "timestamp"}
    source = resolve_source("file", interactions_file=str(path), columns=columns)
    assert source.read_options["header"] is True
    assert source.read_options["compression"] == "gzip"
    assert source.schema["rating"] == "DOUBLE"
    prepare_dataset(source, tmp_path / "out")
    assert_rows(tmp_path / "out", rated(ratings))


def test_bookcrossing_quoted_semicolons_latin1(tmp_path, ratings):
    books = bookcrossing_ratings(ratings)
    path = write_bookcrossing_csv(books, tmp_path / "BX-Book-Ratings.csv")
    columns = {"user": "User-ID", "item": "ISBN", "weight": "Book-Rating"}
    source = resolve_source("file", interactions_file=str(path), columns=columns)
    options = source.read_options
    assert (options["delimiter"], options["quote"], options["encoding"]) == (";", '"', "latin-1")
    # Header on line 1, the first ISBN with a latin-1 byte on line 3.
    assert "line 3 is not valid UTF-8: reading the file as latin-1" in source.notes
    info = prepare_dataset(source, tmp_path / "out")
    assert info["method"] == "random_per_user"
    want = pd.DataFrame(
        {"user_id": books["user"], "item_id": books["isbn"], "weight": books["rating"]}
    )
    got = assert_rows(tmp_path / "out", want)
    assert got["item_id"].str.endswith("é").any()


def test_hetrec_dat_with_header(tmp_path, ratings):
    path = write_hetrec_user_artists(ratings, tmp_path / "user_artists.dat")
    columns = {"user": "userID", "item": "artistID", "weight": "weight"}
    source = resolve_source("file", interactions_file=str(path), columns=columns)
    assert (source.read_options["delimiter"], source.read_options["header"]) == ("\t", True)
    prepare_dataset(source, tmp_path / "out")
    want = pd.DataFrame(
        {"user_id": ratings["user"], "item_id": ratings["item"], "weight": ratings["rating"] * 100}
    )
    assert_rows(tmp_path / "out", want)


def test_published_u_data_with_an_unknown_extension(ml100k_dir, all_ratings, tmp_path):
    """GroupLens's own u.data (``.data``) is read by its content: tab-separated, no header."""
    source = resolve_source("file", interactions_file=str(ml100k_dir / "u.data"), columns=POSITIONS)
    assert (source.read_options["delimiter"], source.read_options["header"]) == ("\t", False)
    info = prepare_dataset(source, tmp_path / "out")
    assert (info["training_end_date"], info["validation_end_date"]) == ("1998-03-07", "1998-03-31")
    assert_rows(tmp_path / "out", rated(all_ratings))


DELIMITER_CASES = [
    (",", "ratings.csv"),
    (";", "ratings.csv"),
    ("\t", "ratings.tsv"),
    ("|", "ratings.txt"),
    ("::", "ratings.dat"),
]


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
@pytest.mark.parametrize(("delimiter", "name"), DELIMITER_CASES, ids=lambda v: repr(v))
def test_every_delimiter_detected_or_given(tmp_path, ratings, delimiter, name, header):
    frame = ratings
    lines = frame.astype(str).agg(delimiter.join, axis=1)
    first = delimiter.join(["u", "i", "r", "t"]) + "\n" if header else ""
    path = tmp_path / name
    path.write_text(first + "\n".join(lines) + "\n")
    mapping = {"user": "u", "item": "i", "weight": "r", "timestamp": "t"} if header else POSITIONS
    detected = resolve_source("file", interactions_file=str(path), columns=mapping)
    assert detected.read_options["delimiter"] == delimiter
    assert detected.read_options["header"] is header
    given = resolve_source(
        "file", interactions_file=str(path), columns={**mapping, "delimiter": delimiter}
    )
    assert given.read_options == detected.read_options
    prepare_dataset(given, tmp_path / "out")
    assert_rows(tmp_path / "out", rated(frame))


@pytest.mark.parametrize("alias", ["\t", "\\t", "tab"])
def test_tab_delimiter_aliases(tmp_path, ratings, alias):
    path = write_hetrec_user_artists(ratings, tmp_path / "user_artists.dat")
    columns = {"user": 0, "item": 1, "delimiter": alias}
    assert resolve_source("file", interactions_file=str(path), columns=columns).read_options[
        "delimiter"
    ] == ("\t")


def test_text_only_file_header_follows_the_mapping(tmp_path, plays):
    """With every column text, DuckDB cannot tell a header; the mapping (or "header") decides."""
    two = plays[["user", "artist_id"]]
    path = tmp_path / "pairs.tsv"
    path.write_text("".join((two["user"] + "\t" + two["artist_id"] + "\n").tolist()))
    by_position = resolve_source(
        "file", interactions_file=str(path), columns={"user": 0, "item": 1}
    )
    assert by_position.read_options["header"] is False
    assert any("cannot be detected" in n for n in by_position.notes)
    prepare_dataset(by_position, tmp_path / "out")
    assert len(read_splits(tmp_path / "out")) == len(two)
    named = {"names": ["u", "a"], "header": False, "user": "u", "item": "a"}
    source = resolve_source("file", interactions_file=str(path), columns=named)
    assert source.read_options["header"] is False and list(source.schema) == ["u", "a"]
    # Mapped by name without "header", the first line is taken as the column names.
    first_user, first_item = two.iloc[0]
    header = resolve_source(
        "file", interactions_file=str(path), columns={"user": first_user, "item": first_item}
    )
    assert header.read_options["header"] is True


def test_header_given_overrides_detection(tmp_path, ratings):
    path = write_movielens_dat(ratings, tmp_path / "ratings.dat")
    user, item = (str(v) for v in ratings.iloc[0][["user", "item"]])
    source = resolve_source(
        "file", interactions_file=str(path), columns={"header": True, "user": user, "item": item}
    )
    assert source.read_options["header"] is True
    assert list(source.schema)[:2] == [user, item]


def test_latin1_given_and_utf8_refused(tmp_path, ratings):
    books = bookcrossing_ratings(ratings)
    path = write_bookcrossing_csv(books, tmp_path / "BX-Book-Ratings.csv")
    columns = {"user": 0, "item": 1, "weight": 2}
    source = resolve_source(
        "file", interactions_file=str(path), columns={**columns, "encoding": "ISO-8859-1"}
    )
    assert source.read_options["encoding"] == "latin-1"
    assert not any("not valid UTF-8" in n for n in source.notes)
    with pytest.raises(InputError, match=r"not valid utf-8 text: line 3 has the byte b'\\xe9'"):
        resolve_source("file", interactions_file=str(path), columns={**columns, "encoding": "utf8"})


def test_invalid_utf8_after_the_sample_names_the_line(tmp_path, all_ratings, plays):
    """start looks at the first megabyte only; the full read names the line and the fix."""
    names = plays["artist"].to_numpy()[np.arange(len(all_ratings)) % len(plays)]
    text = "".join(
        (
            all_ratings["user"].astype(str)
            + "\t"
            + all_ratings["item"].astype(str)
            + "\t"
            + names
            + "\n"
        ).tolist()
    )
    assert len(text) > SAMPLE_BYTES
    path = tmp_path / "late.tsv"
    path.write_bytes(text.encode() + "5\t7\tcafé\n".encode("latin-1"))
    columns = {"user": 0, "item": 1, "item_features": [2]}
    source = resolve_source("file", interactions_file=str(path), columns=columns)
    assert source.read_options["encoding"] == "utf-8"
    line = len(all_ratings) + 1
    with pytest.raises(InputError, match=rf"line {line} of .*late.tsv is not valid utf-8 text"):
        prepare_dataset(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    source = resolve_source(
        "file", interactions_file=str(path), columns={**columns, "encoding": "latin-1"}
    )
    prepare_dataset(source, tmp_path / "out")
    assert (read_splits(tmp_path / "out")["item_column2"] == "café").sum() == 1


@pytest.mark.parametrize(("codec", "encoding"), [("utf-16", "utf-16"), ("utf-8-sig", "utf-8")])
def test_byte_order_marks(tmp_path, ratings, codec, encoding):
    """Excel-style exports start with a byte-order mark; the header's first name is clean."""
    line = ratings["user"].astype(str) + "," + ratings["item"].astype(str) + "\n"
    path = tmp_path / "export.csv"
    path.write_bytes(("user,item\n" + "".join(line.tolist())).encode(codec))
    columns = {"user": "user", "item": "item"}
    source = resolve_source("file", interactions_file=str(path), columns=columns)
    assert source.read_options["encoding"] == encoding
    prepare_dataset(source, tmp_path / "out")
    assert len(read_splits(tmp_path / "out")) == len(ratings)


def test_parquet_positions_still_work(tmp_path, ratings):
    path = tmp_path / "ratings.parquet"
    ratings.to_parquet(path)
    source = resolve_source("file", interactions_file=str(path), columns=POSITIONS)
    assert source.file_format == "parquet" and source.read_options == {}
    prepare_dataset(source, tmp_path / "out")
    assert_rows(tmp_path / "out", rated(ratings))


# ------------------------------------------------------------------------------------------
# Checks kept for text files
# ------------------------------------------------------------------------------------------


def test_missing_item_ids_in_a_play_count_tsv(tmp_path, plays):
    broken = plays.copy()
    broken.loc[[4, 9], "artist_id"] = ""
    path = write_lastfm_tsv(broken, tmp_path / "plays.tsv")
    source = resolve_source("file", interactions_file=str(path), columns={"user": 0, "item": 1})
    with pytest.raises(InputError, match=rf"2 of {len(plays)} rows .* null id in column 'column1'"):
        prepare_dataset(source, tmp_path / "out")


def test_millisecond_timestamps_in_a_dat_file(tmp_path, ratings):
    path = write_movielens_dat(ratings.assign(ts=ratings["ts"] * 1000), tmp_path / "ratings.dat")
    source = resolve_source("file", interactions_file=str(path), columns=POSITIONS)
    with pytest.raises(InputError, match="milliseconds"):
        prepare_dataset(source, tmp_path / "out")


def test_non_numeric_weight_in_a_dat_file(tmp_path, ratings):
    frame = ratings.astype({"rating": str})
    frame.loc[3, "rating"] = "five"
    path = write_movielens_dat(frame, tmp_path / "ratings.dat")
    source = resolve_source("file", interactions_file=str(path), columns=POSITIONS)
    with pytest.raises(InputError, match=r"non-numeric weight in column 'column2' \(e.g. 'five'\)"):
        prepare_dataset(source, tmp_path / "out")


# ------------------------------------------------------------------------------------------
# What cannot be read, and bad mappings
# ------------------------------------------------------------------------------------------


def _zip_of(path: Path, inner: str, text: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(inner, text)
    return path


UNREADABLE = {
    "xlsx": (
        lambda d: _zip_of(d / "ratings.xlsx", "xl/workbook.xml", "<workbook/>"),
        "is a spreadsheet.*export the sheet as CSV",
    ),
    "zip": (
        lambda d: _zip_of(d / "ml-1m.zip", "ml-1m/ratings.dat", "1::2::3::4\n"),
        "is a zip archive.*extract it",
    ),
    "zip named csv": (
        lambda d: _zip_of(d / "ratings.csv", "ratings.csv", "1,2\n"),
        "is a zip archive",
    ),
    "json": (
        lambda d: (
            (d / "ratings.json").write_text('[{"user": 1, "item": 2}]') and d / "ratings.json"
        ),
        "is JSON.*COPY",
    ),
    "json lines as txt": (
        lambda d: (d / "ratings.txt").write_text('{"user": 1, "item": 2}\n') and d / "ratings.txt",
        "looks like JSON",
    ),
    "binary": (
        lambda d: (
            (d / "ratings.dat").write_bytes(
                np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
            )
            and d / "ratings.dat"
        ),
        "could not parse .* binary file, not delimited text",
    ),
    "bzip2": (
        lambda d: (
            (d / "ratings.dat.bz2").write_bytes(bz2.compress(b"1::2::3::4\n"))
            and d / "ratings.dat.bz2"
        ),
        "bzip2-compressed.*recompress it with gzip",
    ),
    "corrupt gzip": (
        lambda d: (
            (d / "ratings.dat.gz").write_bytes(gzip.compress(b"1::2::3::4\n" * 1000)[:40])
            and d / "ratings.dat.gz"
        ),
        "cannot be decompressed",
    ),
    "gzipped parquet": (
        lambda d: (
            (d / "r.parquet.gz").write_bytes(gzip.compress(b"PAR1" + b"\x00" * 64))
            and d / "r.parquet.gz"
        ),
        "gzip-compressed parquet",
    ),
    "one column": (
        lambda d: (d / "ids.txt").write_text("1\n2\n3\n") and d / "ids.txt",
        "none of the delimiters",
    ),
    "column counts": (
        lambda d: (
            (d / "r.dat").write_text("1::2::3::4\n1::3::4::5\n2::2::5::6::7\n3::1::1::1\n")
            and d / "r.dat"
        ),
        r"line 3 splits into 5 fields on '::' where line 1 and most others have 4",
    ),
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_unreadable_files_fail_in_start(tmp_path, case):
    make, message = UNREADABLE[case]
    path = make(tmp_path)
    with pytest.raises(InputError, match=message):
        resolve_source("file", interactions_file=str(path), columns={"user": 0, "item": 1})


# A bad last line, after the sampled head: the full read names it. {line} is its number.
BAD_LAST_LINES = {
    "column count": (
        "1::2::3::4::5",
        r"line {line} of .*ratings.dat \('1::2::3::4::5'\) has 5 fields where the lines before "
        "it have 4",
    ),
    "id type change": ("u1::2::3::4", r"line {line} of .*: column 'column0' holds 'u1'.*BIGINT"),
}


@pytest.mark.parametrize("case", list(BAD_LAST_LINES))
def test_a_bad_line_after_the_sample_is_named(tmp_path, all_ratings, case):
    bad_line, message = BAD_LAST_LINES[case]
    path = write_movielens_dat(all_ratings, tmp_path / "ratings.dat")
    with path.open("a") as handle:
        handle.write(bad_line + "\n")
    source = resolve_source("file", interactions_file=str(path), columns=POSITIONS)
    with pytest.raises(InputError, match=message.format(line=len(all_ratings) + 1)):
        prepare_dataset(source, tmp_path / "out")


BAD_MAPPINGS = {
    "position out of range": ({"user": 0, "item": 7}, "columns\\['item'\\] = 7 is not a column"),
    "position as bool": ({"user": 0, "item": True}, "must be a column name .* or a 0-based"),
    "feature position": ({"user": 0, "item": 1, "item_features": [9]}, "item_features"),
    "names on headerless": ({"user": "user", "item": "item"}, "has no header row.*position"),
    "delimiter": ({"user": 0, "item": 1, "delimiter": ":"}, "delimiter'\\] = ':' is not"),
    "header": ({"user": 0, "item": 1, "header": "no"}, "must be true or false"),
    "encoding": ({"user": 0, "item": 1, "encoding": "cp1252"}, "use utf-8, latin-1 or utf-16"),
    "names count": ({"user": 0, "item": 1, "names": ["a", "b"]}, "gives 2 names but"),
    "names repeated": ({"user": 0, "item": 1, "names": ["a", "a", "b", "c"]}, "distinct"),
    "unknown key": ({"user": 0, "item": 1, "sep": "::"}, "unknown keys \\['sep'\\]"),
}


@pytest.mark.parametrize("case", list(BAD_MAPPINGS))
def test_bad_mappings_of_a_dat_file(tmp_path, ratings, case):
    columns, message = BAD_MAPPINGS[case]
    path = write_movielens_dat(ratings, tmp_path / "ratings.dat")
    with pytest.raises(InputError, match=message):
        resolve_source("file", interactions_file=str(path), columns=columns)


def test_text_options_refused_for_parquet(tmp_path, ratings):
    path = tmp_path / "ratings.parquet"
    ratings.to_parquet(path)
    with pytest.raises(InputError, match=r"sets \['delimiter'\] .* is parquet"):
        resolve_source("file", interactions_file=str(path), columns={**POSITIONS, "delimiter": ","})
