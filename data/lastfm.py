"""last.fm-360K: play counts of about 360,000 users for their top artists, no timestamps.

Published by Òscar Celma (MTG, Universitat Pompeu Fabra) as ``lastfm-dataset-360K.tar.gz``
holding ``lastfm-dataset-360K/usersha1-artmbid-artname-plays.tsv`` (user sha1, artist MusicBrainz
id, artist name, plays; TAB-separated, no header, no quoting, UTF-8) and ``usersha1-profile.tsv``
(user sha1, gender, age, country, signup date). The item is the artist MBID; rows without one
(artists MusicBrainz did not know), rows whose plays are not a positive number, and lines that do
not parse are counted and dropped; the artist's most common name becomes its title; plays are
the weight. Without timestamps the split is the seeded random per-user one. No checksum of the
archive is published (its README lists MD5s of the two TSV files only), so the download is
checked by its size and structure and its SHA256 is logged and recorded in the cache manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import duckdb

from data.named import (
    Publication,
    PublishedSource,
    check_loaded,
    fetch_row,
    run_reading,
)
from data.source import Source
from reclab.errors import InputError

PLAYS_FILE = "usersha1-artmbid-artname-plays.tsv"
PROFILE_FILE = "usersha1-profile.tsv"

LASTFM_360K = Publication(
    title="last.fm-360K",
    archive_name="lastfm-dataset-360K.tar.gz",
    url="http://mtg.upf.edu/static/datasets/last.fm/lastfm-dataset-360K.tar.gz",
    checksum=None,
    checksum_origin="none published (the archive's README lists MD5s of its TSV files only)",
    folder="lastfm-dataset-360K",
    required=(PLAYS_FILE, PROFILE_FILE),
    how_to_get=(
        "Download lastfm-dataset-360K.tar.gz from "
        "http://mtg.upf.edu/static/datasets/last.fm/lastfm-dataset-360K.tar.gz (see "
        "https://www.upf.edu/web/mtg/lastfm360k; non-commercial use) and pass --data-dir with "
        "the archive, the unpacked lastfm-dataset-360K/ folder, or the folder holding either; or "
        "leave --data-dir unset to download it into the cache."
    ),
)
_FIX = "replace it with the file from lastfm-dataset-360K.tar.gz."


@dataclass(frozen=True, kw_only=True)
class LastFm360kSource(PublishedSource):
    """last.fm-360K play counts, local or downloaded."""

    name: str = "lastfm-360k"
    has_timestamps: ClassVar[bool] = False
    publication: ClassVar[Publication] = LASTFM_360K


def load_lastfm_360k(con: duckdb.DuckDBPyConnection, source: Source, local: Path) -> list[str]:
    """Load last.fm-360K into ``users``, ``items`` and ``raw_interactions`` (ts always NULL).

    Args:
        con: DuckDB connection of the scratch database.
        source: A :class:`LastFm360kSource`.
        local: The ``lastfm-dataset-360K`` folder from :meth:`LastFm360kSource.fetch`.

    Returns:
        Notes for the split info: where the files came from and what was dropped, with counts.

    Raises:
        InputError: If the play counts file cannot be read or keeps no row.
    """
    from data.prepare import run_sql

    if not isinstance(source, LastFm360kSource):
        raise TypeError(f"load_lastfm_360k needs a LastFm360kSource, got {type(source).__name__}")
    plays = local / PLAYS_FILE
    run_reading(con, "lastfm_plays.sql", {"path": str(plays)}, plays, _FIX)
    counts = fetch_row(run_sql(con, "lastfm_counts.sql"))
    if counts["kept"] == 0:
        raise InputError(
            f"{plays} has no usable row ({counts['lines']} lines parsed, {counts['malformed']} "
            f"malformed, {counts['missing_mbid']} without an artist MBID, {counts['bad_plays']} "
            f"with plays that are not a number); {_FIX}"
        )
    run_sql(con, "lastfm_raw_interactions.sql")
    run_sql(con, "lastfm_items.sql")
    profile = local / PROFILE_FILE
    run_reading(con, "lastfm_users.sql", {"path": str(profile)}, profile, _FIX)
    checks, coverage = check_loaded(con, LASTFM_360K.title, has_timestamps=False, fix=_FIX)
    rows = checks["rows"]
    read = counts["lines"] + counts["malformed"]
    dropped = [
        f"{counts['missing_mbid']} without an artist MBID",
        f"{counts['bad_plays']} whose plays are not a number"
        + (f" (e.g. {counts['example_bad_plays']!r})" if counts["example_bad_plays"] else ""),
        f"{counts['non_positive_plays']} with plays <= 0",
        f"{counts['malformed']} malformed lines (wrong field count or invalid UTF-8)",
        f"{counts['no_user']} without a user",
    ]
    return [
        source.provenance(local),
        f"{PLAYS_FILE}: {read} lines; dropped {', '.join(dropped)}; kept {counts['kept']}",
        f"{counts['kept'] - rows} repeated (user, artist MBID) rows merged (plays added): "
        f"{rows} interactions",
        *coverage,
    ]
