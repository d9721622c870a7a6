"""Named datasets the pipeline can train on, resolved cheaply and fetched on demand.

The flow's ``start`` step calls :func:`resolve_source` to check every data parameter before any
heavy work: it looks at files and checksums but never downloads or generates anything. A later
step calls :meth:`Source.fetch` to make the files local (download MovieLens, generate synthetic
data) and hands the source to :func:`data.prepare.prepare_dataset`.

Known datasets:

* ``movielens-100k`` (default): the GroupLens MovieLens-100k files, read from a local directory
  (``data_dir`` argument or ``RECLAB_DATA_DIR``) or downloaded once into the cache directory
  (``RECLAB_CACHE_DIR``, default ``~/.cache/reclab``). SHA256 sums are always checked.
* named public datasets (:data:`NAMED_DATASETS`: MovieLens-1M/10M/20M/25M, last.fm-360K, UCI
  Online Retail, H&M), read as published from ``data_dir`` / ``RECLAB_DATA_DIR`` or downloaded
  into the cache on first use (H&M: local files only); see :mod:`data.named`.
* ``synthetic``: a seeded generator (see :mod:`data.synthetic`), cached by its parameters.
* ``file``: the user's own interactions file with a column mapping: parquet (a file or a
  directory) or delimited text of any usual dialect (see :mod:`data.files`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from data.files import (
    TEXT_SUFFIXES,
    inspect_file,
    normalise_columns,
    parse_mapping,
    read_file_relation,
    uses_positions,
)
from data.movielens import (  # noqa: F401  (re-exported: MovieLens-100k lived here)
    ML100K_DIRNAME,
    ML100K_REQUIRED,
    ML100K_SHA256,
    ML100K_URL,
    MOVIELENS_PUBLICATIONS,
    MovieLens100kSource,
    download_movielens_100k,
    resolve_movielens_100k,
    verify_movielens_dir,
)
from data.source import Source, cache_dir  # noqa: F401  (cache_dir re-exported)
from reclab.errors import InputError

logger = logging.getLogger(__name__)

DEFAULT_DATASET = "movielens-100k"
#: Public datasets read as published (or downloaded); resolved by :mod:`data.named`.
NAMED_DATASETS: tuple[str, ...] = (*MOVIELENS_PUBLICATIONS, "lastfm-360k", "online-retail", "hm")
KNOWN_DATASETS: tuple[str, ...] = ("movielens-100k", *NAMED_DATASETS, "synthetic", "file")


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


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
        file_format: ``"parquet"`` or ``"text"`` (delimited text; found from the file's first
            bytes, see :func:`data.files.inspect_file`).
        read_options: How to read text (delimiter, quote, escape, header, skip, encoding,
            compression, names), fixed when the source was resolved; empty for parquet.
        columns: Normalised mapping with keys ``user``, ``item``, ``timestamp`` (or None),
            ``weight`` (or None), ``user_features`` and ``item_features`` (lists), every entry a
            column name of the file as read.
        schema: Column name -> DuckDB type name, as read when the source was resolved.
        notes: What was detected about the file (delimiter, header, encoding), in words.
    """

    name: str = "file"
    path: str = ""
    file_format: str = "parquet"
    read_options: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

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
            "read_options": dict(self.read_options),
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
    existing cache) the SHA256 sums are checked, for a named dataset the files are looked for,
    for a user file its schema is read.

    Args:
        name: Dataset name, one of ``KNOWN_DATASETS``.
        data_dir: MovieLens-100k and the named datasets: a directory holding the dataset's
            published folder (e.g. ``ml-100k/``), the folder itself, or (named datasets) the
            published archive. Defaults to env ``RECLAB_DATA_DIR``; when neither holds the files
            they are downloaded into the cache by :meth:`Source.fetch` (``hm``: an error).
        interactions_file: ``file`` only: a parquet file, a directory of parquet files, or a
            delimited text file (``.csv``, ``.tsv``, ``.txt``, ``.dat``, each optionally
            ``.gz``; delimiter, header and encoding are detected).
        columns: ``file`` only: column mapping (dict or JSON string) with keys ``user``, ``item``
            (required), ``timestamp``, ``weight`` (optional), each a column name or 0-based
            position, ``user_features``, ``item_features`` (lists of names or positions), and
            the read options ``delimiter``, ``header``, ``encoding``, ``names`` (see
            :mod:`data.files`). Without user/item entries the file must already use the
            canonical names ``user_id``, ``item_id`` and, when present, ``weight``, ``ts``,
            ``user_*``, ``item_*``.
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
        return resolve_movielens_100k(data_dir)
    if name in NAMED_DATASETS:
        from data.named import resolve_named

        return resolve_named(name, data_dir)
    if name == "synthetic":
        from data.synthetic import validate_synthetic_params

        params = validate_synthetic_params(synthetic or {})
        return SyntheticSource(params=params, cache_root=str(cache_dir() / "synthetic"))
    return _resolve_file(interactions_file, columns)


def _resolve_file(
    interactions_file: str | None, columns: dict[str, Any] | str | None
) -> FileSource:
    """Check a user interactions file and its column mapping (reads the first megabyte only)."""
    roles, request = parse_mapping(columns)
    if not interactions_file:
        raise InputError(
            "dataset 'file' needs interactions_file: pass the path of a parquet file (or a "
            f"directory of them) or a delimited text file ({', '.join(TEXT_SUFFIXES)}, "
            "optionally .gz) holding one interaction per row."
        )
    path = Path(interactions_file).expanduser().resolve()
    if not path.exists():
        raise InputError(
            f"interactions_file {interactions_file!r} does not exist (looked at {path}); "
            "check the path."
        )
    scan_path = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        layout = inspect_file(con, path, request, by_position=uses_positions(roles))
        rel = read_file_relation(con, scan_path, layout.file_format, layout.read_options)
        schema = {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}
    finally:
        con.close()
    mapping = normalise_columns(roles, list(schema), header=layout.read_options.get("header", True))
    return FileSource(
        path=str(path),
        file_format=layout.file_format,
        read_options=layout.read_options,
        columns=mapping,
        schema=schema,
        notes=layout.notes,
    )
