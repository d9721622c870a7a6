"""The MovieLens datasets from GroupLens: 100K, 1M, 10M, 20M and 25M ratings.

* ``movielens-100k`` (the default dataset): ``ml-100k/`` with ``u.data``, ``u.item``,
  ``u.user``, ``u.genre``; every file is checked against its built-in SHA256 sum (or a
  ``SHA256SUMS`` file beside it), locally and after a download.
* ``movielens-1m``, ``movielens-10m``: ``::``-separated ``.dat`` files without a header
  (``ratings.dat``, ``movies.dat``; 1M also ``users.dat`` with gender, age bucket and occupation).
  ML-1M's text files are latin-1; ``movies.dat`` is read as UTF-8 and, if it is not, as latin-1.
* ``movielens-20m``, ``movielens-25m``: ``ratings.csv`` and ``movies.csv`` with a header.

Ratings become the weight and their unix seconds the timestamp; movie titles, genres (a list)
and the year at the end of the title become the item table. The zips' published sums: SHA256 of
ml-1m/20m/25m from TensorFlow Datasets' ``url_checksums/movielens.txt``; GroupLens publishes only
an MD5 (``ml-10m.zip.md5``) for ml-10m.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from data.download import DOWNLOAD_TIMEOUT_S, Unpacking, file_digests, install_archive
from data.named import (
    Publication,
    PublishedSource,
    check_loaded,
    duckdb_error_text,
    resolve_published,
    run_with_encoding_fallback,
)
from data.source import Source, cache_dir
from reclab.errors import InputError

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# MovieLens-100k
# --------------------------------------------------------------------------------------------

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_DIRNAME = "ml-100k"
# SHA256 sums of the official MovieLens-100k files (from the GroupLens ml-100k.zip).
ML100K_SHA256: dict[str, str] = {
    "README": "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52",
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
}
# The files the pipeline reads; they must be present and match.
ML100K_REQUIRED: tuple[str, ...] = ("u.data", "u.item", "u.user", "u.genre")
_ML100K_HINT = "pass data_dir / set RECLAB_DATA_DIR to a local copy of ml-100k."


@dataclass(frozen=True, kw_only=True)
class MovieLens100kSource(Source):
    """MovieLens-100k, from a verified local directory or from the download cache.

    Attributes:
        local_dir: A verified ``ml-100k`` directory given by the user, or None to use the cache.
        cache_root: Where the download goes (``<cache>/movielens-100k``).
        url: Download URL of the zip archive.
        timeout_s: Socket timeout of the download, in seconds.
    """

    name: str = "movielens-100k"
    local_dir: str | None = None
    cache_root: str = ""
    url: str = ML100K_URL
    timeout_s: float = DOWNLOAD_TIMEOUT_S

    def fetch(self) -> Path:
        """Return the ``ml-100k`` directory, downloading and verifying it first if needed.

        Returns:
            The directory holding ``u.data``, ``u.item``, ``u.user`` and ``u.genre``.

        Raises:
            InputError: If the local directory is gone, or the download fails, or files do not
                match the known checksums.
        """
        if self.local_dir is not None:
            local = Path(self.local_dir)
            if not (local / "u.data").is_file():
                raise InputError(
                    f"MovieLens-100k directory {local} (resolved earlier) has no u.data here; "
                    "make the same data directory available to this step, or leave data_dir "
                    "and RECLAB_DATA_DIR unset to download into the cache."
                )
            verify_movielens_dir(local)
            return local
        target = Path(self.cache_root) / ML100K_DIRNAME
        if target.is_dir():
            verify_movielens_dir(target)
            return target
        return download_movielens_100k(
            Path(self.cache_root), url=self.url, timeout_s=self.timeout_s
        )

    def describe(self) -> dict[str, Any]:
        """Return a JSON-serialisable description of the source."""
        return {
            "name": self.name,
            "local_dir": self.local_dir,
            "cache_root": self.cache_root,
            "url": None if self.local_dir else self.url,
        }


def resolve_movielens_100k(data_dir: str | None) -> MovieLens100kSource:
    """Find and verify a local MovieLens-100k copy, or point at the cache.

    Args:
        data_dir: A directory holding ``ml-100k/`` or the ``ml-100k/`` directory itself;
            defaults to ``$RECLAB_DATA_DIR``; when neither is set the files are downloaded into
            the cache by :meth:`MovieLens100kSource.fetch`.

    Returns:
        The resolved source.

    Raises:
        InputError: If the directory holds no MovieLens-100k files or they do not match their
            sums.
    """
    given = data_dir if data_dir else os.environ.get("RECLAB_DATA_DIR", "").strip() or None
    origin = "data_dir" if data_dir else "RECLAB_DATA_DIR"
    cache_root = cache_dir() / "movielens-100k"
    if given is None:
        cached = cache_root / ML100K_DIRNAME
        if cached.is_dir():
            verify_movielens_dir(cached)
        return MovieLens100kSource(cache_root=str(cache_root))
    base = Path(given).expanduser().resolve()
    if not base.is_dir():
        raise InputError(
            f"{origin}={given!r} is not a directory; point it at the directory holding "
            f"{ML100K_DIRNAME}/ (or at {ML100K_DIRNAME}/ itself), or leave it unset to download."
        )
    if (base / "u.data").is_file():
        ml_dir = base
    elif (base / ML100K_DIRNAME / "u.data").is_file():
        ml_dir = base / ML100K_DIRNAME
    else:
        raise InputError(
            f"{origin}={given!r} holds no MovieLens-100k files: expected {base}/u.data or "
            f"{base}/{ML100K_DIRNAME}/u.data; point it at the directory holding "
            f"{ML100K_DIRNAME}/, or leave it unset to download."
        )
    verify_movielens_dir(ml_dir)
    return MovieLens100kSource(local_dir=str(ml_dir), cache_root=str(cache_root))


def _read_sha256sums(path: Path) -> dict[str, str]:
    """Parse a ``sha256sum``-style file into name -> hex digest."""
    sums: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise InputError(
                f"{path} line {lineno} is not '<sha256>  <file name>': {line!r}; fix or delete "
                "that SHA256SUMS file (the built-in sums are used without it)."
            )
        sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _sha256(path: Path) -> str:
    """Return the hex SHA256 of a file."""
    return file_digests(path)["sha256"]


def verify_movielens_dir(ml_dir: Path) -> None:
    """Check the MovieLens-100k files in ``ml_dir`` against their SHA256 sums.

    Sums come from ``ml_dir/SHA256SUMS`` when that file exists, else from the sums built into
    this module. The files the pipeline reads must be present.

    Args:
        ml_dir: The ``ml-100k`` directory.

    Raises:
        InputError: If a needed file is missing or a file does not match its sum (the message
            names the file).
    """
    sums_file = ml_dir / "SHA256SUMS"
    listed = _read_sha256sums(sums_file) if sums_file.is_file() else {}
    expected = {**ML100K_SHA256, **listed}
    for fname in ML100K_REQUIRED:
        if not (ml_dir / fname).is_file():
            raise InputError(
                f"MovieLens-100k file {ml_dir / fname} is missing; restore the full ml-100k "
                "directory (unzip ml-100k.zip from GroupLens) or point data_dir elsewhere."
            )
    for fname in [f for f in expected if (ml_dir / f).is_file()]:
        actual = _sha256(ml_dir / fname)
        if actual != expected[fname]:
            source = sums_file if fname in listed else "the built-in MovieLens-100k sums"
            raise InputError(
                f"checksum mismatch for {ml_dir / fname}: SHA256 is {actual}, expected "
                f"{expected[fname]} (from {source}); the file is corrupt or modified, replace it "
                "with the original from ml-100k.zip."
            )


def _check_ml100k_download(url: str, extracted: Path) -> None:
    """Check an unpacked ml-100k download: the needed files, and every file with a known sum."""
    for fname in ML100K_REQUIRED:
        if not (extracted / fname).is_file():
            raise InputError(
                f"the archive from {url} lacks {ML100K_DIRNAME}/{fname}; check the URL or "
                f"{_ML100K_HINT}"
            )
    for fname, want in ML100K_SHA256.items():
        if (extracted / fname).is_file() and _sha256(extracted / fname) != want:
            raise InputError(
                f"checksum mismatch for {fname} downloaded from {url}: the download was "
                "deleted; retry later, or pass data_dir / set RECLAB_DATA_DIR to a verified "
                "local copy of ml-100k."
            )
    logger.info("MovieLens-100k files match their built-in SHA256 sums")


def download_movielens_100k(
    cache_root: Path, *, url: str = ML100K_URL, timeout_s: float = DOWNLOAD_TIMEOUT_S
) -> Path:
    """Download and unzip MovieLens-100k into ``cache_root/ml-100k``, verifying checksums.

    The archive is downloaded and unpacked under temporary names next to the target (see
    :mod:`data.download`) and renamed into place only once every file with a known sum matches,
    so no half-written or corrupt copy is ever left in the cache.

    Args:
        cache_root: Directory that will hold ``ml-100k/``.
        url: Archive URL (``https://``, ``http://`` or ``file://``).
        timeout_s: Socket timeout for the download, in seconds.

    Returns:
        The verified ``cache_root/ml-100k`` directory.

    Raises:
        InputError: If the download fails, the archive is not a zip holding ``ml-100k/``, or a
            file does not match its known SHA256 sum (the download is then deleted).
    """
    cache_root.mkdir(parents=True, exist_ok=True)
    # The archive's own sum is not checked: its member files are, against the built-in sums.
    how = Unpacking(
        dest_name=ML100K_DIRNAME,
        member_root=ML100K_DIRNAME,
        check=functools.partial(_check_ml100k_download, url),
        what="MovieLens-100k",
        hint=f"check the URL or {_ML100K_HINT}",
    )
    return install_archive(
        url, cache_root, how, archive_name="ml-100k.zip", checksum=None, timeout_s=timeout_s
    )


def load_movielens_100k(con: duckdb.DuckDBPyConnection, source: Source, local: Path) -> list[str]:
    """Load the MovieLens-100k files into ``users``, ``items`` and ``raw_interactions``."""
    from data.prepare import run_sql

    run_sql(con, "ml100k_users.sql", {"path": str(local / "u.user")})
    run_sql(
        con,
        "ml100k_items.sql",
        {"items_path": str(local / "u.item"), "genres_path": str(local / "u.genre")},
    )
    run_sql(con, "ml100k_ratings.sql", {"path": str(local / "u.data")})
    return []


# --------------------------------------------------------------------------------------------
# MovieLens-1M, 10M, 20M, 25M
# --------------------------------------------------------------------------------------------

_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_TFDS_SUMS = "SHA256 from TensorFlow Datasets' url_checksums/movielens.txt"


def _grouplens(
    size: str,
    checksum: str,
    required: tuple[str, ...],
    *,
    folder: str | None = None,
    checksum_origin: str = _TFDS_SUMS,
    **extra: Any,
) -> Publication:
    """MovieLens-``size`` as GroupLens publishes it: ``ml-<size>.zip`` holding ``ml-<size>/``.

    Args:
        size: ``"1M"``, ``"10M"``, ...
        checksum: The zip's published sum.
        required: The files the loader reads.
        folder: The folder in the zip, when it is not ``ml-<size>``.
        checksum_origin: Where the sum comes from.
        **extra: Other :class:`Publication` fields.

    Returns:
        The publication.
    """
    zip_name = f"ml-{size.lower()}.zip"
    folder = folder or f"ml-{size.lower()}"
    return Publication(
        title=f"MovieLens-{size}",
        archive_name=zip_name,
        url=f"{_GROUPLENS}/{zip_name}",
        checksum=checksum,
        checksum_origin=checksum_origin,
        folder=folder,
        required=required,
        how_to_get=(
            f"Download {_GROUPLENS}/{zip_name} (GroupLens; free for research, see its README) "
            f"and pass --data-dir with the zip, the unpacked {folder}/ folder, or the folder "
            "holding either; or leave --data-dir unset to download it into the cache."
        ),
        **extra,
    )


_CSV_FILES = ("ratings.csv", "movies.csv")
MOVIELENS_PUBLICATIONS: dict[str, Publication] = {
    "movielens-1m": _grouplens(
        "1M",
        "sha256:a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        ("ratings.dat", "movies.dat", "users.dat"),
    ),
    "movielens-10m": _grouplens(
        "10M",
        "md5:ce571fd55effeba0271552578f2648bd",
        ("ratings.dat", "movies.dat"),
        folder="ml-10M100K",
        checksum_origin="MD5 published by GroupLens (ml-10m.zip.md5); no SHA256 is published",
        folder_aliases=("ml-10m",),
    ),
    "movielens-20m": _grouplens(
        "20M",
        "sha256:96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
        _CSV_FILES,
        other_datasets_folders={"ml-25m": "movielens-25m"},
    ),
    "movielens-25m": _grouplens(
        "25M",
        "sha256:8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
        _CSV_FILES,
        other_datasets_folders={"ml-20m": "movielens-20m"},
    ),
}


@dataclass(frozen=True, kw_only=True)
class MovieLensSource(PublishedSource):
    """MovieLens-1M, 10M, 20M or 25M (by ``name``), local or downloaded from GroupLens."""

    @property
    def publication(self) -> Publication:
        """The publication of this MovieLens size."""
        return MOVIELENS_PUBLICATIONS[self.name]


def resolve_movielens(name: str, data_dir: str | None) -> MovieLensSource:
    """Resolve ``movielens-1m`` / ``-10m`` / ``-20m`` / ``-25m`` (see :func:`resolve_published`).

    Args:
        name: One of :data:`MOVIELENS_PUBLICATIONS`.
        data_dir: The user's ``--data-dir`` (may be empty).

    Returns:
        The resolved source.
    """
    return resolve_published(MovieLensSource, name, MOVIELENS_PUBLICATIONS[name], data_dir)


def _read(con: duckdb.DuckDBPyConnection, sql_name: str, path: Path, title: str) -> None:
    """Run one loader statement over one file; a parse error names the file and the fix."""
    from data.prepare import run_sql

    try:
        run_sql(con, sql_name, {"path": str(path)})
    except duckdb.Error as exc:
        raise InputError(
            f"could not read {path} as the published {title} file: {duckdb_error_text(exc)}; "
            "replace it with the original from the GroupLens zip."
        ) from exc


def load_movielens(con: duckdb.DuckDBPyConnection, source: Source, local: Path) -> list[str]:
    """Load MovieLens-1M/10M/20M/25M into ``users``, ``items`` and ``raw_interactions``.

    Args:
        con: DuckDB connection of the scratch database.
        source: A :class:`MovieLensSource`.
        local: The folder from :meth:`MovieLensSource.fetch`.

    Returns:
        Notes for the split info: where the files came from.
    """
    from data.prepare import run_sql

    if not isinstance(source, MovieLensSource):
        raise TypeError(f"load_movielens needs a MovieLensSource, got {type(source).__name__}")
    title = source.publication.title
    if source.name in ("movielens-1m", "movielens-10m"):
        _read(con, "movielens_dat_ratings.sql", local / "ratings.dat", title)
        movies = local / "movies.dat"
        try:
            run_with_encoding_fallback(
                con, run_sql, "movielens_dat_movies.sql", {"path": str(movies)}, str(movies)
            )
        except duckdb.Error as exc:
            raise InputError(
                f"could not read {movies} as the published {title} file: "
                f"{duckdb_error_text(exc)}; replace it with the original from the GroupLens zip."
            ) from exc
        if source.name == "movielens-1m":
            _read(con, "movielens_dat_users.sql", local / "users.dat", title)
        else:
            run_sql(con, "users_from_interactions.sql")
    else:
        _read(con, "movielens_csv_ratings.sql", local / "ratings.csv", title)
        _read(con, "movielens_csv_movies.sql", local / "movies.csv", title)
        run_sql(con, "users_from_interactions.sql")
    _, coverage = check_loaded(
        con,
        title,
        has_timestamps=True,
        fix="replace the files with those of the GroupLens zip.",
        items_from_file=True,
        users_from_file=source.name == "movielens-1m",
    )
    return [source.provenance(local), *coverage]
