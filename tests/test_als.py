"""ALS family: the contract for both engines, a planted low-rank pattern, and the weighting maths.

The Spark tests share one local Spark session per module (starting one costs about 8 s) and use
small factors and few iterations; they are skipped where no Java runtime is installed.
"""

from __future__ import annotations

import math
import pickle
import shutil

import numpy as np
import pytest

from reclab.models.als import (
    ALSRecommender,
    confidence_matrix,
    preference_weights,
    spark_session,
)
from reclab.models.base import TrainData
from tests.contract import RecommenderContract

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime")


@pytest.fixture(scope="module")
def spark():
    """One local Spark session for every Spark test of this module, stopped afterwards."""
    session = spark_session("local[2]", "1g")
    yield session
    session.stop()


def _fast_spark(**params) -> ALSRecommender:
    defaults = dict(engine="spark", factors=8, iterations=5, spark_master="local[2]")
    return ALSRecommender(**{**defaults, **params})


class TestALSImplicitContract(RecommenderContract):
    # The planted data is two clusters (rank about 2) on 60 x 40: 4 factors fit it; 16 factors
    # with light regularisation overfit the observed cells (about 0.82 in-cluster in the top 5).
    def make_model(self):
        return ALSRecommender(engine="implicit", factors=4, iterations=15, seed=3)


@needs_java
@pytest.mark.usefixtures("spark")
class TestALSSparkContract(RecommenderContract):
    def make_model(self):
        return _fast_spark(regularization=0.05, alpha=10.0, weighting="linear", seed=3)


def block_diagonal(n_blocks: int = 3, users_per_block: int = 6, items_per_block: int = 5):
    """Users of block b have every item of block b except one held-out item, and nothing else.

    User ``j`` of block ``b`` misses item ``b * items_per_block + j % items_per_block``, so every
    item is held out by some user and item popularity is equal within and across blocks. The
    observed matrix is block-diagonal with nearly-full blocks: close to rank ``n_blocks``, and
    the best rank-``n_blocks`` reconstruction is about 1 inside the user's block (held-out cell
    included) and 0 outside it.

    Returns:
        (train, block of each user, held-out item of each user).
    """
    users, items, held_out = [], [], []
    n_users = n_blocks * users_per_block
    for user in range(n_users):
        block = user // users_per_block
        block_items = np.arange(block * items_per_block, (block + 1) * items_per_block)
        missing = block_items[user % items_per_block]
        held_out.append(missing)
        for item in block_items[block_items != missing]:
            users.append(user)
            items.append(item)
    train = TrainData(
        user_idx=np.asarray(users, dtype=np.int64),
        item_idx=np.asarray(items, dtype=np.int64),
        weight=np.ones(len(users)),
        ts=None,
        n_users=n_users,
        n_items=n_blocks * items_per_block,
        item_ids=np.arange(n_blocks * items_per_block),
    )
    user_block = np.arange(n_users) // users_per_block
    return train, user_block, np.asarray(held_out)


