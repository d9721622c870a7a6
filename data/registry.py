"""Named datasets the pipeline can train on, resolved cheaply and fetched on demand.

The flow's ``start`` step calls :func:`resolve_source` to check every data parameter before any
heavy work: it looks at files and checksums but never downloads or generates anything. A later
step calls :meth:`Source.fetch` to make the files local (download MovieLens, generate synthetic
data) and hands the source to :func:`data.prepare.prepare_dataset`.

Known datasets:

* ``movielens-100k`` (default): the GroupLens MovieLens-100k files, read from a local directory
  (``data_dir`` argument or ``RECLAB_DATA_DIR``) or downloaded once into the cache directory
  (``RECLAB_CACHE_DIR``, default ``~/.cache/reclab``). SHA256 sums are always checked.
* ``synthetic``: a seeded generator (see :mod:`data.synthetic`), cached by its parameters.
* ``file``: the user's own interactions file (parquet, CSV or a directory of parquet files) with a
  column mapping.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import duckdb

from reclab.errors import InputError

logger = logging.getLogger(__name__)

DEFAULT_DATASET = "movielens-100k"
KNOWN_DATASETS: tuple[str, ...] = ("movielens-100k", "synthetic", "file")

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
DOWNLOAD_TIMEOUT_S = 60.0

COLUMN_KEYS: tuple[str, ...] = (
    "user",
    "item",
    "timestamp",
    "weight",
    "user_features",
    "item_features",
)
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
CSV_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")


def cache_dir() -> Path:
    """Return the cache directory: env ``RECLAB_CACHE_DIR`` or ``~/.cache/reclab``.

    Returns:
        The cache directory path (not created here).
    """
    value = os.environ.get("RECLAB_CACHE_DIR", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "reclab"


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Source:
    """A resolved dataset: cheap to build and to pickle, :meth:`fetch` makes the files local.

    Attributes:
        name: The registry name (one of ``KNOWN_DATASETS``).
    """

    name: str

    #: Whether interactions carry timestamps (time-window split) or not (random per-user split).
    has_timestamps: ClassVar[bool] = True

    def fetch(self) -> Path:
        """Make the dataset's files local (download or generate if needed).

        Returns:
            The local path the loader in :mod:`data.prepare` reads.
        """
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Return a JSON-serialisable description of the source, for artifacts and logs."""
        raise NotImplementedError


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


@dataclass(frozen=True, kw_only=True)
class SyntheticSource(Source):
    """Synthetic interactions from :func:`data.synthetic.generate_synthetic`, cached by params.

    Attributes:
        params: Validated generator parameters (n_users, n_items, n_interactions, n_clusters,
            seed, distinct_pairs).
        cache_root: Where generated datasets are kept (``<cache>/synthetic``).
    """

    name: str = "synthetic"
    params: dict[str, int] = field(default_factory=dict)
    cache_root: str = ""

    @property
    def directory(self) -> Path:
        """The cache directory for these parameters."""
        from data.synthetic import GENERATOR_VERSION

        p = self.params
        key = (
            f"u{p['n_users']}-i{p['n_items']}-n{p['n_interactions']}-c{p['n_clusters']}"
            f"-s{p['seed']}-v{GENERATOR_VERSION}"
        )
        if p.get("distinct_pairs"):
            key += "-distinct"
        return Path(self.cache_root) / key

    def fetch(self) -> Path:
        """Generate the dataset into the cache unless it is already there.

        Returns:
            The directory holding ``interactions.parquet``, ``users.parquet``, ``items.parquet``.
        """
        from data.synthetic import MANIFEST_NAME, generate_synthetic

        target = self.directory
        if (target / MANIFEST_NAME).is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            generate_synthetic(tmp, **self.params)
            try:
                os.replace(tmp, target)
            except OSError:
                # Another process finished the same dataset first; same seed, same content.
                if not (target / MANIFEST_NAME).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def describe(self) -> dict[str, Any]:
        """Return a JSON-serialisable description of the source."""
        return {"name": self.name, "params": dict(self.params), "cache_root": self.cache_root}


