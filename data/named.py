"""Named public datasets: where each is published, how it is found locally, fetched and checked.

A named dataset (MovieLens-1M/10M/20M/25M, last.fm-360K, UCI Online Retail, H&M) is described
by a :class:`Publication`: its archive, its published checksum (or why there is none), the
folder inside the archive and the files its loader reads. :func:`resolve_published` runs in the
flow's ``start``: it looks for those files under ``--data-dir`` (or ``$RECLAB_DATA_DIR``) as
they are published (the unpacked folder, the folder's parent, or the archive itself) or in the
download cache, and never downloads. :meth:`PublishedSource.fetch` runs later (``get_dataset``):
it unpacks a local archive into the cache, or downloads and unpacks the published one (see
:mod:`data.download`). The per-dataset loaders live in :mod:`data.movielens`,
:mod:`data.lastfm`, :mod:`data.online_retail` and :mod:`data.hm`; they create TEMP tables
(``raw_interactions``, ``users``, ``items`` and their staging tables), which DuckDB keeps in
memory and spills to its temp directory when needed instead of writing them to the scratch
database file: 4x faster for 30M rows with 64-character ids.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import duckdb

from data.download import (
    DOWNLOAD_TIMEOUT_S,
    Unpacking,
    install_archive,
    looks_like_archive,
    read_manifest,
    unpack_local_archive,
)
from data.source import Source, cache_dir
from reclab.errors import InputError

logger = logging.getLogger(__name__)

SourceT = TypeVar("SourceT", bound="PublishedSource")


@dataclass(frozen=True)
class Publication:
    """How a named dataset is published and which of its files the loader reads.

    Attributes:
        title: Human name, e.g. ``"MovieLens-1M"``.
        archive_name: File name of the published archive, e.g. ``"ml-1m.zip"``.
        url: Where the archive is published; None when it cannot be downloaded without a login.
        checksum: The published sum of the archive (``"sha256:..."`` or ``"md5:..."``), or None
            when none is known (the SHA256 is then computed and logged, not checked).
        checksum_origin: Where the sum comes from, or why there is none.
        folder: The folder inside the archive holding the files; None when they are at its top.
        folder_aliases: Other names people give that folder (e.g. ``"ml-10m"``).
        other_datasets_folders: Folder names of sibling datasets with the same file names
            (e.g. ``{"ml-20m": "movielens-20m"}`` for MovieLens-25M), so that a folder of the
            wrong one is refused instead of loaded.
        required: The files the loader reads, relative to the folder.
        how_to_get: A sentence telling the user where to get the files, for error messages.
    """

    title: str
    archive_name: str
    url: str | None
    checksum: str | None
    checksum_origin: str
    folder: str | None
    required: tuple[str, ...]
    how_to_get: str
    folder_aliases: tuple[str, ...] = ()
    other_datasets_folders: dict[str, str] = field(default_factory=dict)

    @property
    def dest_name(self) -> str:
        """Name of the unpacked folder in the cache."""
        return self.folder or self.archive_name.split(".")[0]

    def keep_member(self, name: str) -> bool:
        """True for the archive members worth unpacking: the required files and README files.

        Args:
            name: A member's path inside the archive.

        Returns:
            Whether to unpack it (big extras such as MovieLens' tag genome or H&M's images are
            skipped).
        """
        path = name.strip("/")
        if self.folder is not None:
            if not path.startswith(f"{self.folder}/"):
                return False
            path = path[len(self.folder) + 1 :]
        return path in self.required or path.lower().startswith("readme")

    def unpacking(self, what: str) -> Unpacking:
        """How to install this dataset's archive: its folder, the files worth unpacking, checks.

        Args:
            what: How to name the archive in logs and messages.

        Returns:
            The unpacking options of :mod:`data.download`.
        """
        return Unpacking(
            dest_name=self.dest_name,
            member_root=self.folder,
            keep=self.keep_member,
            check=self.check_folder,
            what=what,
            hint=self.how_to_get,
        )

    def missing(self, folder: Path) -> list[str]:
        """The required files absent (or empty) in ``folder``."""
        return [
            f
            for f in self.required
            if not (folder / f).is_file() or (folder / f).stat().st_size == 0
        ]

    def check_folder(self, folder: Path) -> None:
        """Raise :class:`InputError` when a required file is missing or empty in ``folder``."""
        missing = self.missing(folder)
        if missing:
            raise InputError(
                f"{self.title} files {missing} are missing or empty in {folder}; it needs "
                f"{', '.join(self.required)} as published in {self.archive_name}. "
                f"{self.how_to_get}"
            )


@dataclass(frozen=True, kw_only=True)
class PublishedSource(Source):
    """A named dataset read from the user's files or from the download cache.

    Exactly one of ``local_dir`` and ``local_archive`` is set when the user has the files;
    neither when they come from the cache (downloaded there now or earlier).

    Attributes:
        local_dir: The user's folder holding the required files.
        local_archive: The user's copy of the published archive (unpacked into the cache).
        cache_root: The dataset's cache folder (``<cache>/<name>``).
        url: Where to download the archive (tests point it at a local server).
        checksum: The sum the archive must match (None: computed and logged only).
        timeout_s: Socket timeout of the download, in seconds.
    """

    local_dir: str | None = None
    local_archive: str | None = None
    cache_root: str = ""
    url: str | None = None
    checksum: str | None = None
    timeout_s: float = DOWNLOAD_TIMEOUT_S

    #: The dataset's :class:`Publication`, set by each subclass (MovieLens picks it by size).
    publication: ClassVar[Publication]

    @property
    def cached_dir(self) -> Path:
        """Where the unpacked files live in the cache."""
        return Path(self.cache_root) / self.publication.dest_name

    def fetch(self) -> Path:
        """Return the folder holding the required files, unpacking or downloading them first.

        Returns:
            The folder the loader reads.

        Raises:
            InputError: If the local files are gone, the archive does not match its published
                sum or is damaged, or the download fails.
        """
        pub = self.publication
        hint = pub.how_to_get
        if self.local_dir is not None:
            folder = Path(self.local_dir)
            pub.check_folder(folder)
            return folder
        if self.local_archive is not None:
            archive = Path(self.local_archive)
            check_still_there(archive, f"{pub.title} archive {archive}", hint)
            how = pub.unpacking(f"{pub.title} archive {archive.name}")
            return unpack_local_archive(archive, Path(self.cache_root), how, checksum=self.checksum)
        if read_manifest(self.cached_dir) is not None and not pub.missing(self.cached_dir):
            logger.info("%s: using the cached copy in %s", pub.title, self.cached_dir)
            return self.cached_dir
        if not self.url:
            raise InputError(f"{pub.title} is not in the cache and cannot be downloaded. {hint}")
        return install_archive(
            self.url,
            Path(self.cache_root),
            pub.unpacking(f"{pub.title} ({pub.archive_name})"),
            archive_name=pub.archive_name,
            checksum=self.checksum,
            timeout_s=self.timeout_s,
        )

    def provenance(self, folder: Path) -> str:
        """One line saying where the files in ``folder`` came from and how they were checked."""
        manifest = read_manifest(folder)
        if manifest is None:
            return f"{self.publication.title} read from {folder} (no archive: no checksum)"
        origin = manifest.get("url") or manifest.get("path")
        checked = manifest.get("checked_against")
        check = (
            f"matches the published sum {checked}"
            if checked
            else f"not checked: {self.publication.checksum_origin}"
        )
        return (
            f"{self.publication.title} from {origin} ({manifest.get('size')} bytes, SHA256 "
            f"{manifest.get('sha256')}, {check})"
        )

    def describe(self) -> dict[str, Any]:
        """Return a JSON-serialisable description of the source, with the cache manifest."""
        return {
            "name": self.name,
            "local_dir": self.local_dir,
            "local_archive": self.local_archive,
            "cache_root": self.cache_root,
            "url": self.url,
            "checksum": self.checksum,
            "manifest": read_manifest(self.cached_dir),
        }


def check_still_there(path: Path, shown: str, hint: str) -> None:
    """Raise :class:`InputError` when a file found when the run started is gone since.

    Args:
        path: The file, found by the flow's ``start``.
        shown: How to name it in the message.
        hint: How to get the data, appended to the message.
    """
    if not path.is_file():
        raise InputError(
            f"{shown} (found when the run started) is gone; restore it or pass another "
            f"--data-dir. {hint}"
        )


def given_data_dir(data_dir: str | None) -> tuple[str | None, str]:
    """``data_dir`` or ``$RECLAB_DATA_DIR`` (None when neither), and which one it was."""
    if data_dir:
        return data_dir, "data_dir"
    return os.environ.get("RECLAB_DATA_DIR", "").strip() or None, "RECLAB_DATA_DIR"


def find_local(pub: Publication, base: Path) -> tuple[str, Path] | None:
    """Find a dataset's files under ``base`` as they are published.

    Accepted: ``base`` is the archive itself, or the unpacked folder, or holds the unpacked
    folder (under its published name or an alias), or holds the archive.

    Args:
        pub: The dataset's publication.
        base: A file or folder given by the user.

    Returns:
        ``("dir", folder)`` or ``("archive", file)``, or None when nothing is there.

    Raises:
        InputError: If a folder holds some of the required files but not all, or ``base`` is a
            file that is not an archive.
    """
    if base.is_file():
        if looks_like_archive(base):
            return "archive", base
        raise InputError(
            f"{base} is a file but not a .zip or .tar.gz archive; pass the {pub.title} folder "
            f"(holding {', '.join(pub.required)}), its parent, or {pub.archive_name}."
        )
    folders = [base] + [base / name for name in (pub.folder, *pub.folder_aliases) if name]
    for folder in folders:
        if folder.is_dir() and not pub.missing(folder):
            other = pub.other_datasets_folders.get(folder.name)
            if other is not None:
                raise InputError(
                    f"{folder} looks like the {other} files, not {pub.title}; pass "
                    f"--dataset {other}, or the {pub.folder or pub.title} folder."
                )
            return "dir", folder
    for folder in folders:
        if folder.is_dir() and len(pub.missing(folder)) < len(pub.required):
            pub.check_folder(folder)  # some files but not all: say which are missing
    for candidate in (base / pub.archive_name, *(f / pub.archive_name for f in folders[1:])):
        if candidate.is_file():
            return "archive", candidate
    return None


def resolve_published(
    source_type: type[SourceT], name: str, pub: Publication, data_dir: str | None
) -> SourceT:
    """Find a named dataset locally (cheap: file checks, no download) or plan its download.

    An explicit ``data_dir`` must hold the files. ``$RECLAB_DATA_DIR`` is a place to look: when
    the files are not there, a downloadable dataset is downloaded into the cache on first use.

    Args:
        source_type: The dataset's source class.
        name: The registry name.
        pub: Its publication.
        data_dir: The user's ``--data-dir`` (may be empty).

    Returns:
        The resolved source.

    Raises:
        InputError: If ``data_dir`` does not exist or lacks the files, or the dataset cannot be
            downloaded and is not found.
    """
    cache_root = cache_dir() / name
    common = {"name": name, "cache_root": str(cache_root), "url": pub.url, "checksum": pub.checksum}
    given, origin = given_data_dir(data_dir)
    if given is not None:
        base = Path(given).expanduser().resolve()
        if not base.exists():
            raise InputError(
                f"{origin}={given!r} does not exist; point it at the folder holding the "
                f"{pub.title} files (or at {pub.archive_name}). {pub.how_to_get}"
            )
        found = find_local(pub, base)
        if found is not None:
            kind, path = found
            logger.info("%s: using the local %s %s", pub.title, kind, path)
            if kind == "dir":
                return source_type(local_dir=str(path), **common)
            return source_type(local_archive=str(path), **common)
        if origin == "data_dir" or pub.url is None:
            looked = [str(base)] + [str(base / n) for n in (pub.folder, *pub.folder_aliases) if n]
            raise InputError(
                f"{origin}={given!r} holds no {pub.title} files: looked for "
                f"{', '.join(pub.required)} in {', '.join(looked)} and for {pub.archive_name}. "
                f"{pub.how_to_get}"
            )
        logger.info("%s: not in RECLAB_DATA_DIR=%s; it will be downloaded", pub.title, given)
    if pub.url is None and (read_manifest(cache_root / pub.dest_name) is None):
        raise InputError(f"dataset {name!r} needs local files. {pub.how_to_get}")
    return source_type(**common)


def run_with_encoding_fallback(
    con: duckdb.DuckDBPyConnection,
    run: Callable[[duckdb.DuckDBPyConnection, str, dict[str, Any]], Any],
    sql_name: str,
    params: dict[str, Any],
    what: str,
) -> str:
    """Run a SQL file that reads a text file as UTF-8, and again as latin-1 if it is not UTF-8.

    Args:
        con: DuckDB connection.
        run: :func:`data.prepare.run_sql`.
        sql_name: The SQL file; it reads its file with ``encoding = $encoding``.
        params: Its other parameters.
        what: The file, for the log line.

    Returns:
        The encoding that worked.

    Raises:
        duckdb.Error: Any other error of the statement.
    """
    try:
        run(con, sql_name, {**params, "encoding": "utf-8"})
        return "utf-8"
    except duckdb.InvalidInputException as exc:
        if "unicode" not in str(exc).lower() and "utf-8" not in str(exc).lower():
            raise
    logger.info("%s is not UTF-8: reading it as latin-1", what)
    run(con, sql_name, {**params, "encoding": "latin-1"})
    return "latin-1"


def duckdb_error_text(exc: duckdb.Error) -> str:
    """The first lines of a DuckDB error, enough to locate the problem."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines[:3]) if lines else type(exc).__name__


