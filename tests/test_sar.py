"""SAR: the contract, and similarity / affinity / score values computed by hand.

The tiny fixture (4 users, 5 items; all weights 1 unless said otherwise)::

    user 0: items 0, 1, 2
    user 1: items 0, 1
    user 2: items 1, 3
    user 3: items 0, 4

Binary co-occurrence C = B^T B (diagonal = number of users per item)::

          0  1  2  3  4
      0 [ 3  2  1  0  1 ]
      1 [ 2  3  1  1  0 ]
      2 [ 1  1  1  0  0 ]
      3 [ 0  1  0  1  0 ]
      4 [ 1  0  0  0  1 ]
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reclab.models.base import TrainData
from reclab.models.sar import SARRecommender
from tests.contract import RecommenderContract, assert_recommend_equals_dense_top_k, most_similar

DAY = 24 * 60 * 60.0


class TestSARJaccardContract(RecommenderContract):
    def make_model(self):
        return SARRecommender(similarity="jaccard", time_decay_half_life_days=30)


class TestSARLiftContract(RecommenderContract):
    def make_model(self):
        return SARRecommender(similarity="lift", time_decay_half_life_days=0)


class TestSARCountsContract(RecommenderContract):
    def make_model(self):
        return SARRecommender(similarity="counts", time_decay_half_life_days=30)


USERS = [0, 0, 0, 1, 1, 2, 2, 3, 3]
ITEMS = [0, 1, 2, 0, 1, 1, 3, 0, 4]
COUNTS = np.array(
    [
        [3, 2, 1, 0, 1],
        [2, 3, 1, 1, 0],
        [1, 1, 1, 0, 0],
        [0, 1, 0, 1, 0],
        [1, 0, 0, 0, 1],
    ],
    dtype=np.float64,
)


def _tiny(weight=None, ts=None, users=USERS, items=ITEMS) -> TrainData:
    n = len(users)
    return TrainData(
        user_idx=np.asarray(users, dtype=np.int64),
        item_idx=np.asarray(items, dtype=np.int64),
        weight=np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64),
        ts=None if ts is None else np.asarray(ts, dtype=np.float64),
        n_users=4,
        n_items=5,
        item_ids=np.arange(100, 105),
    )


def _similarity(similarity: str, **params) -> np.ndarray:
    params = {"time_decay_half_life_days": 0, **params}
    model = SARRecommender(similarity=similarity, **params).fit(_tiny())
    assert model.item_similarity.format == "csr"
    assert model.item_similarity.dtype == np.float32
    return model.item_similarity.toarray()


def test_cooccurrence_counts() -> None:
    np.testing.assert_array_equal(_similarity("counts"), COUNTS)
    # Microsoft Recommenders' name for the same measure
    np.testing.assert_array_equal(_similarity("cooccurrence"), COUNTS)


def test_jaccard_by_hand() -> None:
    sim = _similarity("jaccard")
    # J_ij = C_ij / (C_ii + C_jj - C_ij)
    assert sim[0, 1] == pytest.approx(2 / (3 + 3 - 2))  # 0.5
    assert sim[0, 2] == pytest.approx(1 / (3 + 1 - 1))  # 1/3
    assert sim[1, 3] == pytest.approx(1 / (3 + 1 - 1))  # 1/3
    assert sim[0, 4] == pytest.approx(1 / (3 + 1 - 1))  # 1/3
    assert sim[0, 0] == pytest.approx(1.0)
    assert sim[0, 3] == 0.0  # never co-occur
    np.testing.assert_allclose(sim, sim.T)


def test_lift_cosine_inclusion_and_information_by_hand() -> None:
    lift = _similarity("lift")
    assert lift[0, 1] == pytest.approx(2 / (3 * 3))  # 0.2222
    assert lift[1, 3] == pytest.approx(1 / (3 * 1))  # 0.3333
    assert lift[2, 2] == pytest.approx(1.0)
    cosine = _similarity("cosine")
    assert cosine[0, 1] == pytest.approx(2 / math.sqrt(3 * 3))  # 0.6667
    assert cosine[0, 2] == pytest.approx(1 / math.sqrt(3 * 1))  # 0.5774
    inclusion = _similarity("inclusion_index")
    assert inclusion[0, 1] == pytest.approx(2 / 3)
    assert inclusion[0, 2] == pytest.approx(1.0)  # 1 / min(3, 1)
    mi = _similarity("mutual_information")
    # log2(n_items * lift): n_items = 5
    assert mi[0, 1] == pytest.approx(math.log2(5 * 2 / 9))  # 0.1520
    assert mi[1, 3] == pytest.approx(math.log2(5 / 3))  # 0.7370
    assert mi[0, 3] == 0.0  # absent pair; scoring treats it as -inf (next test)
    lmi = _similarity("lexicographers_mutual_information")
    assert lmi[0, 1] == pytest.approx(2 * math.log2(5 * 2 / 9))  # 0.3040


def test_mutual_information_keeps_the_librarys_minus_infinity_for_absent_pairs() -> None:
    # The library's dense MI is log2(0) = -inf where C_kj = 0; a user's score for j is -inf
    # unless j co-occurs with every item the user has.
    model = SARRecommender(similarity="mutual_information", time_decay_half_life_days=0)
    model.fit(_tiny())
    # user 1 has items 0, 1; only items 0, 1, 2 co-occur with both. MI_02 = MI_12 = log2(5/3)
    scores = model.scores(np.array([1, 2]), exclude_seen=False)
    assert scores[0, 2] == pytest.approx(2 * math.log2(5 / 3))
    assert np.isneginf(scores[0, [3, 4]]).all()
    # user 2 has items 1, 3: only items 1 and 3 co-occur with both, and both are seen
    items, _ = model.recommend(np.array([1, 2]), 2)
    assert items.tolist() == [[2, -1], [-1, -1]]


def test_support_threshold_zeroes_rare_cooccurrences() -> None:
    sim = _similarity("counts", support_threshold=2)
    expected = np.where(COUNTS >= 2, COUNTS, 0.0)  # keeps C_00, C_01, C_10, C_11 only
    np.testing.assert_array_equal(sim, expected)
    jaccard = _similarity("jaccard", support_threshold=2)
    assert jaccard[0, 1] == pytest.approx(0.5)
    assert np.count_nonzero(jaccard) == 4


def test_duplicate_rows_sum_in_affinity_but_count_once_in_cooccurrence() -> None:
    # user 0 has item 0 twice (weights 4 and 1)
    train = _tiny(weight=[4, 1, 1, 1, 1, 1, 1, 1, 1, 1], users=[0, *USERS], items=[0, *ITEMS])
    model = SARRecommender(similarity="counts", time_decay_half_life_days=0).fit(train)
    assert model.affinity[0, 0] == pytest.approx(5.0)
    np.testing.assert_array_equal(model.item_similarity.toarray(), COUNTS)


def test_time_decayed_affinity() -> None:
    # Half-life 10 days; T = latest timestamp = day 30. User 0: item 0 at day 20 (one
    # half-life before T, weight 4 -> 2), item 0 again at day 30 (weight 1 -> 1), item 1 at
    # day 10 (two half-lives, weight 2 -> 0.5).
    train = TrainData(
        user_idx=np.array([0, 0, 0, 1]),
        item_idx=np.array([0, 0, 1, 1]),
        weight=np.array([4.0, 1.0, 2.0, 1.0]),
        ts=np.array([20, 30, 10, 30]) * DAY,
        n_users=2,
        n_items=2,
        item_ids=np.array([7, 8]),
    )
    model = SARRecommender(similarity="counts", time_decay_half_life_days=10).fit(train)
    np.testing.assert_allclose(model.affinity.toarray(), [[3.0, 0.5], [0.0, 1.0]])
    assert model.decay_reference_time == 30 * DAY
    # explicit time_now at day 40: everything decays one more half-life
    later = SARRecommender(
        similarity="counts", time_decay_half_life_days=10, time_now=40 * DAY
    ).fit(train)
    np.testing.assert_allclose(later.affinity.toarray(), [[1.5, 0.25], [0.0, 0.5]])
    # interactions after time_now count fully (the library caps the decay factor at 1)
    early = SARRecommender(
        similarity="counts", time_decay_half_life_days=10, time_now=10 * DAY
    ).fit(train)
    np.testing.assert_allclose(early.affinity.toarray(), [[5.0, 2.0], [0.0, 1.0]])
    unweighted = SARRecommender(
        similarity="counts", time_decay_half_life_days=10, use_weights=False
    ).fit(train)
    np.testing.assert_allclose(unweighted.affinity.toarray(), [[1.5, 0.25], [0.0, 1.0]])


def test_scores_are_affinity_times_similarity() -> None:
    # Ratings as weights: user 3 rated item 0 with 2 and item 4 with 5.
    weight = [1, 1, 1, 1, 1, 1, 1, 2, 5]
    model = SARRecommender(similarity="jaccard", time_decay_half_life_days=0)
    model.fit(_tiny(weight=weight))
    # score(user 3, j) = 2 * J_0j + 5 * J_4j
    # J_0. = [1, 1/2, 1/3, 0, 1/3]; J_4. = [1/3, 0, 0, 0, 1]
    expected = [2 + 5 / 3, 1.0, 2 / 3, 0.0, 2 / 3 + 5]
    np.testing.assert_allclose(
        model.scores(np.array([3]), exclude_seen=False)[0], expected, rtol=1e-6
    )
    items, scores = model.recommend(np.array([3]), 3)
    assert items[0].tolist() == [1, 2, 3]  # items 0 and 4 are seen
    np.testing.assert_allclose(scores[0], [1.0, 2 / 3, 0.0], rtol=1e-6)


def test_item_similarity_excludes_the_item_and_pads() -> None:
    model = SARRecommender(similarity="jaccard", time_decay_half_life_days=0).fit(_tiny())
    items, scores = most_similar(model, np.array([0, 3]), 4)
    # item 0: J = 1/2 (item 1), 1/3 (items 2 and 4, smaller index first); item 3 never co-occurs
    assert items[0].tolist() == [1, 2, 4, -1]
    np.testing.assert_allclose(scores[0][:3], [0.5, 1 / 3, 1 / 3], rtol=1e-6)
    assert np.isneginf(scores[0][3])
    # item 3 co-occurs with item 1 only: J = 1 / (1 + 3 - 1)
    assert items[1].tolist() == [1, -1, -1, -1]
    assert scores[1][0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="item_idx"):
        model.item_similarity_scores(5)
    with pytest.raises(ValueError, match="not fitted"):
        SARRecommender().item_similarity_scores(0)


def test_thread_count_does_not_change_similarity_or_lists() -> None:
    import numba

    train = _sparse_random_train(n_users=120, n_items=300)
    before = numba.get_num_threads()
    runs = []
    try:
        for threads in (1, before):
            numba.set_num_threads(threads)
            model = SARRecommender(similarity="jaccard").fit(train)
            runs.append((model.item_similarity, model.recommend(np.arange(120), 10)))
    finally:
        numba.set_num_threads(before)
    (one, one_lists), (many, many_lists) = runs
    assert (one != many).nnz == 0
    np.testing.assert_array_equal(one_lists[0], many_lists[0])


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError):
        SARRecommender(similarity="pearson")
    with pytest.raises(ValueError):
        SARRecommender(support_threshold=0)
    with pytest.raises(ValueError):
        SARRecommender(time_decay_half_life_days=-1)


def test_no_timestamps_means_no_decay_and_a_warning(caplog) -> None:
    with caplog.at_level("WARNING"):
        decayed = SARRecommender(time_decay_half_life_days=30).fit(_tiny())
    assert "no timestamps" in caplog.text
    plain = SARRecommender(time_decay_half_life_days=0).fit(_tiny())
    np.testing.assert_allclose(decayed.affinity.toarray(), plain.affinity.toarray())


def _sparse_random_train(n_users=400, n_items=900, per_user=12, seed=3) -> TrainData:
    """Users with a few popular-skewed items each, so the co-occurrence stays sparse."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.choice(n_items, size=users.size, p=weights / weights.sum())
    return TrainData(
        user_idx=users,
        item_idx=items,
        weight=rng.integers(1, 6, users.size).astype(np.float64),
        ts=rng.uniform(0, 200 * DAY, users.size),
        n_users=n_users,
        n_items=n_items,
        item_ids=np.arange(n_items),
    )