@dataclass(frozen=True, kw_only=True)
class FileSource(Source):
    """The user's own interactions file with a validated column mapping.

    Attributes:
        path: The file, or a directory of parquet files.
        file_format: ``"parquet"`` or ``"csv"`` (detected from the extension).
        columns: Normalised mapping with keys ``user``, ``item``, ``timestamp`` (or None),
            ``weight`` (or None), ``user_features`` and ``item_features`` (lists).
        schema: Column name -> DuckDB type name, as read when the source was resolved.
    """

    name: str = "file"
    path: str = ""
    file_format: str = "parquet"
    columns: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, str] = field(default_factory=dict)

    @property
    def has_timestamps(self) -> bool:  # type: ignore[override]
        """True when a timestamp column is mapped."""
        return bool(self.columns.get("timestamp"))

    @property
    def scan_path(self) -> str:
        """The path or glob DuckDB reads (a directory becomes ``dir/**/*.parquet``)."""
        p = Path(self.path)
        return str(p / "**" / "*.parquet") if p.is_dir() else str(p)

    def fetch(self) -> Path:
        """Check the file is still there and return its path.

        Returns:
            The file (or directory) path.

        Raises:
            InputError: If it disappeared since the source was resolved.
        """
        p = Path(self.path)
        if not p.exists():
            raise InputError(
                f"interactions_file {self.path!r} does not exist any more (it did when the "
                "source was resolved); restore it or pass another file."
            )
        return p

    def describe(self) -> dict[str, Any]:
        """Return a JSON-serialisable description of the source."""
        return {
            "name": self.name,
            "path": self.path,
            "format": self.file_format,
            "columns": dict(self.columns),
        }


# --------------------------------------------------------------------------------------------
# Resolution (cheap)
# --------------------------------------------------------------------------------------------


def resolve_source(
    name: str = DEFAULT_DATASET,
    data_dir: str | None = None,
    interactions_file: str | None = None,
    columns: dict[str, Any] | str | None = None,
    synthetic: dict[str, Any] | None = None,
) -> Source:
    """Check the data parameters and return a :class:`Source`, without heavy work.

    No download and no generation happen here; for MovieLens-100k in a local directory (or an
    existing cache) the SHA256 sums are checked, for a user file its schema is read.

    Args:
        name: Dataset name, one of ``KNOWN_DATASETS``.
        data_dir: MovieLens only: a directory holding ``ml-100k/`` or the ``ml-100k/`` directory
            itself. Defaults to env ``RECLAB_DATA_DIR``; when neither is set the files are
            downloaded into the cache by :meth:`Source.fetch`.
        interactions_file: ``file`` only: a parquet or CSV file, or a directory of parquet files.
        columns: ``file`` only: column mapping (dict or JSON string) with keys ``user``, ``item``
            (required), ``timestamp``, ``weight`` (optional) and ``user_features``,
            ``item_features`` (lists). None means the file already uses the canonical names
            ``user_id``, ``item_id`` and, when present, ``weight``, ``ts``, ``user_*``,
            ``item_*``.
        synthetic: ``synthetic`` only: generator parameters (n_users, n_items, n_interactions,
            n_clusters, seed, distinct_pairs); missing ones take defaults
            (:func:`data.synthetic.scaled_shape` gives users and items shaped like MovieLens).

    Returns:
        The resolved source.

    Raises:
        InputError: For an unknown name, a missing or corrupt file, a bad mapping or bad
            generator parameters.
    """
    if not isinstance(name, str) or name not in KNOWN_DATASETS:
        raise InputError(
            f"unknown dataset {name!r}: the known datasets are {', '.join(KNOWN_DATASETS)}; "
            "pass one of those names."
        )
    if interactions_file and name != "file":
        raise InputError(
            f"interactions_file={interactions_file!r} was given with dataset {name!r}; "
            "use dataset 'file' to train on your own file, or drop interactions_file."
        )
    if columns and name != "file":
        logger.warning("column mapping ignored: it only applies to dataset 'file' (got %r)", name)
    if synthetic and name != "synthetic":
        logger.warning("synthetic parameters ignored: dataset is %r, not 'synthetic'", name)

    if name == "movielens-100k":
        return _resolve_movielens(data_dir)
    if name == "synthetic":
        from data.synthetic import validate_synthetic_params

        params = validate_synthetic_params(synthetic or {})
        return SyntheticSource(params=params, cache_root=str(cache_dir() / "synthetic"))
    return _resolve_file(interactions_file, columns)


