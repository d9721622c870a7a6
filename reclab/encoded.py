"""Read the encoded windows that ``build_workflow`` wrote, as model and evaluator inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reclab.id_maps import IdMap
from reclab.models.base import TrainData


@dataclass
class Window:
    """A validation or test window in encoded ids (cold users < 0, unseen items >= n_items)."""

    name: str
    user_idx: np.ndarray
    item_idx: np.ndarray


def load_train(encoded_dir: str | Path, user_map: IdMap, item_map: IdMap) -> TrainData:
    """Load ``encoded/train.parquet`` as :class:`TrainData`.

    Args:
        encoded_dir: The ``encoded/`` directory written by ``build_workflow``.
        user_map: Raw user id <-> user_idx.
        item_map: Raw item id <-> item_idx.

    Returns:
        Train interactions; ``ts`` is None when the source has no timestamps.
    """
    encoded_dir = Path(encoded_dir)
    frame = pd.read_parquet(encoded_dir / "train.parquet")
    nvt_dir = encoded_dir.parent / "nvt"
    ts = frame["ts"].to_numpy(dtype=np.float64)
    return TrainData(
        user_idx=frame["user_idx"].to_numpy(dtype=np.int64),
        item_idx=frame["item_idx"].to_numpy(dtype=np.int64),
        weight=frame["weight"].to_numpy(dtype=np.float64),
        ts=None if np.isnan(ts).all() else ts,
        n_users=len(user_map),
        n_items=len(item_map),
        item_ids=item_map.raw_ids,
        nvt_dir=str(nvt_dir) if nvt_dir.is_dir() else None,
    )


def load_window(encoded_dir: str | Path, name: str) -> Window:
    """Load ``encoded/<name>.parquet`` (``valid`` or ``test``)."""
    frame = pd.read_parquet(Path(encoded_dir) / f"{name}.parquet", columns=["user_idx", "item_idx"])
    return Window(
        name=name,
        user_idx=frame["user_idx"].to_numpy(dtype=np.int64),
        item_idx=frame["item_idx"].to_numpy(dtype=np.int64),
    )


def read_item_metadata(items_path: str | Path) -> pd.DataFrame | None:
    """Item metadata (title and ``item_*`` features) indexed by raw item id, if the file exists."""
    items_path = Path(items_path)
    if not items_path.exists():
        return None
    return pd.read_parquet(items_path).set_index("item_id")