@pytest.mark.parametrize("similarity", ["jaccard", "counts", "mutual_information"])
@pytest.mark.parametrize("exclude_seen", [True, False])
@pytest.mark.parametrize("tiled", [False, True])
def test_compiled_recommend_equals_the_top_k_of_the_dense_scores(
    similarity, exclude_seen, tiled, monkeypatch
):
    """The fused kernels (sparse similarity; per user, or by user blocks and column tiles,
    with the top k in the same pass) give exactly the dense path's lists and scores."""
    from reclab.models import item_item

    if tiled:  # small tiles and blocks, so rows span tiles and blocks end mid-way
        monkeypatch.setattr(item_item, "TILED_MIN_BYTES", 0)
        monkeypatch.setattr(item_item, "TILE", 128)
        monkeypatch.setattr(item_item, "USER_BLOCK", 7)
    train = _sparse_random_train()
    model = SARRecommender(similarity=similarity, time_decay_half_life_days=30)
    model.dense_scoring_max_small_bytes = 0  # a small catalogue would be scored densely
    model.fit(train)
    assert not isinstance(model._scoring_similarity(), np.ndarray)  # the sparse kernel runs
    assert_recommend_equals_dense_top_k(model, np.arange(train.n_users), 20, exclude_seen)


def test_compiled_recommend_on_a_dense_similarity_equals_the_dense_scores():

    train = _sparse_random_train(n_users=200, n_items=60, per_user=20)
    model = SARRecommender(similarity="jaccard", time_decay_half_life_days=0).fit(train)
    assert isinstance(model._scoring_similarity(), np.ndarray)  # small catalogue: dense rows
    # more than the catalogue: padded
    items, _ = assert_recommend_equals_dense_top_k(model, np.arange(train.n_users), 70)
    assert (items[:, -1] == -1).all()


