"""EASE: the contract, the closed form against plain NumPy, the catalogue cap, serving methods."""

from __future__ import annotations

import numpy as np
import pytest

from reclab.models.base import TrainData
from reclab.models.ease import EASERecommender, ease_weights, gram_matrix
from tests.contract import RecommenderContract, planted_clusters


class TestEASEContract(RecommenderContract):
    def make_model(self):
        return EASERecommender(l2=10.0)


def plain_numpy_ease(dense: np.ndarray, l2: float) -> np.ndarray:
    """Steck's closed form as printed in the paper, in float64."""
    gram = dense.T @ dense + l2 * np.eye(dense.shape[1])
    inverse = np.linalg.inv(gram)
    weights = inverse / -np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    return weights


def test_weights_equal_the_plain_closed_form() -> None:
    train = planted_clusters(n_users=80, n_items=50, seed=3)
    dense = train.matrix.toarray().astype(np.float64)
    for l2 in (1.0, 10.0, 500.0):
        ours = ease_weights(train.matrix, l2)
        np.testing.assert_allclose(ours, plain_numpy_ease(dense, l2), atol=2e-5)
        assert ours.dtype == np.float32 and ours.flags.c_contiguous  # scoring reads rows
        assert np.all(np.diag(ours) == 0)


def test_gram_matrix_by_blocks_equals_the_product() -> None:
    train = planted_clusters(n_users=70, n_items=45, seed=1)
    expected = (train.matrix.T @ train.matrix).toarray()
    np.testing.assert_allclose(gram_matrix(train.matrix, block=7), expected)


def test_scores_are_history_times_weights() -> None:
    train = planted_clusters(seed=2)
    model = EASERecommender(l2=5.0).fit(train)
    users = np.arange(6)
    expected = train.matrix.toarray()[users] @ model.weights
    np.testing.assert_allclose(model.scores(users, exclude_seen=False), expected, rtol=1e-5)


def test_weighted_fit_uses_the_weights() -> None:
    train = planted_clusters(seed=4)
    weighted = TrainData(
        user_idx=train.user_idx,
        item_idx=train.item_idx,
        weight=np.arange(len(train.user_idx)) % 5 + 1.0,
        ts=train.ts,
        n_users=train.n_users,
        n_items=train.n_items,
        item_ids=train.item_ids,
    )
    binary = EASERecommender(l2=5.0).fit(weighted)
    counts = EASERecommender(l2=5.0, use_weights=True).fit(weighted)
    np.testing.assert_allclose(binary.weights, EASERecommender(l2=5.0).fit(train).weights)
    assert not np.allclose(binary.weights, counts.weights)


def test_cap_keeps_the_items_with_most_users_and_says_so() -> None:
    train = planted_clusters(n_users=60, n_items=40, seed=5)
    users_per_item = np.diff(train.matrix.tocsc().indptr)
    model = EASERecommender(l2=10.0, max_items=25).fit(train)
    expected = np.sort(np.argsort(-users_per_item, kind="stable")[:25])
    np.testing.assert_array_equal(model.kept_items, expected)
    assert "25 with the most users of 40" in model.train_sample
    items, scores = model.recommend(np.arange(train.n_users), k=40)
    listed = set(items[items >= 0].tolist())
    assert listed <= set(expected.tolist())
    # Items outside the cap are padding (-1 / -inf), never listed.
    seen = np.diff(train.matrix[:, expected].tocsr().indptr)
    np.testing.assert_array_equal((items >= 0).sum(axis=1), 25 - seen)
    assert np.all(np.isneginf(scores[items < 0]))
    assert EASERecommender(l2=10.0).fit(train).train_sample == ""


def test_fold_in_of_a_known_history_equals_its_scores() -> None:
    train = planted_clusters(seed=6)
    model = EASERecommender(l2=10.0, max_items=30).fit(train)
    history = train.matrix[3].indices
    folded = model.fold_in_scores(history)
    known = model.scores(np.array([3]), exclude_seen=False)[0]
    np.testing.assert_allclose(folded, known, rtol=1e-5)


def test_item_similarity_and_explanations() -> None:
    train = planted_clusters(seed=7)
    model = EASERecommender(l2=10.0).fit(train)
    row = model.item_similarity_scores(4)
    assert row[4] == -np.inf
    np.testing.assert_allclose(np.delete(row, 4), np.delete(model.weights[4], 4))

    history = train.matrix[0].indices
    item = int(model.recommend(np.array([0]), k=1)[0][0, 0])
    (reasons,) = model.explain(history, np.ones(len(history)), np.array([item]), k=3)
    contributions = model.weights[history, item]
    expected = sorted(((c, -h) for h, c in zip(history, contributions, strict=True) if c > 0))
    assert [h for h, _ in reasons] == [-h for _, h in expected[::-1][:3]]
    assert all(c > 0 for _, c in reasons)


def test_bad_parameters_and_memory_are_refused() -> None:
    for bad in ({"l2": 0}, {"l2": float("nan")}, {"max_items": 1}, {"max_items": 2.5}):
        with pytest.raises(ValueError):
            EASERecommender(**bad)
    from reclab.models.ease import _check_memory

    with pytest.raises(ValueError, match="lower max_items"):
        _check_memory(10_000_000)  # 400 TB
