"""The named datasets load through the real resolver and loader from files in their published
format, and the download path is safe against a loopback HTTP server.

Every fixture is written here, small, in the exact published layout: the same file names,
folder names, separators, header (or none), quoting, encodings, and archives (zip, tar.gz,
the xlsx written with openpyxl). Nothing is downloaded from the internet; the download tests
serve fixture archives from ``http.server`` on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from data import prepare_dataset, resolve_source
from data.download import MANIFEST_NAME, read_manifest
from data.hm import HmSource
from data.lastfm import LastFm360kSource
from data.movielens import MOVIELENS_PUBLICATIONS, MovieLensSource
from data.online_retail import OnlineRetailSource
from reclab.errors import InputError
from tests.conftest import run_flow

SPLITS = ("train", "valid", "test")
T0 = int(datetime(2003, 1, 1, tzinfo=UTC).timestamp())
DAY = 86_400


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """A fresh download cache per test, and no data directory from the environment."""
    monkeypatch.setenv("RECLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RECLAB_DATA_DIR", raising=False)


def read_splits(out: Path) -> pd.DataFrame:
    """The three split files concatenated, with a ``split`` column."""
    frames = [pd.read_parquet(out / f"{s}.parquet").assign(split=s) for s in SPLITS]
    return pd.concat(frames, ignore_index=True)


def prepared(source, tmp_path: Path, name: str = "out") -> tuple[dict, pd.DataFrame, Path]:
    """Run the real loader, sampling and split; return (split info, all rows, out dir)."""
    out = tmp_path / name
    info = prepare_dataset(source, out)
    return info, read_splits(out), out


def evaluable_users(df: pd.DataFrame) -> dict[str, int]:
    """Evaluable users per window, counted from the written splits: users in train with a
    window item that is not among their train items (what the evaluator can score)."""
    pairs = df[["user_id", "item_id", "split"]].drop_duplicates()
    train = pairs[pairs["split"] == "train"][["user_id", "item_id"]]
    window = pairs[(pairs["split"] != "train") & pairs["user_id"].isin(train["user_id"])]
    new = window.merge(train, on=["user_id", "item_id"], how="left", indicator=True)
    counts = new[new["_merge"] == "left_only"].groupby("split")["user_id"].nunique()
    return {split: int(counts.get(split, 0)) for split in ("valid", "test")}


def check_evaluable(info: dict, df: pd.DataFrame) -> None:
    """The fixture gives every evaluation window an evaluable user, as the split info says."""
    assert info["evaluable_users"] == evaluable_users(df)
    assert min(info["evaluable_users"].values()) > 0


def zip_folder(folder: Path, archive: Path) -> Path:
    """Zip ``folder`` as GroupLens does: members under ``<folder name>/``."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent).as_posix())
    return archive


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------
# MovieLens fixtures: 8 users x 10 movies, one rating a day. The movies come out one after
# another and the users rate each in turn (movie m on days 10m+1 .. 10m+8), so every window has
# users who rated older movies in train and now rate a new one: each window is evaluable.
# ------------------------------------------------------------------------------------------

ML_RATINGS = [
    (user, movie, [1.0, 2.5, 3.0, 4.5, 5.0][(user + movie) % 5], T0 + ((movie * 10 + user) * DAY))
    for user in range(1, 9)
    for movie in range(1, 11)
    if (user + movie) % 4 != 0
]
# (id, title, genres): a latin-1 accent, a title with "::" (the file has no quoting), a title
# without a year, "(no genres listed)".
ML_MOVIES = [
    (1, "Toy Story (1995)", "Animation|Children's|Comedy"),
    (2, "Misérables, Les (1995)", "Drama|Musical"),
    (3, "Star Wars: Episode IV - A New Hope (1977)", "Action|Adventure|Sci-Fi"),
    (4, "Strange::Title (2001)", "Comedy"),
    (5, "Babylon 5", "Sci-Fi"),
    (6, "American President, The (1995)", "Comedy|Drama|Romance"),
    (7, "Heat (1995)", "(no genres listed)"),
    (8, 'Shawshank "Redemption" (1994)', "Drama"),
    (9, "Á köldum klaka (Cold Fever) (1994)", "Comedy|Drama"),
    (10, "Unrated Movie (2000)", "Horror"),
    (11, "Never Rated (1999)", "Documentary"),
]
ML1M_USERS = [
    (u, "MF"[u % 2], [1, 18, 25, 35, 45, 50, 56][u % 7], u % 21, f"{u:05d}") for u in range(1, 9)
]


