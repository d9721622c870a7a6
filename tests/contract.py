"""The promises every model family makes, as one test mixin.

A family's test is a one-line subclass::

    class TestPopularity(RecommenderContract):
        def make_model(self):
            return PopularityRecommender()

Families that learn user-specific taste leave ``learns_planted_pattern = True``: they must
recommend a user's held-out in-cluster items ahead of the other cluster's items.
"""

from __future__ import annotations

import numpy as np
import pytest

from reclab.models.base import Recommender, TrainData, ValidationWindow, top_k


def planted_clusters(n_users: int = 60, n_items: int = 40, seed: int = 0) -> TrainData:
    """Two taste clusters: users of cluster c interact with most items of cluster c only.

    Item popularity is balanced across clusters, so only a model that learns taste can tell
    a user's missing in-cluster items from the other cluster's items.
    """
    rng = np.random.default_rng(seed)
    users, items = [], []
    half_items = n_items // 2
    for user in range(n_users):
        cluster = user % 2
        own = np.arange(cluster * half_items, (cluster + 1) * half_items)
        chosen = rng.choice(own, size=int(0.6 * half_items), replace=False)
        users.extend([user] * len(chosen))
        items.extend(chosen.tolist())
    user_idx = np.asarray(users, dtype=np.int64)
    item_idx = np.asarray(items, dtype=np.int64)
    return TrainData(
        user_idx=user_idx,
        item_idx=item_idx,
        weight=np.ones(len(user_idx)),
        ts=np.arange(len(user_idx), dtype=np.float64) * 3600.0,
        n_users=n_users,
        n_items=n_items,
        item_ids=np.arange(1000, 1000 + n_items),
    )


class RecommenderContract:
    """Shared tests; subclasses implement :meth:`make_model`."""

    learns_planted_pattern = True

    def make_model(self) -> Recommender:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    def train(self) -> TrainData:
        return planted_clusters()

    @pytest.fixture(scope="class")
    def validation(self) -> ValidationWindow | None:
        """The window deep families early-stop on; none by default."""
        return None

    @pytest.fixture(scope="class")
    def fitted(self, train: TrainData, validation: ValidationWindow | None) -> Recommender:
        return self.make_model().fit(train, validation)

    def test_shapes_and_types(self, fitted: Recommender, train: TrainData) -> None:
        users = np.arange(train.n_users)
        items, scores = fitted.recommend(users, 5)
        assert items.shape == (train.n_users, 5) and scores.shape == (train.n_users, 5)
        assert np.issubdtype(items.dtype, np.integer)
        assert ((items >= 0) & (items < train.n_items)).all()

    def test_seen_items_excluded(self, fitted: Recommender, train: TrainData) -> None:
        users = np.arange(train.n_users)
        items, _ = fitted.recommend(users, 10, exclude_seen=True)
        seen = set(zip(train.user_idx.tolist(), train.item_idx.tolist(), strict=True))
        assert not any((u, i) in seen for u in users for i in items[u] if i >= 0)

    def test_no_duplicates_and_scores_non_increasing(self, fitted: Recommender) -> None:
        items, scores = fitted.recommend(np.arange(10), 8)
        for row_items, row_scores in zip(items, scores, strict=True):
            real = row_items[row_items >= 0]
            assert len(set(real.tolist())) == len(real)
            assert np.all(np.diff(row_scores) <= 1e-6)

    def test_k_larger_than_candidates_is_padded(self, fitted: Recommender, train) -> None:
        k = train.n_items + 5
        items, scores = fitted.recommend(np.array([0]), k)
        seen_count = len(set(train.item_idx[train.user_idx == 0].tolist()))
        assert (items[0] >= 0).sum() == train.n_items - seen_count
        assert np.isneginf(scores[0][items[0] < 0]).all()

    def test_batching_does_not_change_results(self, fitted: Recommender, train) -> None:
        users = np.arange(train.n_users)
        all_at_once = fitted.recommend(users, 5)[0]
        one_by_one = np.vstack([fitted.recommend(users[i : i + 1], 5)[0] for i in users])
        np.testing.assert_array_equal(all_at_once, one_by_one)

    def test_save_load_round_trip(self, fitted: Recommender, train: TrainData) -> None:
        restored = type(fitted).from_bytes(fitted.to_bytes())
        users = np.arange(train.n_users)
        np.testing.assert_array_equal(
            restored.recommend(users, 5)[0], fitted.recommend(users, 5)[0]
        )
        np.testing.assert_allclose(restored.recommend(users, 5)[1], fitted.recommend(users, 5)[1])

    def test_unfitted_or_bad_input_raises(self, fitted: Recommender, train: TrainData) -> None:
        with pytest.raises(ValueError):
            self.make_model().recommend(np.array([0]), 5)
        with pytest.raises(ValueError):
            fitted.recommend(np.array([train.n_users]), 5)
        with pytest.raises(ValueError):
            fitted.recommend(np.array([0]), 0)

    def test_planted_pattern_recovered(self, fitted: Recommender, train: TrainData) -> None:
        if not self.learns_planted_pattern:
            pytest.skip(f"{type(fitted).__name__} does not model user taste")
        users = np.arange(train.n_users)
        items, _ = fitted.recommend(users, 5)
        half = train.n_items // 2
        in_cluster = (items // half) == (users % 2)[:, None]
        assert in_cluster.mean() > 0.9


def assert_recommend_equals_dense_top_k(
    model: Recommender, users: np.ndarray, k: int, exclude_seen: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """A family's own ``recommend`` (a compiled kernel) gives exactly the lists and scores of
    the top k of its dense ``scores``; returns the lists."""
    items, scores = model.recommend(users, k, exclude_seen=exclude_seen)
    want_items, want_scores = top_k(model.scores(users, exclude_seen=exclude_seen), k)
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_array_equal(scores, want_scores)
    return items, scores


def most_similar(model: Recommender, item_idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k items most similar to each item, by the family's ``item_similarity_scores`` (the
    one item-similarity path; serving ranks the same row)."""
    rows = np.stack([model.item_similarity_scores(int(i)) for i in item_idx])
    return top_k(rows, k)
