"""One popularity definition for the whole project: train interactions per item.

The ``popularity`` baseline (:class:`reclab.models.baselines.PopularityRecommender`) ranks items
by their number of train interaction rows, ties to the smaller raw item id. Serving uses the
same ranking for the cold-start list and ``exclude_top_popular``, so the list served to a new
user is the one the run evaluated: it comes from the run's fitted popularity candidate, or from
counts a bundle carries (:attr:`reclab.bundle.ModelBundle.item_popularity`, made with
:func:`interaction_counts`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from reclab.bundle import ModelBundle
from reclab.id_maps import IdMap

logger = logging.getLogger(__name__)


def interaction_counts(item_idx: np.ndarray, n_items: int) -> np.ndarray:
    """Train interaction rows per encoded item (the popularity baseline's counts).

    Args:
        item_idx: Encoded item of each train interaction.
        n_items: Size of the train catalogue.

    Returns:
        float64 array (n_items,).
    """
    return np.bincount(np.asarray(item_idx, dtype=np.int64), minlength=n_items).astype(np.float64)


def raw_id_rank(item_map: IdMap) -> np.ndarray:
    """Each encoded item's position when the raw ids are sorted: the tie-break of popularity."""
    rank = np.empty(len(item_map), dtype=np.int64)
    rank[np.argsort(item_map.raw_ids, kind="stable")] = np.arange(len(item_map))
    return rank


@dataclass(frozen=True)
class PopularityRanking:
    """Items ranked by train interactions, ties to the smaller raw item id.

    Attributes:
        counts: float64 (n_items,): train interactions per encoded item (the served score).
        tiebreak: int64 (n_items,): rank of each item's raw id (smaller first).
        order: int64 (n_items,): encoded items, most popular first.
    """

    counts: np.ndarray
    tiebreak: np.ndarray
    order: np.ndarray

    @classmethod
    def from_counts(cls, counts: np.ndarray, item_map: IdMap) -> PopularityRanking:
        """The ranking of per-item counts over ``item_map``'s catalogue."""
        counts = np.array(counts, dtype=np.float64)  # a copy: frozen below, not the model's
        if len(counts) != len(item_map):
            raise ValueError(f"{len(counts)} popularity counts for {len(item_map)} items")
        tiebreak = raw_id_rank(item_map)
        order = np.lexsort((tiebreak, -counts))
        counts.setflags(write=False)  # shared by every request thread
        return cls(counts=counts, tiebreak=tiebreak, order=order)


def run_popularity(
    bundles: Iterable[ModelBundle], item_map: IdMap, run: str | None = None
) -> PopularityRanking | None:
    """The run's popularity ranking: the one its popularity baseline was evaluated with.

    The run's ``popularity`` candidate gives the counts it was fitted with; else a bundle
    carrying ``item_popularity`` (the same counts, for runs without that candidate). None when
    neither exists (bundles built before ``item_popularity``, from a run without the family).

    Args:
        bundles: The run's bundles, winner first.
        item_map: The served catalogue (every bundle here shares it).
        run: The run's pathspec, for the warning when it has no ranking.

    Returns:
        The ranking, or None.
    """
    bundles = list(bundles)
    for bundle in bundles:
        if bundle.family == "popularity":
            # read for its counts only, not kept: its train matrix is as large as the data
            counts = bundle.model_class.from_bytes(bundle.model_payload).item_counts
            return PopularityRanking.from_counts(counts, item_map)
    for bundle in bundles:
        if bundle.item_popularity is not None:
            return PopularityRanking.from_counts(bundle.item_popularity, item_map)
    logger.warning(
        "%s has no popularity ranking (no popularity candidate, bundles without "
        "item_popularity): cold-start lists and exclude_top_popular are refused",
        run or "this run",
    )
    return None