def write_ml_dat(folder: Path, *, encoding: str, users: bool) -> Path:
    """ML-1M / ML-10M layout: ``::``-separated ``.dat`` files, no header, ``\\n`` lines."""
    folder.mkdir(parents=True)
    lines = [f"{u}::{i}::{r:g}::{t}" for u, i, r, t in ML_RATINGS]
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="ascii")
    movies = [f"{i}::{title}::{genres}" for i, title, genres in ML_MOVIES]
    (folder / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode(encoding))
    if users:
        rows = [f"{u}::{g}::{a}::{o}::{z}" for u, g, a, o, z in ML1M_USERS]
        (folder / "users.dat").write_text("\n".join(rows) + "\n", encoding="latin-1")
    else:  # ML-10M ships tags.dat instead of users.dat
        (folder / "tags.dat").write_text("1::1::funny::1139045764\n", encoding="ascii")
    (folder / "README").write_text("MovieLens fixture\n", encoding="ascii")
    return folder


def write_ml_csv(folder: Path) -> Path:
    """ML-20M / ML-25M layout: CSV with a header, titles with commas double-quoted."""
    folder.mkdir(parents=True)
    lines = ["userId,movieId,rating,timestamp"]
    lines += [f"{u},{i},{r:.1f},{t}" for u, i, r, t in ML_RATINGS]
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    movies = ["movieId,title,genres"]
    for i, title, genres in ML_MOVIES:
        quoted = '"' + title.replace('"', '""') + '"' if ("," in title or '"' in title) else title
        movies.append(f"{i},{quoted},{genres}")
    (folder / "movies.csv").write_text("\n".join(movies) + "\n", encoding="utf-8")
    (folder / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0114709,862\n", encoding="utf-8")
    (folder / "README.txt").write_text("MovieLens fixture\n", encoding="utf-8")
    return folder


def check_movielens(info: dict, df: pd.DataFrame, out: Path) -> None:
    """Counts, ratings, times, titles, genres and years of a MovieLens fixture load."""
    assert info["method"] == "time_window"
    assert len(df) == len(ML_RATINGS) == info["rows_source"]
    assert df["user_id"].nunique() == 8 and df["item_id"].nunique() == 10
    assert str(df["item_id"].dtype) == "int64" and str(df["weight"].dtype) == "float64"
    expected = {(u, i): (r, t) for u, i, r, t in ML_RATINGS}
    row = df.query("user_id == 1 and item_id == 2").iloc[0]
    assert (row["weight"], row["ts"]) == (4.5, pd.Timestamp(T0 + 21 * DAY, unit="s"))
    assert expected[(1, 2)] == (4.5, T0 + 21 * DAY)
    assert set(df["weight"]) == {1.0, 2.5, 3.0, 4.5, 5.0}
    items = pd.read_parquet(out / "items.parquet").set_index("item_id")
    assert len(items) == len(ML_MOVIES)  # the catalogue, rated or not
    assert items.loc[2, "title"] == "Misérables, Les (1995)"
    assert items.loc[9, "title"] == "Á köldum klaka (Cold Fever) (1994)"
    assert items.loc[6, "title"] == "American President, The (1995)"
    assert items.loc[8, "title"] == 'Shawshank "Redemption" (1994)'
    assert list(items.loc[1, "item_genres"]) == ["Animation", "Children's", "Comedy"]
    assert list(items.loc[7, "item_genres"]) == []
    assert items.loc[3, "item_year"] == 1977 and pd.isna(items.loc[5, "item_year"])
    assert "item_genres" in info["item_features"] and "item_year" in info["item_features"]
    check_evaluable(info, df)


def test_movielens_1m_zip_dat_latin1_and_users(tmp_path):
    folder = write_ml_dat(tmp_path / "build" / "ml-1m", encoding="latin-1", users=True)
    archive = zip_folder(folder, tmp_path / "ml-1m.zip")
    # The archive itself as --data-dir: it must match the published sum, which a fixture cannot.
    source = resolve_source("movielens-1m", data_dir=str(archive))
    assert isinstance(source, MovieLensSource) and source.local_archive == str(archive)
    with pytest.raises(InputError, match="checksum mismatch for MovieLens-1M archive ml-1m.zip"):
        source.fetch()
    assert not (tmp_path / "cache" / "movielens-1m" / "ml-1m").exists()
    source = dataclasses.replace(source, checksum=f"sha256:{sha256_of(archive)}")
    info, df, out = prepared(source, tmp_path)
    check_movielens(info, df, out)
    users = pd.read_parquet(out / "users.parquet").set_index("user_id")
    assert list(users.columns) == ["user_age", "user_gender", "user_occupation"]
    assert users.loc[3].tolist() == [35, "F", "3"]  # from the line 3::F::35::3::00003
    assert info["user_features"] == ["user_age", "user_gender", "user_occupation"]
    assert any("matches the published sum" in note for note in info["notes"])
    # Unpacked once into the cache; the same archive is not unpacked again.
    unpacked = tmp_path / "cache" / "movielens-1m" / "ml-1m"
    assert read_manifest(unpacked)["sha256"] == sha256_of(archive)
    stamp = (unpacked / MANIFEST_NAME).stat().st_mtime_ns
    assert source.fetch() == unpacked and (unpacked / MANIFEST_NAME).stat().st_mtime_ns == stamp


def test_movielens_10m_utf8_folder_alias_and_md5(tmp_path):
    write_ml_dat(tmp_path / "data" / "ml-10M100K", encoding="utf-8", users=False)
    source = resolve_source("movielens-10m", data_dir=str(tmp_path / "data"))
    assert source.local_dir == str(tmp_path / "data" / "ml-10M100K")
    info, df, out = prepared(source, tmp_path)
    check_movielens(info, df, out)
    users = pd.read_parquet(out / "users.parquet")
    assert list(users.columns) == ["user_id"] and len(users) == 8
    assert MOVIELENS_PUBLICATIONS["movielens-10m"].checksum.startswith("md5:")


def test_movielens_20m_parent_and_25m_folder(tmp_path):
    write_ml_csv(tmp_path / "data" / "ml-20m")
    info, df, out = prepared(
        resolve_source("movielens-20m", data_dir=str(tmp_path / "data")), tmp_path
    )
    check_movielens(info, df, out)
    write_ml_csv(tmp_path / "other" / "ml-25m")
    source = resolve_source("movielens-25m", data_dir=str(tmp_path / "other" / "ml-25m"))
    info, df, out = prepared(source, tmp_path, "out25")
    check_movielens(info, df, out)
    with pytest.raises(InputError, match="looks like the movielens-20m files"):
        resolve_source("movielens-25m", data_dir=str(tmp_path / "data" / "ml-20m"))


def test_movielens_missing_file_and_bad_dir(tmp_path):
    folder = write_ml_dat(tmp_path / "ml-1m", encoding="latin-1", users=True)
    (folder / "users.dat").unlink()
    with pytest.raises(InputError, match=r"\['users.dat'\] are missing"):
        resolve_source("movielens-1m", data_dir=str(folder))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no MovieLens-1M files") as err:
        resolve_source("movielens-1m", data_dir=str(empty))
    assert "files.grouplens.org/datasets/movielens/ml-1m.zip" in str(err.value)


# ------------------------------------------------------------------------------------------
# last.fm-360K: the tar.gz as published
# ------------------------------------------------------------------------------------------

LASTFM_USERS = [hashlib.sha1(f"user{u}".encode()).hexdigest() for u in range(12)]
LASTFM_ARTISTS = [(f"{a:08x}-3905-4f3a-97e2-8b341527f805", f"artist {a}") for a in range(12)]


def lastfm_lines() -> tuple[list[bytes], dict]:
    """Plays lines as published (TAB, no header, UTF-8) plus the odd rows, and what to expect."""
    lines = []
    for u, user in enumerate(LASTFM_USERS):
        for a, (mbid, name) in enumerate(LASTFM_ARTISTS):
            if (u + a) % 6 != 5:
                lines.append(f"{user}\t{mbid}\t{name}\t{10 * (u + 1) + a}".encode())
    first_mbid = LASTFM_ARTISTS[0][0]
    odd = [
        f"{LASTFM_USERS[0]}\t\tunknown band\t77",  # no artist MBID: dropped
        f"{LASTFM_USERS[1]}\t\tanother unknown\t3",  # no artist MBID: dropped
        f"{LASTFM_USERS[2]}\t{first_mbid}\tartist 0\tnot-a-number",  # bad plays: dropped
        f"{LASTFM_USERS[3]}\t{first_mbid}\tartist 0\t0",  # zero plays: dropped
        f'{LASTFM_USERS[0]}\t{first_mbid}\t"ARTIST 0" live\'s\t5',  # same MBID: plays added
        f"{LASTFM_USERS[4]}\t{first_mbid}\ttab\tin name\t9",  # five fields: malformed
    ]
    lines += [line.encode() for line in odd]
    lines.append(f"{LASTFM_USERS[5]}\t{first_mbid}\tbad ".encode() + b"\xff\t4")  # not UTF-8
    expected = {"missing_mbid": 2, "bad_plays": 1, "zero": 1, "malformed": 2, "merged": 1}
    return lines, expected


def write_lastfm_tar(tmp_path: Path) -> tuple[Path, dict]:
    """``lastfm-dataset-360K.tar.gz`` with the two TSV files, README and script."""
    lines, expected = lastfm_lines()
    profile = [
        f"{user}\t{'mf'[u % 2] if u != 7 else ''}\t{[22, '', 150, 35][u % 4]}\t"
        f"{['Germany', 'United States', '', 'Côte d’Ivoire'][u % 4]}\tFeb 1, 2007"
        for u, user in enumerate(LASTFM_USERS)
    ]
    files = {
        "usersha1-artmbid-artname-plays.tsv": b"\n".join(lines) + b"\n",
        "usersha1-profile.tsv": ("\n".join(profile) + "\n").encode("utf-8"),
        "README.txt": b"Last.fm Dataset - 360K users\n",
        "mbox_sha1sum.py": b"# sha1 of the mbox\n",
    }
    archive = tmp_path / "lastfm-dataset-360K.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        folder = tarfile.TarInfo("lastfm-dataset-360K")
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        tf.addfile(folder)
        for name, data in files.items():
            member = tarfile.TarInfo(f"lastfm-dataset-360K/{name}")
            member.size = len(data)
            member.mode = 0o644
            tf.addfile(member, io.BytesIO(data))
    return archive, expected


def check_lastfm(info: dict, df: pd.DataFrame, out: Path, expected: dict) -> None:
    """Counts, weights, titles, user features and the notes of a last.fm fixture load."""
    n_good = sum(1 for u in range(12) for a in range(12) if (u + a) % 6 != 5)
    assert info["method"] == "random_per_user" and df["ts"].isna().all()
    assert len(df) == info["rows_source"] == n_good  # the extra spelling merged into its row
    assert df["user_id"].nunique() == 12 and df["item_id"].nunique() == 12
    first = LASTFM_ARTISTS[0][0]
    merged = df.query("user_id == @LASTFM_USERS[0] and item_id == @first")["weight"].tolist()
    assert merged == [10.0 + 5.0]
    items = pd.read_parquet(out / "items.parquet").set_index("item_id")
    assert items.loc[LASTFM_ARTISTS[3][0], "title"] == "artist 3"
    assert items.loc[first, "title"] == "artist 0"  # the most common spelling
    users = pd.read_parquet(out / "users.parquet").set_index("user_id")
    assert users.loc[LASTFM_USERS[0]].tolist() == ["m", 22, "Germany"]
    assert pd.isna(users.loc[LASTFM_USERS[2], "user_age"])  # 150: not an age
    assert pd.isna(users.loc[LASTFM_USERS[7], "user_gender"])
    assert users.loc[LASTFM_USERS[3], "user_country"] == "Côte d’Ivoire"
    notes = " | ".join(info["notes"])
    assert f"dropped {expected['missing_mbid']} without an artist MBID" in notes
    assert f"{expected['bad_plays']} whose plays are not a number (e.g. 'not-a-number')" in notes
    assert f"{expected['zero']} with plays <= 0" in notes
    assert f"{expected['malformed']} malformed lines" in notes
    assert f"{expected['merged']} repeated (user, artist MBID) rows merged" in notes
    assert "no timestamps: seeded random per-user 80/10/10 split" in notes
    check_evaluable(info, df)


def test_lastfm_360k_archive_as_data_dir(tmp_path, caplog):
    archive, expected = write_lastfm_tar(tmp_path)
    source = resolve_source("lastfm-360k", data_dir=str(archive))
    assert isinstance(source, LastFm360kSource) and not source.has_timestamps
    with caplog.at_level(logging.WARNING, logger="data.download"):
        info, df, out = prepared(source, tmp_path)
    check_lastfm(info, df, out, expected)
    assert sha256_of(archive) in caplog.text  # no published sum: computed and logged
    assert any(f"SHA256 {sha256_of(archive)}" in note for note in info["notes"])
    with pytest.raises(InputError, match="split dates were given"):
        prepare_dataset(source, tmp_path / "dated", training_end_date="2003-01-01")


def test_lastfm_360k_unpacked_folder(tmp_path):
    archive, expected = write_lastfm_tar(tmp_path)
    with tarfile.open(archive) as tf:
        tf.extractall(tmp_path / "data", filter="data")
    source = resolve_source("lastfm-360k", data_dir=str(tmp_path / "data"))
    assert source.local_dir == str(tmp_path / "data" / "lastfm-dataset-360K")
    info, df, out = prepared(source, tmp_path)
    check_lastfm(info, df, out, expected)


# ------------------------------------------------------------------------------------------
# UCI Online Retail: the xlsx (written with openpyxl), the zip, a CSV export
# ------------------------------------------------------------------------------------------

RETAIL_HEADER = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]


