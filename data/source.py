"""The base of every resolved dataset, and where downloads and generated data are cached.

It lives in its own module so that the dataset modules (:mod:`data.movielens`,
:mod:`data.lastfm`, ...) and the registry (:mod:`data.registry`) can all import it without
importing each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar


def cache_dir() -> Path:
    """Return the cache directory: env ``RECLAB_CACHE_DIR`` or ``~/.cache/reclab``.

    Returns:
        The cache directory path (not created here).
    """
    value = os.environ.get("RECLAB_CACHE_DIR", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "reclab"


@dataclass(frozen=True, kw_only=True)
class Source:
    """A resolved dataset: cheap to build and to pickle, :meth:`fetch` makes the files local.

    Attributes:
        name: The registry name (one of ``data.registry.KNOWN_DATASETS``).
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