def _resolve_movielens(data_dir: str | None) -> MovieLens100kSource:
    """Find and verify a local MovieLens-100k copy, or point at the cache."""
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


def _sha256(path: Path) -> str:
    """Return the hex SHA256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def download_movielens_100k(
    cache_root: Path, *, url: str = ML100K_URL, timeout_s: float = DOWNLOAD_TIMEOUT_S
) -> Path:
    """Download and unzip MovieLens-100k into ``cache_root/ml-100k``, verifying checksums.

    The archive is downloaded and extracted inside a temporary directory next to the target and
    only renamed into place once every file with a known sum matches, so no half-written or
    corrupt copy is ever left in the cache.

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
    target = cache_root / ML100K_DIRNAME
    tmp = Path(tempfile.mkdtemp(prefix=".download-", suffix=".tmp", dir=cache_root))
    try:
        archive = tmp / "ml-100k.zip"
        logger.info("downloading MovieLens-100k from %s into %s", url, cache_root)
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp, archive.open("wb") as fh:
                shutil.copyfileobj(resp, fh, length=1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise InputError(
                f"could not download MovieLens-100k from {url}: {exc}; check the network, or "
                "pass data_dir / set RECLAB_DATA_DIR to a local copy of ml-100k."
            ) from exc
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp / "extract")
        except zipfile.BadZipFile as exc:
            raise InputError(
                f"the file downloaded from {url} is not a zip archive ({exc}); check the URL or "
                "pass data_dir / set RECLAB_DATA_DIR to a local copy of ml-100k."
            ) from exc
        extracted = tmp / "extract" / ML100K_DIRNAME
        if not extracted.is_dir():
            raise InputError(
                f"the archive from {url} has no {ML100K_DIRNAME}/ directory; check the URL or "
                "pass data_dir / set RECLAB_DATA_DIR to a local copy of ml-100k."
            )
        for fname in ML100K_REQUIRED:
            if not (extracted / fname).is_file():
                raise InputError(
                    f"the archive from {url} lacks {ML100K_DIRNAME}/{fname}; check the URL or "
                    "pass data_dir / set RECLAB_DATA_DIR to a local copy of ml-100k."
                )
        for fname, want in ML100K_SHA256.items():
            if (extracted / fname).is_file() and _sha256(extracted / fname) != want:
                raise InputError(
                    f"checksum mismatch for {fname} downloaded from {url}: the download was "
                    "deleted; retry later, or pass data_dir / set RECLAB_DATA_DIR to a verified "
                    "local copy of ml-100k."
                )
        try:
            os.replace(extracted, target)
        except OSError:
            # A concurrent download won the rename; keep theirs if it verifies.
            if not target.is_dir():
                raise
        verify_movielens_dir(target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _file_format(path: Path) -> str:
    """Return ``"parquet"`` or ``"csv"`` for a path, from its extension (a directory: parquet)."""
    if path.is_dir():
        return "parquet"
    lower = path.name.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    raise InputError(
        f"interactions_file {str(path)!r} has an unsupported extension: use one of "
        f"{', '.join(PARQUET_SUFFIXES + CSV_SUFFIXES)}, or a directory of .parquet files."
    )


def read_file_relation(
    con: duckdb.DuckDBPyConnection, scan_path: str, file_format: str
) -> duckdb.DuckDBPyRelation:
    """Open a user interactions file as a DuckDB relation (schema sniffed, nothing scanned).

    Args:
        con: DuckDB connection.
        scan_path: File path or parquet glob.
        file_format: ``"parquet"`` or ``"csv"``.

    Returns:
        The relation over the file.

    Raises:
        InputError: If DuckDB cannot parse the file.
    """
    try:
        if file_format == "parquet":
            return con.read_parquet(scan_path)
        return con.read_csv(scan_path)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"could not parse interactions_file {scan_path!r} as {file_format}: {first}; check "
            f"that it is a valid {file_format} file (CSV needs a header row)."
        ) from exc