def test_similarity_cap_raises_the_support_threshold_to_the_smallest_that_fits():
    train = _sparse_random_train()
    exact = SARRecommender(similarity="jaccard", max_similarity_entries=None).fit(train)
    assert exact.support_threshold_used == 1
    for threshold in (2, 3):
        fixed = SARRecommender(
            similarity="jaccard", support_threshold=threshold, max_similarity_entries=None
        ).fit(train)
        capped = SARRecommender(
            similarity="jaccard", max_similarity_entries=fixed.item_similarity.nnz
        ).fit(train)
        # the cap admits threshold t's matrix but not threshold t - 1's
        assert capped.support_threshold_used == threshold
        # the leaderboard's train_sample says what the cap changed
        assert capped.train_sample == (
            f"similarity: support threshold raised from 1 to {threshold} to fit "
            f"max_similarity_entries={fixed.item_similarity.nnz:,}"
        )
        assert fixed.train_sample == ""
        assert (capped.item_similarity != fixed.item_similarity).nnz == 0
        np.testing.assert_array_equal(capped.item_frequencies, fixed.item_frequencies)
    # a threshold given by the user is never lowered, and a cap that is never reached is inert
    model = SARRecommender(support_threshold=2, max_similarity_entries=10**9).fit(train)
    assert model.support_threshold_used == 2
    with pytest.raises(ValueError, match="max_similarity_entries"):
        SARRecommender(max_similarity_entries=0)