def resolve_named(name: str, data_dir: str | None) -> Source:
    """Resolve one of ``data.registry.NAMED_DATASETS`` (cheap: no download).

    Args:
        name: The dataset name.
        data_dir: The user's ``--data-dir`` (may be empty).

    Returns:
        The resolved source.

    Raises:
        InputError: See :func:`resolve_published`; ``KeyError`` never (the registry checks the
            name first).
    """
    from data import hm, lastfm, movielens, online_retail

    if name in movielens.MOVIELENS_PUBLICATIONS:
        return movielens.resolve_movielens(name, data_dir)
    if name == "online-retail":
        return online_retail.resolve_online_retail(data_dir)
    source_type = {"lastfm-360k": lastfm.LastFm360kSource, "hm": hm.HmSource}[name]
    return resolve_published(source_type, name, source_type.publication, data_dir)


def fetch_row(cursor: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Return the single result row of ``cursor`` as a dict."""
    (row,) = cursor.fetchall()
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def run_reading(
    con: duckdb.DuckDBPyConnection, sql_name: str, params: dict[str, Any], path: Path, fix: str
) -> None:
    """Run a loader statement that reads ``path``; a DuckDB error becomes an InputError.

    Args:
        con: DuckDB connection.
        sql_name: The SQL file.
        params: Its parameters.
        path: The file it reads, named in the message.
        fix: How to fix the file, appended to the message.

    Raises:
        InputError: When DuckDB cannot read or convert the file.
    """
    from data.prepare import run_sql

    try:
        run_sql(con, sql_name, params)
    except duckdb.Error as exc:
        raise InputError(f"could not read {path}: {duckdb_error_text(exc)}; {fix}") from exc


def check_loaded(
    con: duckdb.DuckDBPyConnection,
    title: str,
    *,
    has_timestamps: bool,
    fix: str,
    items_from_file: bool = False,
    users_from_file: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Check a named dataset's loaded tables; return the counts and notes on metadata coverage.

    Args:
        con: DuckDB connection holding ``raw_interactions``, ``users`` and ``items``.
        title: The dataset's name, for messages.
        has_timestamps: Whether every interaction must have a timestamp.
        fix: How to fix the files, appended to error messages.
        items_from_file: The items table comes from another file than the interactions: check
            that the ids join (a pass over the interactions).
        users_from_file: The same for the users table.

    Returns:
        The totals of ``sql/named_checks.sql`` (rows, units = sum of weights, ...) and notes:
        how many interacted users / items have no row in the users / items table.

    Raises:
        InputError: If an interaction lacks a user, an item or (when expected) a timestamp, or
            no interaction's item has a row in the items table (ids that do not join).
    """
    from data.prepare import run_sql

    totals = fetch_row(run_sql(con, "named_checks.sql"))
    n = totals["rows"]
    for key, what in (("null_users", "user id"), ("null_items", "item id")):
        if totals[key]:
            raise InputError(f"{totals[key]} of {n} {title} interactions have no {what}; {fix}")
    if has_timestamps and totals["null_ts"]:
        raise InputError(f"{totals['null_ts']} of {n} {title} interactions have no time; {fix}")
    notes = []
    for kind, wanted, sql_name, lacks in (
        (
            "items",
            items_from_file,
            "named_item_coverage.sql",
            "metadata row (no title or features)",
        ),
        ("users", users_from_file, "named_user_coverage.sql", "profile row (no features)"),
    ):
        if not wanted:
            continue
        lost = fetch_row(run_sql(con, sql_name))
        if n and lost["rows_without_row"] == n:
            raise InputError(
                f"none of the {n} {title} interactions has its {kind[:-1]} in the {kind} table "
                f"(e.g. {lost['example']!r}): the ids of the two files do not join (leading "
                f"zeros lost in a spreadsheet?); {fix}"
            )
        if lost["ids_without_row"]:
            notes.append(
                f"{lost['ids_without_row']} {kind} ({lost['rows_without_row']} interactions) have "
                f"no {lacks}"
            )
    return totals, notes