def _normalise_columns(columns: dict[str, Any] | str | None, existing: list[str]) -> dict[str, Any]:
    """Validate a column mapping against the file's columns and fill in the defaults."""
    if isinstance(columns, str):
        try:
            columns = json.loads(columns) if columns.strip() else None
        except json.JSONDecodeError as exc:
            raise InputError(
                f"columns is not valid JSON ({exc}); pass an object such as "
                '{"user": "uid", "item": "song", "timestamp": "ts", "weight": "plays"}.'
            ) from exc
    if columns is None:
        columns = {
            "user": "user_id",
            "item": "item_id",
            "timestamp": "ts" if "ts" in existing else None,
            "weight": "weight" if "weight" in existing else None,
            "user_features": [c for c in existing if c.startswith("user_") and c != "user_id"],
            "item_features": [c for c in existing if c.startswith("item_") and c != "item_id"],
        }
    if not isinstance(columns, dict):
        raise InputError(
            f"columns must be a mapping (dict or JSON object), got {type(columns).__name__}; "
            'pass e.g. {"user": "uid", "item": "song"}.'
        )
    unknown = sorted(set(columns) - set(COLUMN_KEYS))
    if unknown:
        raise InputError(
            f"columns has unknown keys {unknown}; the allowed keys are {', '.join(COLUMN_KEYS)}."
        )
    out: dict[str, Any] = {}
    for key in ("user", "item", "timestamp", "weight"):
        value = columns.get(key)
        if key in ("user", "item") and not value:
            raise InputError(
                f"columns needs a {key!r} entry naming the {key} id column; the file has "
                f"columns {existing}."
            )
        if value is not None and not isinstance(value, str):
            raise InputError(f"columns[{key!r}] must be a column name (string), got {value!r}.")
        out[key] = value or None
    for key in ("user_features", "item_features"):
        value = columns.get(key) or []
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise InputError(
                f"columns[{key!r}] must be a list of column names, got {value!r}; write e.g. "
                '["age", "country"].'
            )
        out[key] = list(value)
    mapped = [out[k] for k in ("user", "item", "timestamp", "weight") if out[k]]
    mapped += out["user_features"] + out["item_features"]
    missing = [c for c in mapped if c not in existing]
    if missing:
        raise InputError(
            f"mapped column(s) {missing} not found in the interactions file; it has columns "
            f"{existing}. Fix the column mapping."
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


def _resolve_file(
    interactions_file: str | None, columns: dict[str, Any] | str | None
) -> FileSource:
    """Check a user interactions file and its column mapping (reads the schema only)."""
    if not interactions_file:
        raise InputError(
            "dataset 'file' needs interactions_file: pass the path of a parquet or CSV file "
            "(or a directory of parquet files) holding one interaction per row."
        )
    path = Path(interactions_file).expanduser().resolve()
    if not path.exists():
        raise InputError(
            f"interactions_file {interactions_file!r} does not exist (looked at {path}); "
            "check the path."
        )
    file_format = _file_format(path)
    if path.is_dir():
        if not any(path.rglob("*.parquet")):
            raise InputError(
                f"interactions_file {interactions_file!r} is a directory without .parquet "
                "files; point it at a parquet/CSV file or a directory of .parquet files."
            )
    elif path.stat().st_size == 0:
        raise InputError(
            f"interactions_file {interactions_file!r} is empty (0 bytes); pass a file with a "
            "header and at least one interaction."
        )
    scan_path = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        rel = read_file_relation(con, scan_path, file_format)
        schema = {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}
    finally:
        con.close()
    mapping = _normalise_columns(columns, list(schema))
    return FileSource(path=str(path), file_format=file_format, columns=mapping, schema=schema)