def _check_block_recovery(model: ALSRecommender) -> None:
    train, user_block, held_out = block_diagonal()
    model.fit(train)
    users = np.arange(train.n_users)
    # The held-out cell is each user's only unseen in-block item: it must come first.
    top, _ = model.recommend(users, 1)
    np.testing.assert_array_equal(top[:, 0], held_out)
    # The factors reconstruct the block structure: every in-block score (observed or held-out)
    # beats every out-of-block score of the same user.
    scores = model.user_factors @ model.item_factors.T
    in_block = (np.arange(train.n_items) // 5)[None, :] == user_block[:, None]
    lowest_in = np.where(in_block, scores, np.inf).min(axis=1)
    highest_out = np.where(in_block, -np.inf, scores).max(axis=1)
    assert (lowest_in > highest_out).all()
    assert (lowest_in > 0.5).all() and (np.abs(highest_out) < 0.25).all()


@pytest.mark.parametrize("weighting", ["none", "linear", "bm25"])
def test_implicit_recovers_block_diagonal_pattern(weighting: str) -> None:
    _check_block_recovery(
        ALSRecommender(factors=3, regularization=0.01, iterations=20, weighting=weighting)
    )


@needs_java
def test_spark_recovers_block_diagonal_pattern(spark) -> None:
    _check_block_recovery(_fast_spark(factors=3, regularization=0.01, iterations=10, alpha=1.0))


def test_implicit_is_deterministic_for_a_seed() -> None:
    train, _, _ = block_diagonal()
    a = ALSRecommender(factors=4, seed=11).fit(train)
    b = ALSRecommender(factors=4, seed=11).fit(train)
    c = ALSRecommender(factors=4, seed=12).fit(train)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    np.testing.assert_array_equal(a.item_factors, b.item_factors)
    assert not np.array_equal(a.item_factors, c.item_factors)


@needs_java
def test_spark_is_deterministic_for_a_seed(spark) -> None:
    train, _, _ = block_diagonal()
    a = _fast_spark(seed=5).fit(train)
    b = _fast_spark(seed=5).fit(train)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    np.testing.assert_array_equal(a.item_factors, b.item_factors)


@needs_java
def test_spark_model_holds_no_spark_objects(spark) -> None:
    model = _fast_spark().fit(block_diagonal()[0])
    for value in vars(model).values():
        assert not type(value).__module__.startswith(("pyspark", "py4j"))
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.user_factors, model.user_factors)
    assert model.user_factors.dtype == np.float32 and model.item_factors.dtype == np.float32


def _tiny_matrix():
    """User x item weights: u0 has i0 (1 + 1 summed, then 2 -> see below) and i1, u1 has i1, i2.

    Rows (user, item, weight): (0, 0, 1), (0, 0, 1), (0, 1, 1), (1, 1, 1), (1, 2, 4); item 3 has
    no interaction. Summed: u0 = {i0: 2, i1: 1}, u1 = {i1: 1, i2: 4}.
    """
    return TrainData(
        user_idx=np.array([0, 0, 0, 1, 1]),
        item_idx=np.array([0, 0, 1, 1, 2]),
        weight=np.array([1.0, 1.0, 1.0, 1.0, 4.0]),
        ts=None,
        n_users=2,
        n_items=4,
        item_ids=np.arange(4),
    ).matrix


def test_bm25_weights_match_hand_computation() -> None:
    # Items are the documents, users the terms. 4 items; each user has 2 items, so
    # idf = log(4) - log(1 + 2) = log(4/3). Item lengths (row sums of item x user) are
    # [2, 2, 4, 0], mean 2. With K1 = 1, B = 0.5: norm = 0.5 + 0.5 * len / 2 = [1, 1, 1.5, 0.5]
    # and w = r * (K1 + 1) / (K1 * norm + r) * idf:
    #   (u0, i0): 2 * 2 / (1 + 2) = 4/3;  (u0, i1) and (u1, i1): 1 * 2 / (1 + 1) = 1;
    #   (u1, i2): 4 * 2 / (1.5 + 4) = 16/11.
    idf = math.log(4 / 3)
    weights = preference_weights(_tiny_matrix(), "bm25", bm25_k1=1.0, bm25_b=0.5).toarray()
    expected = np.array([[4 / 3, 1, 0, 0], [0, 1, 16 / 11, 0]]) * idf
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    # The defaults K1 = 100, B = 0.8: (u1, i2) has norm 0.2 + 0.8 * 4 / 2 = 1.8, so
    # w = 4 * 101 / (100 * 1.8 + 4) * idf = 404 / 184 * idf.
    default = preference_weights(_tiny_matrix(), "bm25").toarray()
    assert default[1, 2] == pytest.approx(404 / 184 * idf, rel=1e-6)


