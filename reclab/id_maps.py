"""The one place where raw ids and encoded ids meet.

``build_workflow`` encodes raw user and item ids with NVTabular's Categorify. Its category file
(``categories/unique.<column>.parquet``) stores each raw id with its code in the file's index;
codes below the first category are reserved (padding, nulls, out-of-vocabulary). Our encoded
index is ``idx = code - code_offset``, so users and items are contiguous ``0..n-1`` and the
model families, the evaluator and Merlin all agree on what an id means.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reclab.errors import InputError


@dataclass
class IdMap:
    """Bidirectional map between raw ids and encoded indices for one id column.

    Attributes:
        column: The id column, ``"user_id"`` or ``"item_id"``.
        raw_ids: Raw id of each encoded index (position ``idx`` holds the raw id).
        code_offset: NVTabular code of index 0; smaller codes are reserved by Categorify.
    """

    column: str
    raw_ids: np.ndarray
    code_offset: int

    def __post_init__(self) -> None:
        self._index = pd.Index(self.raw_ids)
        if not self._index.is_unique:
            raise ValueError(f"{self.column}: raw ids in the category file are not unique")

    def __getstate__(self) -> dict:
        return {"column": self.column, "raw_ids": self.raw_ids, "code_offset": self.code_offset}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def __len__(self) -> int:
        return len(self.raw_ids)

    @classmethod
    def from_category_file(cls, path: str | Path, column: str) -> IdMap:
        """Build the map from an NVTabular category file, using the codes stored in its index.

        Args:
            path: ``.../categories/unique.<column>.parquet`` written by ``Workflow.fit``.
            column: The id column name.

        Returns:
            The id map.

        Raises:
            ValueError: If the stored codes are not one contiguous block.
        """
        categories = pd.read_parquet(path, columns=[column])
        codes = categories.index.to_numpy(dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        codes, raw_ids = codes[order], categories[column].to_numpy()[order]
        if len(codes) and not np.array_equal(codes, np.arange(codes[0], codes[0] + len(codes))):
            raise ValueError(f"{path}: category codes are not contiguous; cannot build an id map")
        if pd.isna(raw_ids).any():
            raise ValueError(f"{path}: a null {column} was encoded as a category")
        return cls(column=column, raw_ids=raw_ids, code_offset=int(codes[0]) if len(codes) else 0)

    def to_idx(self, raw_ids: np.ndarray | pd.Series | list) -> np.ndarray:
        """Encode raw ids; ids not in the map become -1."""
        return self._index.get_indexer(pd.Index(np.asarray(raw_ids))).astype(np.int64)

    def to_idx_distinct_unknown(
        self, raw_ids: np.ndarray | pd.Series | list, below: bool = False
    ) -> np.ndarray:
        """Encode raw ids, giving each distinct unknown raw id its own index.

        The evaluator needs this: several items never seen in train must stay several relevant
        items, and several cold users several cold users, not one out-of-vocabulary code.

        Args:
            raw_ids: Raw ids to encode.
            below: Unknown ids get ``-1, -2, ...`` (for users) instead of ``len(self), ...``
                (for items).

        Returns:
            int64 indices; known ids in ``[0, len(self))``.
        """
        raw = pd.Index(np.asarray(raw_ids))
        idx = self._index.get_indexer(raw).astype(np.int64)
        unknown = idx < 0
        if unknown.any():
            codes, _ = pd.factorize(raw[unknown], sort=True)
            idx[unknown] = -1 - codes if below else len(self) + codes
        return idx

    def to_raw(self, idx: np.ndarray | list) -> np.ndarray:
        """Decode indices to raw ids.

        Raises:
            IndexError: If an index is outside ``[0, len(self))``.
        """
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"{self.column}: index out of range [0, {len(self)})")
        return self.raw_ids[idx]

    def code_to_idx(self, codes: np.ndarray) -> np.ndarray:
        """Turn NVTabular codes into indices; reserved and out-of-vocabulary codes become -1."""
        idx = np.asarray(codes, dtype=np.int64) - self.code_offset
        idx[(idx < 0) | (idx >= len(self))] = -1
        return idx


def coerce_id(value: Any, id_map: IdMap, what: str) -> Any:
    """A raw id from JSON or the command line, converted to the id map's type.

    Args:
        value: The id as given (``196``, ``"196"``, ``"sku-1"``).
        id_map: The map whose raw ids it must match.
        what: ``"user"`` or ``"item"``, for the message.

    Returns:
        An ``int`` for integer maps, else a ``str``.

    Raises:
        InputError: If the value cannot be an id of this map (e.g. "abc" for integer ids).
    """
    if isinstance(value, bool) or value is None:
        raise InputError(f"{what} id {value!r} is not an id; use an integer or a string")
    if id_map.raw_ids.dtype.kind in "iu":
        if isinstance(value, Integral):
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise InputError(
            f"{what} id {value!r} is not an integer; this model's {what} ids are integers "
            f"(e.g. {id_map.raw_ids[:3].tolist()})"
        )
    if isinstance(value, Integral | str):
        return str(value)
    raise InputError(f"{what} id {value!r} is not an id; use an integer or a string")