def test_cooccurrence_counts_equal_the_sparse_product():
    import scipy.sparse as sp

    from reclab.models.item_item import cooccurrence_counts, cooccurrence_histograms

    train = _sparse_random_train(n_users=300, n_items=200)
    binary = sp.csr_matrix(
        (np.ones(train.user_idx.size), (train.user_idx, train.item_idx)),
        shape=(train.n_users, train.n_items),
    )
    binary.sum_duplicates()
    binary.data[:] = 1
    binary = binary.astype(np.int32)
    product = (binary.T @ binary).toarray()
    histograms = cooccurrence_histograms(binary)
    for value in range(1, 6):
        assert histograms[:, value].sum() == (product == value).sum()
    counts = cooccurrence_counts(binary, 2, histograms)
    assert counts.has_sorted_indices
    np.testing.assert_array_equal(counts.toarray(), np.where(product >= 2, product, 0))


def test_scoring_caches_are_built_at_fit_and_load_not_by_the_first_request() -> None:
    """Serving threads share the model: nothing is built lazily on their first call."""
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    train = _sparse_random_train(n_users=200, n_items=60, per_user=20)
    model = SARRecommender(similarity="jaccard").fit(train)
    assert isinstance(model._dense_similarity, np.ndarray)  # small catalogue: dense copy
    restored = pickle.loads(pickle.dumps(model))
    assert isinstance(restored._dense_similarity, np.ndarray)  # rebuilt at load
    users = np.arange(train.n_users)
    expected = model.recommend(users, 10)[0]
    with ThreadPoolExecutor(4) as pool:
        lists = list(pool.map(lambda u: restored.recommend(users[u::4], 10)[0], range(4)))
    for offset, part in enumerate(lists):
        np.testing.assert_array_equal(part, expected[offset::4])