def test_linear_and_none_confidence_match_hand_computation() -> None:
    # c = 1 + alpha * w on observed pairs only; linear keeps the summed weights.
    linear = confidence_matrix(preference_weights(_tiny_matrix(), "linear"), alpha=40.0)
    np.testing.assert_allclose(
        linear.toarray(), [[1 + 40 * 2, 1 + 40 * 1, 0, 0], [0, 1 + 40 * 1, 1 + 40 * 4, 0]]
    )
    none = confidence_matrix(preference_weights(_tiny_matrix(), "none"), alpha=40.0)
    np.testing.assert_allclose(none.toarray(), [[41, 41, 0, 0], [0, 41, 41, 0]])
    assert none.nnz == 4


def test_tfidf_weights_match_hand_computation() -> None:
    # w = sqrt(r) * idf with the same idf = log(4/3) for both users.
    idf = math.log(4 / 3)
    weights = preference_weights(_tiny_matrix(), "tfidf").toarray()
    expected = np.array([[math.sqrt(2), 1, 0, 0], [0, 1, 2, 0]]) * idf
    np.testing.assert_allclose(weights, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        {"engine": "tensorflow"},
        {"weighting": "log"},
        {"factors": 0},
        {"iterations": 0},
        {"regularization": -1.0},
        {"alpha": -1.0},
        {"bm25_b": 1.5},
    ],
)
def test_bad_parameters_raise(params: dict) -> None:
    with pytest.raises(ValueError):
        ALSRecommender(**params)


@pytest.mark.parametrize("weighting", ["none", "linear", "bm25", "tfidf"])
def test_fit_leaves_the_train_matrix_alone(weighting: str) -> None:
    # The confidence matrix is computed in place on the weights: never on the train data's.
    train, _, _ = block_diagonal()
    before = train.matrix.copy()
    ALSRecommender(factors=3, iterations=2, alpha=5.0, weighting=weighting).fit(train)
    assert (train.matrix != before).nnz == 0
    weights = preference_weights(train.matrix, weighting)
    assert not np.shares_memory(weights.data, train.matrix.data)


@needs_java
def test_spark_fits_many_sweeps(spark) -> None:
    """Long fits stay within the JVM's stack: ALS checkpoints its lineage every few sweeps.

    Without a checkpoint directory every sweep lengthens the factor RDDs' lineage, and its
    recursive deserialisation overflowed a 1 MB thread stack at 15 sweeps (the flow's grid).
    """
    model = _fast_spark(factors=3, regularization=0.01, iterations=60, alpha=1.0)
    _check_block_recovery(model)
    assert spark.sparkContext.getCheckpointDir() is not None


@needs_java
def test_spark_fits_the_recency_weighted_ratings(spark) -> None:
    # Spark gets the same recency-weighted preferences as implicit: a half-life on 0/1 data
    # equals linear weighting of the pairs' recency weights handed over by hand
    train, _, _ = block_diagonal()
    day = 86_400.0
    ages = np.arange(len(train.user_idx), dtype=np.float64) % 90
    dated = TrainData(
        train.user_idx,
        train.item_idx,
        np.ones(len(ages)),
        1_700_000_000.0 - ages * day,
        train.n_users,
        train.n_items,
        train.item_ids,
    )
    decayed = _fast_spark(seed=5, weighting="none", recency_half_life_days=30).fit(dated)
    by_hand = TrainData(
        train.user_idx,
        train.item_idx,
        2.0 ** (-ages / 30),
        None,
        train.n_users,
        train.n_items,
        train.item_ids,
    )
    linear = _fast_spark(seed=5, weighting="linear").fit(by_hand)
    np.testing.assert_allclose(decayed.item_factors, linear.item_factors, rtol=1e-4, atol=1e-5)
    undecayed = _fast_spark(seed=5, weighting="none").fit(dated)
    assert not np.allclose(undecayed.item_factors, decayed.item_factors)
