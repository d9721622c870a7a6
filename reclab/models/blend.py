"""Recency blend: a personalised family's scores fused with what is popular now.

On a split that holds out the weeks after training, recent popularity (``recent_popularity``)
is hard to beat, and a personalised model alone misses the items that are trending when the
window starts. This family fits one personalised base (item KNN, SAR, EASE or ALS, with its own
hyper-parameters) and the time-decayed item counts of :func:`reclab.models.recency.decayed_counts`,
and scores each user by

    (1 - blend_weight) * base_u + blend_weight * popularity_u

where both sides are min-max normalised *per user* over the items that user can be shown (not
in their train history, finite base score): the best candidate of either side scores 1, the
worst 0. So ``blend_weight`` means the same thing for every base and every user, whatever the
base's score scale (EASE's regression outputs, ALS's dot products, SAR's summed affinities):
0 is the base's ranking exactly, and it is chosen on validation like any other
hyper-parameter. Items the base rules out (score -inf: EASE's items above ``max_items``, SAR's
mutual-information rule) stay out. Without timestamps the popularity side is plain counts (a
warning), so the family still works on play counts.

Fold-in and item similarity come from the base (all four bases have them): a new user's
fold-in scores are blended the same way, and "more like this" is the base's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from reclab.models.base import (
    Recommender,
    TrainData,
    ValidationWindow,
    encoded_indices,
    make_params,
    parameter_names,
)
from reclab.models.capabilities import FoldIn, ItemSimilarity
from reclab.models.params import check_field, set_field
from reclab.models.recency import decayed_counts

logger = logging.getLogger(__name__)

# Personalised CPU families a blend can wrap; each has fold-in and item similarity. The deep
# families are left out: the blend trains in the CPU step.
BLEND_BASES = ("item_knn", "sar", "ease", "als")


@dataclass(frozen=True)
class RecencyBlendParams:
    """Hyper-parameters of :class:`RecencyBlendRecommender`.

    Attributes:
        base_family: The personalised family whose scores are blended: one of ``BLEND_BASES``.
        base_params: That family's hyper-parameters (checked by the family; ``{}`` for its
            defaults).
        half_life_days: Half-life of the popularity side's time decay, in days (> 0).
        blend_weight: Weight of the popularity side in [0, 1): 0 is the base alone.
        seed: Passed to a base that takes a seed, unless ``base_params`` sets one.
    """

    base_family: str = "ease"
    base_params: dict = field(default_factory=dict)
    half_life_days: float = 7.0
    blend_weight: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.base_family not in BLEND_BASES:
            raise ValueError(
                f"base_family must be one of {', '.join(BLEND_BASES)}, got {self.base_family!r}"
            )
        if not isinstance(self.base_params, dict):
            raise ValueError(
                f"base_params must be an object of {self.base_family} parameters, got "
                f"{self.base_params!r}"
            )
        set_field(self, "base_params", dict(self.base_params))
        check_field(self, "half_life_days", 0, low_open=True)
        check_field(self, "blend_weight", 0, 1, high_open=True)
        check_field(self, "seed", 0, integer=True)
        try:  # the base's own checks, so a bad base parameter fails at construction
            make_params(_base_class(self.base_family), self.base_params)
        except (TypeError, ValueError) as error:
            raise ValueError(f"base_params for {self.base_family}: {error}") from error


def _base_class(family: str) -> type[Recommender]:
    from reclab.models.registry import FAMILIES  # the registry names this module

    return FAMILIES[family].load_class()


class RecencyBlendRecommender(Recommender, FoldIn, ItemSimilarity):
    """Per-user normalised fusion of a base family's scores and recent popularity.

    Hyper-parameters: :class:`RecencyBlendParams`.
    """

    family = "recency_blend"
    Params = RecencyBlendParams
    format_version = 1
    # Users per scoring batch: the per-user normalisation holds a few (batch x n_items)
    # temporaries, 120 MB each at 512 users x 60,000 items.
    batch_size = 512

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.base: Recommender | None = None
        self.popularity: np.ndarray | None = None  # decayed counts, float32 (n_items,)

    def _make_base(self) -> Recommender:
        params = self.hparams
        cls = _base_class(params.base_family)
        base_params = dict(params.base_params)
        if "seed" in parameter_names(cls) and "seed" not in base_params:
            base_params["seed"] = params.seed
        return cls(**base_params)

    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None:
        self.base = self._make_base().fit(train, validation)
        self._seen = self.base._seen  # one copy of the train items in memory and in the payload
        self.train_rows_used, self.train_sample = self.base.train_rows_used, self.base.train_sample
        self.popularity = decayed_counts(train, self.hparams.half_life_days).astype(np.float32)

    def _scores_into(self, user_idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        out = self.base._scores_into(user_idx, out)
        return self._blend(out, user_mask(self._seen[user_idx], self.n_items))

    def _blend(self, base_scores: np.ndarray, shown: np.ndarray) -> np.ndarray:
        """Fuse base scores (n, n_items, in place) with popularity, normalised per row over the
        ``shown`` entries whose base score is finite; other finite entries are scaled alike."""
        weight = np.float32(self.hparams.blend_weight)
        finite = np.isfinite(base_scores)
        shown &= finite
        popularity = np.broadcast_to(self.popularity, base_scores.shape)
        base_scores[~finite] = 0.0  # restored below; keeps the arithmetic free of inf and NaN
        fused = (1 - weight) * _min_max_rows(base_scores, shown)
        fused += weight * _min_max_rows(popularity, shown)
        fused[~finite] = -np.inf
        base_scores[:] = fused
        return base_scores

    def fold_in_scores(self, item_idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """The base's fold-in scores of a new user, blended with popularity as for a known user
        (normalised over the items outside the given history)."""
        item_idx = encoded_indices(item_idx, self.n_items, "item_idx")
        scores = np.asarray(self.base.fold_in_scores(item_idx, weights), dtype=np.float32)[None]
        shown = np.ones(scores.shape, dtype=bool)
        shown[0, item_idx] = False
        return self._blend(scores.copy(), shown)[0]

    def item_similarity_scores(self, item_idx: int) -> np.ndarray:
        """The base's item similarity (blending with popularity does not change it)."""
        if self.base is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        return self.base.item_similarity_scores(item_idx)

    def user_history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """The base's scored history of a known user."""
        return self.base.user_history(user_idx)


def _min_max_rows(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(values - min) / (max - min)`` per row, min and max over the row's ``mask`` entries.

    A row whose masked entries are all equal (or none) gives 0 everywhere, so the other side of
    the blend decides it alone.

    Returns:
        float32 array of the shape of ``values`` (a new array).
    """
    low = np.where(mask, values, np.inf).min(axis=1, keepdims=True)
    high = np.where(mask, values, -np.inf).max(axis=1, keepdims=True)
    spread = high - low
    has_spread = np.isfinite(spread) & (spread > 0)
    scale = np.where(has_spread, 1.0 / np.where(has_spread, spread, 1.0), 0.0)
    offset = np.where(has_spread, low, 0.0)
    return ((values - offset) * scale).astype(np.float32)


def user_mask(seen: sp.csr_matrix, n_items: int) -> np.ndarray:
    """Dense boolean (n_users, n_items): True where an item is not in the user's row."""
    shown = np.ones((seen.shape[0], n_items), dtype=bool)
    coo = seen.tocoo()
    shown[coo.row, coo.col] = False
    return shown
