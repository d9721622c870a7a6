"""Interaction files in the layouts real systems publish, written from MovieLens-100k's u.data.

The tests of ``--dataset file`` read these instead of committed datasets: each writer takes the
ratings of u.data (found through the ``ml100k_dir`` fixture) and writes them byte for byte in a
published layout, returning what a correct reader must give back.

* MovieLens-1M/10M ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``, no header.
* last.fm-360k ``usersha1-artmbid-artname-plays.tsv``: user SHA1, artist MBID, artist name,
  plays; tab-separated, no header, no timestamps.
* MovieLens-20M/25M ``ratings.csv``: ``userId,movieId,rating,timestamp`` with a header.
* Book-Crossing ``BX-Book-Ratings.csv``: ``"User-ID";"ISBN";"Book-Rating"``, every field quoted,
  ``;``-separated, latin-1.
* hetrec-2011 last.fm ``user_artists.dat``: ``userID<TAB>artistID<TAB>weight`` with a header.
"""

from __future__ import annotations

import gzip
import hashlib
import uuid
from pathlib import Path

import numpy as np
import pandas as pd


def ml100k_ratings(ml100k_dir: Path, max_user: int | None = None) -> pd.DataFrame:
    """u.data as a frame (user, item, rating, ts), optionally only users ``<= max_user``."""
    frame = pd.read_csv(
        ml100k_dir / "u.data", sep="\t", names=["user", "item", "rating", "ts"], dtype="int64"
    )
    if max_user is not None:
        frame = frame[frame["user"] <= max_user].reset_index(drop=True)
    return frame


def ml100k_titles(ml100k_dir: Path) -> pd.Series:
    """Movie titles of u.item by item id (latin-1 text, as GroupLens ships it)."""
    items = pd.read_csv(
        ml100k_dir / "u.item",
        sep="|",
        header=None,
        usecols=[0, 1],
        names=["item", "title"],
        encoding="latin-1",
    )
    return items.set_index("item")["title"]


def _write(text: str, path: Path, encoding: str = "utf-8") -> Path:
    """Write text as bytes (gzip when the name ends in .gz), with \\n line ends."""
    data = text.encode(encoding)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def _join(columns: list[pd.Series], delimiter: str) -> str:
    """Lines of the columns joined by the delimiter, each ending in \\n."""
    line = columns[0].astype(str)
    for column in columns[1:]:
        line = line + delimiter + column.astype(str)
    return "".join((line + "\n").tolist())


def write_movielens_dat(ratings: pd.DataFrame, path: Path) -> Path:
    """MovieLens-1M ``ratings.dat``: ``user::item::rating::ts``, no header."""
    columns = [ratings["user"], ratings["item"], ratings["rating"], ratings["ts"]]
    return _write(_join(columns, "::"), path)


def lastfm_plays(ratings: pd.DataFrame, titles: pd.Series) -> pd.DataFrame:
    """The ratings as a last.fm-360k play-count table (string ids, artist names, plays)."""
    user_sha1 = {
        u: hashlib.sha1(f"user-{u}".encode()).hexdigest() for u in ratings["user"].unique()
    }
    mbid = {
        i: str(uuid.UUID(bytes=hashlib.md5(f"artist-{i}".encode()).digest()))
        for i in ratings["item"].unique()
    }
    return pd.DataFrame(
        {
            "user": ratings["user"].map(user_sha1),
            "artist_id": ratings["item"].map(mbid),
            "artist": ratings["item"].map(titles).str.lower(),
            "plays": ratings["rating"] * 37 + ratings["item"] % 11,
        }
    )


def write_lastfm_tsv(plays: pd.DataFrame, path: Path) -> Path:
    """last.fm-360k ``usersha1-artmbid-artname-plays.tsv``: four tab-separated fields, no
    header."""
    columns = [plays["user"], plays["artist_id"], plays["artist"], plays["plays"]]
    return _write(_join(columns, "\t"), path)


def write_movielens_csv(ratings: pd.DataFrame, path: Path) -> Path:
    """MovieLens-20M/25M ``ratings.csv``: ``userId,movieId,rating,timestamp`` with a header."""
    rating = ratings["rating"].astype(float).map("{:.1f}".format)
    columns = [ratings["user"], ratings["item"], rating, ratings["ts"]]
    return _write("userId,movieId,rating,timestamp\n" + _join(columns, ","), path)


def isbn(items: pd.Series) -> pd.Series:
    """A 10-character ISBN-like string per item id, some ending in X like real ones."""
    digits = (items * 7919 + 100_000_000).astype(str).str.zfill(9)
    check = np.where(items % 10 == 0, "X", (items % 10).astype(str))
    return digits + check


def bookcrossing_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    """The ratings as a Book-Crossing table: user, ISBN (text), rating 0-10.

    Every 50th ISBN carries a latin-1 character (``é``), as hand-typed ISBNs of the real file
    do, so the file is not valid UTF-8.
    """
    codes = isbn(ratings["item"])
    codes = codes.where(ratings.index % 50 != 1, codes + "é")
    return pd.DataFrame({"user": ratings["user"], "isbn": codes, "rating": ratings["rating"] * 2})


def write_bookcrossing_csv(books: pd.DataFrame, path: Path) -> Path:
    """Book-Crossing ``BX-Book-Ratings.csv``: every field quoted, ``;``-separated, latin-1."""
    quoted = ['"' + books[c].astype(str) + '"' for c in ("user", "isbn", "rating")]
    return _write('"User-ID";"ISBN";"Book-Rating"\n' + _join(quoted, ";"), path, "latin-1")


def write_hetrec_user_artists(ratings: pd.DataFrame, path: Path) -> Path:
    """hetrec-2011 last.fm ``user_artists.dat``: ``userID<TAB>artistID<TAB>weight``, header."""
    columns = [ratings["user"], ratings["item"], ratings["rating"] * 100]
    return _write("userID\tartistID\tweight\n" + _join(columns, "\t"), path)
