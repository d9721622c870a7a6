"""The base of every resolved dataset, where downloads and generated data are cached, and the
check of the option mappings users pass (column mappings, generator parameters).

It lives in its own module so that the dataset modules (:mod:`data.movielens`,
:mod:`data.lastfm`, ...) and the registry (:mod:`data.registry`) can all import it without
importing each other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from reclab.errors import InputError


def cache_dir() -> Path:
    """Return the cache directory: env ``RECLAB_CACHE_DIR`` or ``~/.cache/reclab``.

    Returns:
        The cache directory path (not created here).
    """
    value = os.environ.get("RECLAB_CACHE_DIR", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "reclab"


def check_mapping(value: Any, name: str, allowed: Sequence[str], example: str) -> dict[str, Any]:
    """Check that the user's options ``value`` are a mapping with only ``allowed`` keys.

    Args:
        value: What the user gave.
        name: What it is, for messages (e.g. ``"columns"``).
        allowed: The keys it may have.
        example: A valid value, shown when ``value`` is not a mapping.

    Returns:
        ``value``.

    Raises:
        InputError: If ``value`` is not a dict, or has a key not in ``allowed``.
    """
    if not isinstance(value, dict):
        raise InputError(
            f"{name} must be a mapping (dict or JSON object), got {type(value).__name__}; pass "
            f"e.g. {example}."
        )
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise InputError(
            f"unknown keys {unknown} in {name}; the allowed keys are {', '.join(allowed)}."
        )
    return value


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
