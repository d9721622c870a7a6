"""Item KNN: the contract, the cosine neighbours, the score formula, shrinkage, the compiled
scoring (item similarity: ``tests/test_item_similarity.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from reclab.models.base import TrainData
from reclab.models.knn import ItemKNNRecommender
from tests.contract import (
    RecommenderContract,
    assert_recommend_equals_dense_top_k,
    most_similar,
    planted_clusters,
)

SQRT3_2 = np.sqrt(3) / 2  # cos([1,1,1,1], [1,1,1,0]) = 3 / (2 * sqrt(3))
SQRT2_2 = np.sqrt(2) / 2  # cos([1,1,1,1], [0,0,1,1]) = 2 / (2 * sqrt(2))
INV_SQRT6 = 1 / np.sqrt(6)  # cos([1,1,1,0], [0,0,1,1]) = 1 / (sqrt(3) * sqrt(2))


class TestItemKNNContract(RecommenderContract):
    def make_model(self):
        return ItemKNNRecommender(n_neighbors=10)


class TestItemKNNShrinkageContract(RecommenderContract):
    def make_model(self):
        return ItemKNNRecommender(n_neighbors=10, shrinkage=5.0, item_batch_size=7)


def _train(pairs: list[tuple[int, int]], n_users: int, n_items: int, weights=None) -> TrainData:
    users, items = (np.asarray(column, dtype=np.int64) for column in zip(*pairs, strict=True))
    return TrainData(
        user_idx=users,
        item_idx=items,
        weight=np.ones(len(pairs)) if weights is None else np.asarray(weights, dtype=np.float64),
        ts=None,
        n_users=n_users,
        n_items=n_items,
        item_ids=np.arange(100, 100 + n_items),
    )


@pytest.fixture
def hub() -> TrainData:
    """Item vectors over 4 users: item0 [1,1,1,1] (a hub), item1 [1,1,1,0], item2 [0,0,1,1].

    Nearest neighbours (n_neighbors=1): item0 -> item1, item1 -> item0, item2 -> item0, so the
    neighbour relation is not symmetric. Users who share both items: 0&1: 3, 0&2: 2, 1&2: 1.
    """
    pairs = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (3, 0), (3, 2)]
    return _train(pairs, n_users=4, n_items=3)


def test_neighbours_and_similarities_match_hand_computed_cosines(hub: TrainData) -> None:
    model = ItemKNNRecommender(n_neighbors=1).fit(hub)
    expected = [[0, SQRT3_2, 0], [SQRT3_2, 0, 0], [SQRT2_2, 0, 0]]
    np.testing.assert_allclose(model.item_similarity.toarray(), expected, rtol=1e-6)

    model = ItemKNNRecommender(n_neighbors=2).fit(hub)
    expected = [[0, SQRT3_2, SQRT2_2], [SQRT3_2, 0, INV_SQRT6], [SQRT2_2, INV_SQRT6, 0]]
    np.testing.assert_allclose(model.item_similarity.toarray(), expected, rtol=1e-6)


def test_score_sums_each_train_items_own_neighbours(hub: TrainData) -> None:
    # User 3 has items 0 and 2: score = S[0, :] + S[2, :] = [0, .866, 0] + [.707, 0, 0].
    # (The transposed direction, S[:, 0] + S[:, 2], would give [0, .866, .707] instead.)
    model = ItemKNNRecommender(n_neighbors=1).fit(hub)
    scores = model.scores(np.array([3]), exclude_seen=False)
    np.testing.assert_allclose(scores, [[SQRT2_2, SQRT3_2, 0.0]], rtol=1e-6)
    items, values = model.recommend(np.array([3]), 2, exclude_seen=False)
    assert items.tolist() == [[1, 0]]
    np.testing.assert_allclose(values, [[SQRT3_2, SQRT2_2]], rtol=1e-6)
    items, _ = model.recommend(np.array([3]), 2)
    assert items.tolist() == [[1, -1]]


def test_score_is_binary_in_the_user_even_with_weights() -> None:
    # Weighted item vectors: item0 [3, 1], item1 [1, 3] -> cos = 6 / 10; user 0's rating of
    # item 0 is 3 but its vote is still 1 * similarity.
    train = _train([(0, 0), (1, 0), (0, 1), (1, 1)], n_users=2, n_items=2, weights=[3, 1, 1, 3])
    model = ItemKNNRecommender(n_neighbors=1, use_weights=True).fit(train)
    np.testing.assert_allclose(model.item_similarity.toarray(), [[0, 0.6], [0.6, 0]], rtol=1e-6)
    binary = ItemKNNRecommender(n_neighbors=1).fit(train)
    np.testing.assert_allclose(binary.item_similarity.toarray(), [[0, 1], [1, 0]], rtol=1e-6)
    np.testing.assert_allclose(
        model.scores(np.array([0]), exclude_seen=False), [[0.6, 0.6]], rtol=1e-6
    )


def test_shrinkage_scales_by_co_count(hub: TrainData) -> None:
    model = ItemKNNRecommender(n_neighbors=1, shrinkage=1.0).fit(hub)
    # co(0,1) = 3 -> x 3/4; co(2,0) = 2 -> x 2/3
    expected = [[0, SQRT3_2 * 3 / 4, 0], [SQRT3_2 * 3 / 4, 0, 0], [SQRT2_2 * 2 / 3, 0, 0]]
    np.testing.assert_allclose(model.item_similarity.toarray(), expected, rtol=1e-6)


def test_matches_full_cosine_matrix_and_batching_does_not_matter() -> None:
    rng = np.random.default_rng(3)
    dense = (rng.random((30, 12)) < 0.3) * rng.integers(1, 6, size=(30, 12))
    users, items = np.nonzero(dense)
    train = _train(list(zip(users, items, strict=True)), 30, 12, weights=dense[users, items])
    vectors = dense.T.astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = (vectors @ vectors.T) / (norms * norms.T)
    np.fill_diagonal(cosine, 0.0)
    for batch in (1, 5, 1024):
        model = ItemKNNRecommender(n_neighbors=11, use_weights=True, item_batch_size=batch)
        np.testing.assert_allclose(model.fit(train).item_similarity.toarray(), cosine, atol=1e-6)


def test_identical_items_are_neighbours_but_never_their_own() -> None:
    train = _train([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)], n_users=2, n_items=3)
    model = ItemKNNRecommender(n_neighbors=1).fit(train)
    similarity = model.item_similarity.toarray()
    assert np.diag(similarity).tolist() == [0, 0, 0]
    assert similarity[0, 1] == pytest.approx(1.0) and similarity[1, 0] == pytest.approx(1.0)


def test_items_without_interactions_and_tiny_catalogues() -> None:
    train = _train([(0, 0), (0, 1), (1, 1)], n_users=2, n_items=4)  # items 2, 3 unseen
    model = ItemKNNRecommender(n_neighbors=50).fit(train)
    similarity = model.item_similarity.toarray()
    assert not similarity[2:].any() and not similarity[:, 2:].any()
    assert model.recommend(np.array([1]), 2)[0].shape == (1, 2)
    single = ItemKNNRecommender().fit(_train([(0, 0)], n_users=1, n_items=1))
    assert single.item_similarity.nnz == 0
    assert single.recommend(np.array([0]), 1, exclude_seen=False)[0].tolist() == [[0]]


def test_item_similarity_excludes_the_item_and_pads(hub: TrainData) -> None:
    model = ItemKNNRecommender(n_neighbors=2).fit(hub)
    items, scores = most_similar(model, np.array([0, 2]), 3)
    assert items.tolist() == [[1, 2, -1], [0, 1, -1]]
    np.testing.assert_allclose(scores[:, :2], [[SQRT3_2, SQRT2_2], [SQRT2_2, INV_SQRT6]], rtol=1e-6)
    assert np.isneginf(scores[:, 2]).all()
    with pytest.raises(ValueError, match="item_idx"):
        model.item_similarity_scores(3)
    with pytest.raises(ValueError, match="not fitted"):
        ItemKNNRecommender().item_similarity_scores(0)


def test_item_similarity_recovers_planted_clusters() -> None:
    from tests.contract import planted_clusters

    train = planted_clusters()
    model = ItemKNNRecommender(n_neighbors=10).fit(train)
    items, _ = most_similar(model, np.arange(train.n_items), 5)
    half = train.n_items // 2
    assert ((items // half) == (np.arange(train.n_items) // half)[:, None]).all()


@pytest.mark.parametrize(
    "params", [{"n_neighbors": 0}, {"shrinkage": -1.0}, {"item_batch_size": 0}]
)
def test_bad_parameters_raise(params) -> None:
    with pytest.raises(ValueError):
        ItemKNNRecommender(**params)


@pytest.mark.parametrize("exclude_seen", [True, False])
@pytest.mark.parametrize("dense", [True, False])
def test_compiled_recommend_equals_the_top_k_of_the_dense_scores(exclude_seen, dense):
    train = planted_clusters(n_users=90, n_items=70, seed=4)
    model = ItemKNNRecommender(n_neighbors=10, use_weights=True)
    if not dense:  # a small catalogue is scored on a dense copy; check the sparse kernel too
        model.dense_scoring_max_small_bytes = 0
    model.fit(train)
    assert isinstance(model._scoring_similarity(), np.ndarray) == dense
    assert_recommend_equals_dense_top_k(model, np.arange(train.n_users), 30, exclude_seen)


def test_weightings_damp_heavy_counts_and_bad_names_are_refused() -> None:
    from implicit.nearest_neighbours import bm25_weight

    from reclab.models.knn import weighted_item_vectors

    counts = sp.csr_matrix(np.array([[1.0, 500.0, 0.0], [3.0, 0.0, 2.0]]))
    assert weighted_item_vectors(counts, "raw") is counts
    np.testing.assert_allclose(
        weighted_item_vectors(counts, "log").toarray(), np.log1p(counts.toarray())
    )
    expected = bm25_weight(counts.astype(np.float64), K1=100, B=0.8).toarray()
    np.testing.assert_allclose(weighted_item_vectors(counts, "bm25").toarray(), expected)
    # one user's 500 plays no longer decide item 0's neighbours alone
    train = _train([(0, 0), (0, 1), (1, 0), (1, 2), (2, 1), (2, 2)], 3, 3, [1, 500, 3, 2, 1, 1])
    raw = ItemKNNRecommender(n_neighbors=2, use_weights=True).fit(train)
    logged = ItemKNNRecommender(n_neighbors=2, use_weights=True, weighting="log").fit(train)
    assert not np.allclose(raw.item_similarity.toarray(), logged.item_similarity.toarray())
    with pytest.raises(ValueError, match="weighting must be one of raw, log, bm25"):
        ItemKNNRecommender(weighting="tfidf")
