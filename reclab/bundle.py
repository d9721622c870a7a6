"""The versioned winner: a fitted model with everything needed to use it on raw ids.

``TrainFlow`` stores a :class:`ModelBundle` as the ``best_model`` artifact, so a user gets top-k
raw item ids (and titles) for a raw user id with one call after loading it from the Metaflow
client::

    from metaflow import Flow
    bundle = Flow("TrainFlow").latest_successful_run.data.best_model
    bundle.recommend(196, k=10)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reclab.errors import InputError
from reclab.id_maps import IdMap
from reclab.models.base import Recommender
from reclab.models.registry import FAMILIES


@dataclass
class ModelBundle:
    """A fitted model, its id maps, item metadata and how it was trained.

    Attributes:
        family: The model family name.
        params: Its hyper-parameters.
        model_payload: The model serialised with ``Recommender.to_bytes``.
        user_map: Raw user id <-> user_idx.
        item_map: Raw item id <-> item_idx.
        item_metadata: Item metadata indexed by raw item id (title and features), or None.
        split: The split the model was trained and selected on.
        metrics: Validation and test metrics of this model.
        item_popularity: Train interactions per encoded item (the popularity baseline's
            counts, :func:`reclab.popularity.interaction_counts`), for the cold-start list;
            None when the bundle was built without them.
        trained_on: The windows the model was fitted on: ``"train"`` for an evaluated
            candidate, ``"train+valid+test"`` for the refit that is served (its ``metrics``
            are then those of the evaluated fit of the same recipe).
    """

    family: str
    params: dict[str, Any]
    model_payload: bytes
    user_map: IdMap
    item_map: IdMap
    item_metadata: pd.DataFrame | None = None
    split: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    item_popularity: np.ndarray | None = field(default=None, repr=False, compare=False)
    trained_on: str = "train"

    def __post_init__(self) -> None:
        self._model: Recommender | None = None
        self._model_lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_model"] = None
        state.pop("_model_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("item_popularity", None)  # bundles pickled before the fields existed
        state.setdefault("trained_on", "train")
        self.__dict__.update(state)
        self._model = None
        self._model_lock = threading.Lock()

    @property
    def model_class(self) -> type[Recommender]:
        """The family's class, known without deserialising the model."""
        return FAMILIES[self.family].load_class()

    @property
    def model(self) -> Recommender:
        """The fitted model, deserialised once on first use (one thread does it, under a lock)."""
        model = self._model
        if model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = self.model_class.from_bytes(self.model_payload)
                model = self._model
        return model

    def recommend(self, user_id: Any, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-k items for one raw user id.

        Args:
            user_id: A raw user id as in the source data (e.g. ``196`` for MovieLens).
            k: Number of items.
            exclude_seen: Leave out items the user has in train.

        Returns:
            Columns ``rank`` (from 1), ``item_id`` (raw), ``score`` and, when item metadata is
            known, its columns (``title``, ...).

        Raises:
            InputError: If the user is not in the training data, or k < 1.
        """
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        user_idx = self.user_map.to_idx([user_id])
        if user_idx[0] < 0:
            raise InputError(
                f"user {user_id!r} is not in the training data of this model "
                f"({len(self.user_map)} known users, e.g. {self.user_map.raw_ids[:3].tolist()}); "
                "raw ids must match the source's type and value"
            )
        items, scores = self.model.recommend(user_idx, k, exclude_seen=exclude_seen)
        keep = items[0] >= 0
        raw_items = self.item_map.to_raw(items[0][keep])
        frame = pd.DataFrame(
            {"rank": np.arange(1, keep.sum() + 1), "item_id": raw_items, "score": scores[0][keep]}
        )
        if self.item_metadata is not None:
            frame = frame.join(self.item_metadata, on="item_id")
        return frame
