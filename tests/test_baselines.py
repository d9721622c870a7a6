"""Baseline families: the contract, and what each baseline must rank."""

from __future__ import annotations

import numpy as np
import pytest

from reclab.models.base import TrainData, top_k
from reclab.models.baselines import PopularityRecommender, RandomRecommender
from tests.contract import RecommenderContract


class TestPopularityContract(RecommenderContract):
    learns_planted_pattern = False

    def make_model(self):
        return PopularityRecommender()


class TestRandomContract(RecommenderContract):
    learns_planted_pattern = False

    def make_model(self):
        return RandomRecommender(seed=7)


def _train(items: list[int], item_ids: list, n_users: int = 3) -> TrainData:
    return TrainData(
        user_idx=np.zeros(len(items), dtype=np.int64),
        item_idx=np.asarray(items, dtype=np.int64),
        weight=np.ones(len(items)),
        ts=None,
        n_users=n_users,
        n_items=len(item_ids),
        item_ids=np.asarray(item_ids),
    )


def test_popularity_ranks_by_count_and_breaks_ties_by_smaller_raw_id() -> None:
    # counts: item0 (raw 50) 2, item1 (raw 7) 1, item2 (raw 3) 1, item3 (raw 9) 0
    model = PopularityRecommender().fit(_train([0, 0, 1, 2], [50, 7, 3, 9]))
    items, _ = model.recommend(np.array([1]), 4)
    assert items[0].tolist() == [0, 2, 1, 3]


def test_popularity_excludes_seen_items() -> None:
    model = PopularityRecommender().fit(_train([0, 0, 1, 2], [50, 7, 3, 9]))
    items, _ = model.recommend(np.array([0]), 4)  # user 0 has seen items 0, 1, 2
    assert items[0].tolist() == [3, -1, -1, -1]


def test_random_is_seeded_and_differs_between_seeds() -> None:
    train = _train([0], list(range(100)), n_users=5)
    a = RandomRecommender(seed=1).fit(train).recommend(np.arange(5), 10)[0]
    b = RandomRecommender(seed=1).fit(train).recommend(np.arange(5), 10)[0]
    c = RandomRecommender(seed=2).fit(train).recommend(np.arange(5), 10)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_top_k_breaks_ties_by_smaller_index_even_across_the_cut() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 3.0, 0.0, 3.0]], dtype=np.float32)
    items, values = top_k(scores, 2)
    assert items.tolist() == [[1, 2]]
    assert values.tolist() == [[3.0, 3.0]]
    items, _ = top_k(np.array([[-np.inf, 2.0, np.nan]]), 3)
    assert items.tolist() == [[1, -1, -1]]


def test_top_k_on_large_tied_matrices_equals_a_full_sort() -> None:
    """Above the size where torch picks the candidates, ties still go to the smaller index."""
    from reclab.models.base import _TORCH_TOP_K_MIN_SIZE

    rng = np.random.default_rng(3)
    n_users, n_items = 200, _TORCH_TOP_K_MIN_SIZE // 200 + 1
    for dtype in (np.float32, np.float64):
        scores = rng.integers(0, 40, size=(n_users, n_items)).astype(dtype)  # many ties
        scores[:, :5] = -np.inf
        items, values = top_k(scores, 10)
        index_key = np.broadcast_to(np.arange(n_items), scores.shape)
        expected = np.lexsort((index_key, -scores), axis=1)[:, :10]
        np.testing.assert_array_equal(items, expected)
        np.testing.assert_array_equal(values, np.take_along_axis(scores, expected, axis=1))


def _full_sort_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The definition: NaN is -inf, score descending then index ascending, -inf is padding."""
    clean = np.where(np.isnan(scores), -np.inf, scores)
    index_key = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    order = np.lexsort((index_key, -clean), axis=1)[:, :k]
    values = np.take_along_axis(clean, order, axis=1).astype(np.float32)
    items = np.where(np.isfinite(values), order, -1)
    return items, np.where(np.isfinite(values), values, -np.inf)


@pytest.mark.parametrize("n_items", [30, 5_001])  # NumPy path, then torch's (>= 1M scores)
def test_top_k_with_ties_nan_and_inf_equals_the_full_sort(n_items) -> None:
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 6, size=(200, n_items)).astype(np.float32)  # ties everywhere
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    scores[rng.random(scores.shape) < 0.05] = np.nan
    scores[0, :] = -np.inf  # nothing to recommend
    scores[1, :] = np.nan
    scores[2, 3:] = -np.inf  # fewer than k allowed
    for k in (1, 4, 10, 29):
        items, values = top_k(scores, k)
        expected_items, expected_values = _full_sort_top_k(scores, k)
        np.testing.assert_array_equal(items, expected_items)
        np.testing.assert_array_equal(values, expected_values)


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_global_ranking_walk_equals_the_top_k_of_the_masked_scores(exclude_seen) -> None:
    """Popularity ranks once and walks the ranking per user: same lists as masking each row."""
    from tests.contract import assert_recommend_equals_dense_top_k, planted_clusters

    train = planted_clusters(n_users=70, n_items=50, seed=2)
    model = PopularityRecommender().fit(train)
    model.item_scores[[3, 8]] = model.item_scores[5]  # ties go to the smaller index
    model.item_scores[9] = -np.inf  # never listed
    users = np.arange(train.n_users)
    items, _ = assert_recommend_equals_dense_top_k(model, users, 45, exclude_seen)
    assert (items == -1).any() == exclude_seen  # 30 train items each: rows are padded
