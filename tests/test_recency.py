"""Recency popularity: the contract, the decayed counts, the tie-break, the no-timestamp case."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from reclab.models.base import TrainData
from reclab.models.recency import RecencyPopularityRecommender, decayed_counts
from tests.contract import RecommenderContract

DAY = 86_400.0
T = 900_000_000.0  # the last train timestamp


class TestRecencyPopularityContract(RecommenderContract):
    learns_planted_pattern = False

    def make_model(self):
        return RecencyPopularityRecommender(half_life_days=7)


def _train(items: list[int], days_before_end: list[float] | None, item_ids: list) -> TrainData:
    return TrainData(
        user_idx=np.zeros(len(items), dtype=np.int64),
        item_idx=np.asarray(items, dtype=np.int64),
        weight=np.ones(len(items)),
        ts=None if days_before_end is None else T - np.asarray(days_before_end) * DAY,
        n_users=2,
        n_items=len(item_ids),
        item_ids=np.asarray(item_ids),
    )


def test_one_half_life_old_counts_half() -> None:
    # item0: one interaction at T -> 1; item1: 30 and 60 days old -> 0.5 + 0.25; item2: none
    train = _train([0, 1, 1], [0, 30, 60], [10, 11, 12])
    np.testing.assert_allclose(decayed_counts(train, 30), [1.0, 0.75, 0.0])
    np.testing.assert_allclose(decayed_counts(train, 60), [1.0, 0.5**0.5 + 0.5, 0.0])
    model = RecencyPopularityRecommender(half_life_days=30).fit(train)
    np.testing.assert_allclose(model.item_counts, [1.0, 0.75, 0.0])
    assert model.recommend(np.array([1]), 3)[0].tolist() == [[0, 1, 2]]


def test_recent_items_overtake_old_popular_ones_as_the_half_life_shrinks() -> None:
    # item0: 3 interactions 100 days old; item1: 2 interactions today
    train = _train([0, 0, 0, 1, 1], [100, 100, 100, 0, 0], [1, 2])
    long = RecencyPopularityRecommender(half_life_days=10_000).fit(train)
    short = RecencyPopularityRecommender(half_life_days=7).fit(train)
    assert long.recommend(np.array([1]), 2)[0].tolist() == [[0, 1]]
    assert short.recommend(np.array([1]), 2)[0].tolist() == [[1, 0]]


def test_ties_go_to_the_smaller_raw_item_id() -> None:
    # items 0 (raw 50) and 2 (raw 3) both decay to 0.5; item 1 (raw 7) is newest
    train = _train([0, 1, 2], [7, 0, 7], [50, 7, 3])
    model = RecencyPopularityRecommender(half_life_days=7).fit(train)
    items, scores = model.recommend(np.array([1]), 3)
    assert items.tolist() == [[1, 2, 0]]
    assert np.all(np.diff(scores[0]) < 0)


def test_without_timestamps_falls_back_to_plain_counts(caplog) -> None:
    train = _train([0, 0, 1, 2], None, [50, 7, 3, 9])
    with caplog.at_level(logging.WARNING, logger="reclab.models.recency"):
        model = RecencyPopularityRecommender(half_life_days=7).fit(train)
    assert "no timestamps" in caplog.text
    np.testing.assert_allclose(model.item_counts, [2, 1, 1, 0])
    assert model.recommend(np.array([1]), 4)[0].tolist() == [[0, 2, 1, 3]]


def test_partly_missing_timestamps_raise() -> None:
    train = _train([0, 1], [0, 1], [1, 2])
    train.ts[1] = np.nan
    with pytest.raises(ValueError, match="missing"):
        RecencyPopularityRecommender().fit(train)


@pytest.mark.parametrize("half_life_days", [0, -3.0])
def test_half_life_must_be_positive(half_life_days) -> None:
    with pytest.raises(ValueError):
        RecencyPopularityRecommender(half_life_days=half_life_days)