def retail_rows() -> tuple[list[list], dict]:
    """Sheet rows typed as openpyxl reads the published file, and the expected rule counts."""
    rows = []
    start = datetime(2010, 12, 1, 8, 26)
    products = [
        ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 2.55),
        (71053, "WHITE LANTERN", 3.39),
        ("84406B", "CREAM CUPID HEARTS COAT HANGER", 2.75),
        (22752, "SET 7 BABUSHKA NESTING BOXES", 7.65),
    ]
    invoice = 536365
    for day in range(30):
        # The shop adds a product every 7 days and each customer buys one of those on sale a
        # day, in turn: customers come back for new products in the validation and test windows.
        on_sale = products[: 1 + day // 7]
        for c, customer in enumerate((17850.0, 13047.0, 12583.0, 15100.0)):
            code, text, price = on_sale[(day + c) % len(on_sale)]
            when = start + timedelta(days=day, hours=c)
            rows.append(
                [invoice, code, text, 1 + (day + c) % 6, when, price, customer, "United Kingdom"]
            )
            invoice += 1
    # The same stock code twice on one invoice: one interaction, quantities added.
    rows.append(
        [invoice, 22752, "SET 7 BABUSHKA NESTING BOXES ", 2, start, 7.65, 12583.0, "France"]
    )
    rows.append([invoice, 22752, "SET 7 BABUSHKA NESTING BOXES", 3, start, 7.65, 12583.0, "France"])
    # Two invoices of one customer in the same minute, both with 71053 x 2: two purchases, one
    # interaction of weight 4 (as two rows they would be identical and the second dropped).
    again = start + timedelta(days=10, hours=5, minutes=39)
    rows.append([invoice + 1, 71053, "WHITE LANTERN", 2, again, 3.39, 15100.0, "United Kingdom"])
    rows.append([invoice + 2, 71053, "WHITE LANTERN", 2, again, 3.39, 15100.0, "United Kingdom"])
    rows.append(
        [
            "C536379",
            "85123A",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            -6,
            start,
            2.55,
            17850.0,
            "United Kingdom",
        ]
    )
    rows.append([536380, "85123A", "damaged", -12, start, 0, 13047.0, "United Kingdom"])
    rows.append([536381, "85123A", "?", 0, start, 0, 13047.0, "United Kingdom"])
    rows.append([536382, 71053, "WHITE LANTERN", 4, start, 3.39, None, "United Kingdom"])
    rows.append([536383, 71053, "WHITE LANTERN", 4, start, 3.39, None, "EIRE"])
    rows.append([536384, "POST", "POSTAGE", 1, start, 18.0, 12583.0, "France"])
    rows.append([536385, "M", "Manual", 1, start, 2.0, 13047.0, "United Kingdom"])
    rows.append(["A563185", "B", "Adjust bad debt", 1, start, 11062.06, None, "United Kingdom"])
    expected = {
        "cancelled": 1,
        "non_positive_quantity": 2,
        "no_customer": 3,
        "non_product": 2,
        "same_time_invoices": 1,
        "kept": 124,
        "interactions": 122,
        "rows": 132,
    }
    return rows, expected


def write_retail_xlsx(path: Path) -> Path:
    import openpyxl

    rows, _ = retail_rows()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Online Retail"
    sheet.append(RETAIL_HEADER)
    for row in rows:
        sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def write_retail_csv(path: Path, encoding: str) -> Path:
    """A CSV export as shared around (Kaggle's 'data.csv'): M/D/YYYY H:MM dates, latin-1."""
    rows, _ = retail_rows()
    frame = pd.DataFrame(rows, columns=RETAIL_HEADER)
    frame["InvoiceDate"] = [
        f"{d.month}/{d.day}/{d.year} {d.hour}:{d.minute:02d}" for d in frame["InvoiceDate"]
    ]
    # Characters that latin-1 and UTF-8 write differently.
    frame.loc[frame["StockCode"] == "84406B", "Description"] = "CAFÉ CRÈME HANGER"
    frame.to_csv(path, index=False, encoding=encoding)
    return path


def check_retail(info: dict, df: pd.DataFrame, out: Path, expected: dict) -> None:
    """Rule counts in the notes, weights, titles, prices and countries of a retail load."""
    assert info["method"] == "time_window"
    assert len(df) == info["rows_source"] == expected["interactions"]
    notes = " | ".join(info["notes"])
    assert (
        f"{expected['rows']} rows; dropped {expected['cancelled']} of cancelled invoices" in notes
    )
    assert f"{expected['non_positive_quantity']} with a zero, negative or missing Quantity" in notes
    assert f"{expected['no_customer']} without a CustomerID" in notes
    assert f"{expected['non_product']} with a non-product StockCode" in notes
    assert f"kept {expected['kept']}" in notes and "1 lines repeating a stock code" in notes
    assert (
        f"{expected['same_time_invoices']} more of another invoice of the same customer, stock "
        f"code and InvoiceDate (separate purchases, quantities added): "
        f"{expected['interactions']} interactions" in notes
    )
    assert info["duplicates_dropped"] == 0
    assert set(df["item_id"]) == {"85123A", "71053", "84406B", "22752"}
    assert str(df["user_id"].dtype) == "int64" and set(df["user_id"]) == {
        17850,
        13047,
        12583,
        15100,
    }
    merged = df.query("user_id == 12583 and weight == 5.0 and item_id == '22752'")
    assert len(merged) == 1 and merged.iloc[0]["ts"] == pd.Timestamp("2010-12-01 08:26")
    again = df.query("user_id == 15100 and ts == '2010-12-11 14:05'")
    assert again[["item_id", "weight"]].values.tolist() == [["71053", 4.0]]
    items = pd.read_parquet(out / "items.parquet").set_index("item_id")
    assert items.loc["22752", "title"] == "SET 7 BABUSHKA NESTING BOXES"
    assert items.loc["71053", "item_unit_price"] == pytest.approx(3.39)
    users = pd.read_parquet(out / "users.parquet").set_index("user_id")
    assert users.loc[17850, "user_country"] == "United Kingdom"
    assert info["user_features"] == ["user_country"] and info["item_features"] == [
        "item_unit_price"
    ]
    check_evaluable(info, df)


def test_online_retail_xlsx_file(tmp_path):
    xlsx = write_retail_xlsx(tmp_path / "data" / "Online Retail.xlsx")
    _, expected = retail_rows()
    source = resolve_source("online-retail", data_dir=str(xlsx.parent))
    assert isinstance(source, OnlineRetailSource) and source.local_file == str(xlsx)
    info, df, out = prepared(source, tmp_path)
    check_retail(info, df, out, expected)
    converted = list((tmp_path / "cache" / "online-retail").glob("online-retail-*.parquet"))
    assert len(converted) == 1 and source.fetch() == converted[0]  # converted once


def test_online_retail_zip_and_csv_exports(tmp_path):
    _, expected = retail_rows()
    xlsx = write_retail_xlsx(tmp_path / "build" / "Online Retail.xlsx")
    archive = tmp_path / "zip" / "online+retail.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(xlsx, "Online Retail.xlsx")
    info, df, out = prepared(
        resolve_source("online-retail", data_dir=str(archive.parent)), tmp_path
    )
    check_retail(info, df, out, expected)
    for encoding in ("latin-1", "utf-8"):
        csv = write_retail_csv(tmp_path / f"{encoding}.csv", encoding)
        info, df, out = prepared(
            resolve_source("online-retail", data_dir=str(csv)), tmp_path, encoding
        )
        check_retail(info, df, out, expected)
        titles = pd.read_parquet(out / "items.parquet").set_index("item_id")["title"]
        assert titles["84406B"] == "CAFÉ CRÈME HANGER"


def test_online_retail_bad_sheet(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["InvoiceNo", "StockCode", "Quantity"])
    book.save(tmp_path / "Online Retail.xlsx")
    source = resolve_source("online-retail", data_dir=str(tmp_path))
    with pytest.raises(InputError, match=r"lacks column\(s\) \['Description', 'InvoiceDate'"):
        source.fetch()


# ------------------------------------------------------------------------------------------
# H&M: the three Kaggle CSV files, local only
# ------------------------------------------------------------------------------------------

HM_CUSTOMERS = [hashlib.sha256(f"c{c}".encode()).hexdigest() for c in range(6)]
HM_ARTICLES = [f"0{108775015 + 1000 * a}" for a in range(8)]


def write_hm(folder: Path, strip_zeros: bool = False) -> Path:
    """transactions_train.csv, articles.csv, customers.csv as Kaggle publishes them."""
    folder.mkdir(parents=True)
    lines = ["t_dat,customer_id,article_id,price,sales_channel_id"]
    for day in range(40):
        date = (datetime(2020, 6, 1) + timedelta(days=day)).strftime("%Y-%m-%d")
        # An article is released every 5 days and each customer buys one of those released a
        # day, in turn: customers come back for new articles in the validation and test windows.
        released = HM_ARTICLES[: 1 + day // 5]
        for c, customer in enumerate(HM_CUSTOMERS):
            article = released[(day + c) % len(released)]
            lines.append(f"{date},{customer},{article},0.0508305084745762,{1 + c % 2}")
    # Two units of one article on one day: two identical rows, one interaction of weight 2.
    lines.append(f"2020-06-01,{HM_CUSTOMERS[0]},{HM_ARTICLES[0]},0.0508305084745762,2")
    (folder / "transactions_train.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    header = (
        "article_id,product_code,prod_name,product_type_no,product_type_name,product_group_name,"
        "graphical_appearance_no,graphical_appearance_name,colour_group_code,colour_group_name,"
        "perceived_colour_value_id,perceived_colour_value_name,perceived_colour_master_id,"
        "perceived_colour_master_name,department_no,department_name,index_code,index_name,"
        "index_group_no,index_group_name,section_no,section_name,garment_group_no,"
        "garment_group_name,detail_desc"
    )
    articles = [header]
    for a, article in enumerate(HM_ARTICLES):
        shown = article.lstrip("0") if strip_zeros else article
        articles.append(
            f"{shown},{article[:7]},Strap top {a},253,Vest top,Garment Upper body,1010016,Solid,"
            f"9,Black,4,Dark,5,Black,1676,Jersey Basic,A,Ladieswear,1,Ladieswear,16,"
            f'Womens Everyday Basics,1002,Jersey Basic,"Jersey top with narrow shoulder straps, '
            f'a ""classic"" fit."'
        )
    (folder / "articles.csv").write_text("\n".join(articles) + "\n", encoding="utf-8")
    customers = ["customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code"]
    for c, customer in enumerate(HM_CUSTOMERS):
        age = ["49", "25", "", "24", "54", "19"][c]
        news = ["NONE", "Regularly", "None", "", "Monthly", "NONE"][c]
        customers.append(
            f"{customer},1.0,1.0,ACTIVE,{news},{age},52043ee2162cf5aa7ee79974281641c6f11a68d276429a91f8ca0d4b6efa8100"
        )
    (folder / "customers.csv").write_text("\n".join(customers) + "\n", encoding="utf-8")
    return folder


def test_hm_folder(tmp_path):
    write_hm(tmp_path / "hm")
    source = resolve_source("hm", data_dir=str(tmp_path / "hm"))
    assert isinstance(source, HmSource) and source.url is None
    info, df, out = prepared(source, tmp_path)
    assert info["method"] == "time_window" and len(df) == 240 == info["rows_source"]
    assert (df["ts"] == df["ts"].dt.normalize()).all()  # days only
    assert info["training_end_date"] < info["validation_end_date"]
    assert set(df["item_id"]) == set(HM_ARTICLES)  # leading zeros kept
    first = df.query("user_id == @HM_CUSTOMERS[0] and item_id == @HM_ARTICLES[0]")
    assert first.sort_values("ts")["weight"].tolist()[0] == 2.0
    row = df.iloc[0]
    assert row["item_product_type"] == "Vest top" and row["item_garment_group"] == "Jersey Basic"
    users = pd.read_parquet(out / "users.parquet").set_index("user_id")
    assert users.loc[HM_CUSTOMERS[0]].tolist() == [40, "active", "none"]
    assert users.loc[HM_CUSTOMERS[2], "user_fashion_news_frequency"] == "none"
    assert pd.isna(users.loc[HM_CUSTOMERS[2], "user_age_bucket"])
    items = pd.read_parquet(out / "items.parquet").set_index("item_id")
    assert items.loc[HM_ARTICLES[3], "title"] == "Strap top 3"
    assert any("1 repeating a (customer, article, day) merged" in n for n in info["notes"])
    check_evaluable(info, df)


def test_hm_ids_that_do_not_join(tmp_path):
    write_hm(tmp_path / "hm", strip_zeros=True)
    source = resolve_source("hm", data_dir=str(tmp_path / "hm"))
    with pytest.raises(InputError, match="leading zeros lost"):
        prepare_dataset(source, tmp_path / "out")


def test_hm_without_files_says_where_to_get_them(tmp_path):
    with pytest.raises(InputError, match="kaggle.com/competitions/h-and-m") as err:
        resolve_source("hm")
    assert "transactions_train.csv, articles.csv, customers.csv" in str(err.value)
    with pytest.raises(InputError, match="holds no H&M files"):
        resolve_source("hm", data_dir=str(tmp_path))


@pytest.mark.slow
def test_flow_start_refuses_hm_without_files(tmp_path):
    result = run_flow("run", "--dataset", "hm", "--data-dir", str(tmp_path), timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Bad input" in output, output[-3000:]
    assert (
        "https://www.kaggle.com/competitions/h-and-m-personalized-fashion-recommendations/data"
        in output
    )
    assert "transactions_train.csv" in output
    assert "/get_dataset/" not in output


# ------------------------------------------------------------------------------------------
# Downloads from a loopback HTTP server
# ------------------------------------------------------------------------------------------


STALL_S = 3.0


class _Server(ThreadingHTTPServer):
    """Serves ``routes``: path -> (body, mode); mode "cut" sends half the body and hangs up,
    "stall" sends half and then nothing for ``STALL_S`` seconds."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.hits: dict[str, int] = {}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
        if self.path not in self.server.routes:
            self.send_error(404)
            return
        body, mode = self.server.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode in ("cut", "stall"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if mode == "stall":  # stop sending, keep the connection open past the timeout
                time.sleep(STALL_S)
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def looks_complete(cache_root: Path) -> list[str]:
    """Names in a dataset's cache folder that are not temporary (``.``-prefixed) files."""
    if not cache_root.exists():
        return []
    return sorted(p.name for p in cache_root.iterdir() if not p.name.startswith("."))


def test_download_checksum_match_then_cached(tmp_path, server):
    folder = write_ml_dat(tmp_path / "build" / "ml-1m", encoding="latin-1", users=True)
    archive = zip_folder(folder, tmp_path / "ml-1m.zip")
    server.routes["/ml-1m.zip"] = (archive.read_bytes(), "ok")
    source = resolve_source("movielens-1m")
    assert source.url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    assert source.local_dir is None and source.local_archive is None
    source = dataclasses.replace(
        source, url=server.url("/ml-1m.zip"), checksum=f"sha256:{sha256_of(archive)}"
    )
    info, df, out = prepared(source, tmp_path)
    check_movielens(info, df, out)
    cache_root = tmp_path / "cache" / "movielens-1m"
    assert sorted(p.name for p in cache_root.iterdir()) == ["ml-1m"]  # no archive, no temp
    manifest = read_manifest(cache_root / "ml-1m")
    assert manifest["url"] == server.url("/ml-1m.zip")
    assert manifest["checked_against"] == f"sha256:{sha256_of(archive)}"
    assert {"ratings.dat", "movies.dat", "users.dat", "README"} <= {
        p.name for p in (cache_root / "ml-1m").iterdir()
    }
    assert source.fetch() == cache_root / "ml-1m"
    assert server.hits["/ml-1m.zip"] == 1  # the second call did not download
    # resolve_source now finds the cached copy: still no download, same files.
    prepared(resolve_source("movielens-1m"), tmp_path, "again")
    assert server.hits["/ml-1m.zip"] == 1


def test_download_checksum_mismatch_leaves_nothing(tmp_path, server):
    folder = write_ml_dat(tmp_path / "build" / "ml-1m", encoding="latin-1", users=True)
    server.routes["/ml-1m.zip"] = (zip_folder(folder, tmp_path / "ml-1m.zip").read_bytes(), "ok")
    source = dataclasses.replace(resolve_source("movielens-1m"), url=server.url("/ml-1m.zip"))
    published = MOVIELENS_PUBLICATIONS["movielens-1m"].checksum.split(":")[1]
    with pytest.raises(InputError, match="checksum mismatch for MovieLens-1M") as err:
        source.fetch()
    assert published in str(err.value) and "the download was deleted" in str(err.value)
    cache_root = tmp_path / "cache" / "movielens-1m"
    assert list(cache_root.iterdir()) == []


def test_interrupted_download_leaves_nothing_and_retry_works(tmp_path, server):
    archive, expected = write_lastfm_tar(tmp_path)
    server.routes["/360k.tar.gz"] = (archive.read_bytes(), "cut")
    source = dataclasses.replace(resolve_source("lastfm-360k"), url=server.url("/360k.tar.gz"))
    assert source.checksum is None  # none published: size and structure only
    with pytest.raises(InputError, match=r"stopped after \d+ of \d+ bytes") as err:
        source.fetch()
    assert "closed early" in str(err.value)
    cache_root = tmp_path / "cache" / "lastfm-360k"
    assert looks_complete(cache_root) == [] and list(cache_root.iterdir()) == []
    server.routes["/360k.tar.gz"] = (archive.read_bytes(), "ok")
    info, df, out = prepared(source, tmp_path)
    check_lastfm(info, df, out, expected)
    manifest = read_manifest(cache_root / "lastfm-dataset-360K")
    assert manifest["sha256"] == sha256_of(archive) and manifest["checked_against"] is None
    assert server.hits["/360k.tar.gz"] == 2


def test_download_errors_are_input_errors(tmp_path, server):
    source = dataclasses.replace(resolve_source("lastfm-360k"), url=server.url("/missing"))
    with pytest.raises(InputError, match="could not download .* HTTP Error 404|Not Found"):
        source.fetch()
    server.routes["/junk.tar.gz"] = (b"this is not an archive at all" * 10, "ok")
    source = dataclasses.replace(source, url=server.url("/junk.tar.gz"))
    with pytest.raises(InputError, match="is not a zip or tar.gz archive"):
        source.fetch()
    assert list((tmp_path / "cache" / "lastfm-360k").iterdir()) == []
    # An archive without the expected folder is refused before anything is installed.
    folder = write_ml_csv(tmp_path / "build" / "ml-20m")
    server.routes["/wrong.tar.gz"] = (zip_folder(folder, tmp_path / "wrong.zip").read_bytes(), "ok")
    source = dataclasses.replace(source, url=server.url("/wrong.tar.gz"))
    with pytest.raises(InputError, match="has no lastfm-dataset-360K/ folder"):
        source.fetch()
    assert list((tmp_path / "cache" / "lastfm-360k").iterdir()) == []


def test_items_without_metadata_are_noted(tmp_path):
    folder = write_ml_csv(tmp_path / "ml-20m")
    with (folder / "ratings.csv").open("a", encoding="utf-8") as handle:
        handle.write(f"1,999,4.0,{T0 + 40 * DAY}\n2,999,3.0,{T0 + 41 * DAY}\n")
    info, df, out = prepared(resolve_source("movielens-20m", data_dir=str(folder)), tmp_path)
    assert len(df) == len(ML_RATINGS) + 2
    assert "1 items (2 interactions) have no metadata row (no title or features)" in info["notes"]


def test_stalled_download_times_out_and_leaves_nothing(tmp_path, server):
    archive, _ = write_lastfm_tar(tmp_path)
    server.routes["/360k.tar.gz"] = (archive.read_bytes(), "stall")
    source = dataclasses.replace(
        resolve_source("lastfm-360k"), url=server.url("/360k.tar.gz"), timeout_s=0.5
    )
    started = time.monotonic()
    with pytest.raises(InputError, match="could not download .*timed out"):
        source.fetch()
    assert time.monotonic() - started < STALL_S
    assert list((tmp_path / "cache" / "lastfm-360k").iterdir()) == []
