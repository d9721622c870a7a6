"""Time-aware personalisation: the shared recency weight, its use by item KNN / EASE / ALS, and
the ``recency_blend`` family (a base family's scores fused with recent popularity)."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest

from reclab.models.als import ALSRecommender
from reclab.models.base import TrainData, top_k
from reclab.models.blend import RecencyBlendRecommender
from reclab.models.ease import EASERecommender, ease_weights
from reclab.models.knn import ItemKNNRecommender
from reclab.models.recency import (
    RecencyPopularityRecommender,
    decayed_counts,
    recency_weighted_matrix,
    recency_weights,
)
from reclab.models.registry import FAMILIES, make_model
from reclab.training import plan_checked_candidates
from tests.contract import RecommenderContract, planted_clusters

DAY = 86_400.0
T = 1_700_000_000.0  # the last train timestamp

# user 0: item 0 today, item 1 twice (30 and 60 days old); user 1: item 1 today, item 2 90 days
# old; user 2: item 0 and item 2, 10 days old. Weights are ratings.
USERS = [0, 0, 0, 1, 1, 2, 2]
ITEMS = [0, 1, 1, 1, 2, 0, 2]
AGES = [0.0, 30.0, 60.0, 0.0, 90.0, 10.0, 10.0]
RATINGS = [5.0, 2.0, 4.0, 3.0, 1.0, 2.0, 2.0]


def small_train(with_ts: bool = True) -> TrainData:
    return TrainData(
        user_idx=np.asarray(USERS, dtype=np.int64),
        item_idx=np.asarray(ITEMS, dtype=np.int64),
        weight=np.asarray(RATINGS),
        ts=T - np.asarray(AGES) * DAY if with_ts else None,
        n_users=3,
        n_items=4,
        item_ids=np.array([10, 11, 12, 13]),
    )


def without_ts(train: TrainData, weight: np.ndarray) -> TrainData:
    """The same interactions with other weights and no timestamps."""
    return TrainData(
        train.user_idx, train.item_idx, weight, None, train.n_users, train.n_items, train.item_ids
    )


# ------------------------------------------------------------------------------------------
# The shared weight
# ------------------------------------------------------------------------------------------


def test_recency_weights_halve_every_half_life() -> None:
    weights = recency_weights(small_train(), 30.0, "test")
    np.testing.assert_allclose(weights, 2.0 ** (-np.asarray(AGES) / 30.0))
    assert weights[0] == 1.0 and weights[1] == 0.5 and weights[2] == 0.25
    assert recency_weights(small_train(), 0.0, "test") is None  # off


def test_binary_pairs_take_their_latest_weight_and_weighted_pairs_sum() -> None:
    train = small_train()
    latest = recency_weighted_matrix(train, 30.0, "test", use_weights=False).toarray()
    ten_days = 2.0 ** (-10 / 30)
    np.testing.assert_allclose(
        latest,
        [[1.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.125, 0.0], [ten_days, 0.0, ten_days, 0.0]],
    )
    summed = recency_weighted_matrix(train, 30.0, "test", use_weights=True).toarray()
    np.testing.assert_allclose(summed[0], [5.0, 2.0 * 0.5 + 4.0 * 0.25, 0.0, 0.0])
    np.testing.assert_allclose(summed[1], [0.0, 3.0, 1.0 * 0.125, 0.0])
    # the same pattern as the binary train matrix, and the same as recent popularity's counts
    assert (latest > 0).sum() == train.seen.nnz
    decay = recency_weights(train, 30.0, "test")
    np.testing.assert_allclose(
        decayed_counts(train, 30.0), np.bincount(train.item_idx, weights=decay, minlength=4)
    )


def test_user_rows_aged_from_each_users_last_interaction_do_not_underflow() -> None:
    train = small_train()
    # user 2 last active 5,000 days ago: with a 1-day half-life its weights from the last
    # train timestamp underflow to 0 even in float64; aged from its own last interaction they
    # are the same up to one factor per user, so the user's items still rank
    ts = train.ts - 5000 * DAY * (train.user_idx == 2)
    old = TrainData(train.user_idx, train.item_idx, train.weight, ts, 3, 4, train.item_ids)
    global_rows = recency_weighted_matrix(old, 1.0, "test", use_weights=False).toarray()
    own_rows = recency_weighted_matrix(old, 1.0, "test", False, per_user=True).toarray()
    assert global_rows[2].sum() == 0.0
    np.testing.assert_allclose(own_rows.max(axis=1), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(own_rows[:2], global_rows[:2])  # their last interaction is T
    fresh = recency_weighted_matrix(train, 30.0, "test", False, per_user=True).toarray()
    global_fresh = recency_weighted_matrix(train, 30.0, "test", False).toarray()
    np.testing.assert_allclose(fresh[2], global_fresh[2] * 2.0 ** (10 / 30))


def test_without_timestamps_the_weighting_is_off_with_one_warning(caplog) -> None:
    train = small_train(with_ts=False)
    for model in (
        EASERecommender(l2=1.0, recency_half_life_days=7),
        ItemKNNRecommender(n_neighbors=2, use_weights=True, recency_half_life_days=7),
        ALSRecommender(factors=2, iterations=2, num_threads=1, recency_half_life_days=7),
    ):
        params = {**model.params, "recency_half_life_days": 0.0}
        plain = type(model)(**params).fit(train)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="reclab.models.recency"):
            model.fit(train)
        warnings = [r for r in caplog.records if "no timestamps" in r.getMessage()]
        assert len(warnings) == 1, (model.family, caplog.text)
        assert model.family in warnings[0].getMessage()
        users = np.arange(3)
        np.testing.assert_allclose(model.scores(users), plain.scores(users))


@pytest.mark.parametrize("cls", [EASERecommender, ItemKNNRecommender, ALSRecommender])
def test_half_life_is_checked(cls) -> None:
    assert cls().hparams.recency_half_life_days == 0.0  # off by default
    assert cls(recency_half_life_days=None).hparams.recency_half_life_days == 0.0
    assert cls(recency_half_life_days=7).hparams.recency_half_life_days == 7.0
    for bad in (-1, float("nan"), float("inf"), True, "7"):
        with pytest.raises(ValueError, match="recency_half_life_days must be a finite number"):
            cls(recency_half_life_days=bad)


# ------------------------------------------------------------------------------------------
# The families that use it
# ------------------------------------------------------------------------------------------


def test_ease_fits_and_scores_the_recency_weighted_matrix() -> None:
    train = small_train()
    model = EASERecommender(l2=2.0, recency_half_life_days=30).fit(train)
    latest = recency_weighted_matrix(train, 30.0, "test", use_weights=False)
    want = ease_weights(latest.astype(np.float32), 2.0)
    np.testing.assert_allclose(model.weights, want, rtol=1e-5)
    # each user's row is scaled to its latest interaction: the same ranking, readable weights
    items, weights = model.user_history(1)
    assert items.tolist() == [1, 2]
    np.testing.assert_allclose(weights, [1.0, 0.125])
    users = np.arange(3)
    rows = latest.toarray() / latest.toarray().max(axis=1, keepdims=True)
    np.testing.assert_allclose(model.scores(users, exclude_seen=False), rows @ want, rtol=1e-5)
    # with use_weights the summed decayed ratings are fitted
    weighted = EASERecommender(l2=2.0, use_weights=True, recency_half_life_days=30).fit(train)
    summed = recency_weighted_matrix(train, 30.0, "test", use_weights=True).astype(np.float32)
    np.testing.assert_allclose(weighted.weights, ease_weights(summed, 2.0), rtol=1e-5)


def test_item_knn_scores_recent_history_items_higher() -> None:
    # one user's history: item 0 today, item 1 long ago; items 2 and 3 are each the only
    # neighbour (by other users) of item 0 and item 1 respectively
    users = [0, 0, 1, 1, 2, 2]
    items = [0, 1, 0, 2, 1, 3]
    ages = [0.0, 120.0, 0.0, 0.0, 0.0, 0.0]
    train = TrainData(
        np.asarray(users, dtype=np.int64),
        np.asarray(items, dtype=np.int64),
        np.ones(6),
        T - np.asarray(ages) * DAY,
        3,
        4,
        np.arange(4),
    )
    plain = ItemKNNRecommender(n_neighbors=3).fit(train)
    recent = ItemKNNRecommender(n_neighbors=3, recency_half_life_days=30).fit(train)
    plain_scores = plain.scores(np.array([0]))[0]
    recent_scores = recent.scores(np.array([0]))[0]
    assert plain_scores[2] == pytest.approx(plain_scores[3])  # the two neighbours tie
    assert recent_scores[2] > recent_scores[3]  # the recent item's neighbour wins
    assert recent.recommend(np.array([0]), 1)[0].tolist() == [[2]]
    np.testing.assert_allclose(recent.user_history(0)[1], [1.0, 2.0**-4])


def test_als_with_none_weighting_fits_the_latest_recency_weights() -> None:
    # ALS(weighting="none") with a half-life equals linear ALS on the pairs' recency weights
    train = small_train()
    common = dict(factors=3, iterations=5, regularization=0.1, num_threads=1, seed=3)
    decayed = ALSRecommender(weighting="none", recency_half_life_days=30, **common).fit(train)
    latest = recency_weighted_matrix(train, 30.0, "test", use_weights=False).tocoo()
    by_hand = TrainData(
        latest.row.astype(np.int64),
        latest.col.astype(np.int64),
        latest.data,
        None,
        3,
        4,
        train.item_ids,
    )
    linear = ALSRecommender(weighting="linear", **common).fit(by_hand)
    np.testing.assert_allclose(decayed.item_factors, linear.item_factors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(decayed.user_factors, linear.user_factors, rtol=1e-5, atol=1e-6)
    undecayed = ALSRecommender(weighting="none", **common).fit(train)
    assert not np.allclose(undecayed.user_factors, decayed.user_factors)


class TestRecencyEASEContract(RecommenderContract):
    def make_model(self):
        return EASERecommender(l2=10.0, recency_half_life_days=30)


class TestRecencyItemKNNContract(RecommenderContract):
    def make_model(self):
        return ItemKNNRecommender(n_neighbors=10, recency_half_life_days=30)


class TestRecencyALSContract(RecommenderContract):
    def make_model(self):
        return ALSRecommender(factors=8, regularization=0.1, recency_half_life_days=30)


# ------------------------------------------------------------------------------------------
# The blend
# ------------------------------------------------------------------------------------------


class TestRecencyBlendContract(RecommenderContract):
    def make_model(self):
        return RecencyBlendRecommender(
            base_family="ease", base_params={"l2": 10.0}, half_life_days=7, blend_weight=0.25
        )


BASES = {
    "ease": {"l2": 10.0},
    "als": {"factors": 8, "regularization": 0.1, "num_threads": 1},
    "item_knn": {"n_neighbors": 10},
    "sar": {"similarity": "jaccard"},
}


@pytest.mark.parametrize("base_family", sorted(BASES))
def test_weight_zero_is_the_base_ranking(base_family) -> None:
    train = planted_clusters()
    base = make_model(base_family, BASES[base_family], seed=5).fit(train)
    blend = RecencyBlendRecommender(
        base_family=base_family, base_params=BASES[base_family], blend_weight=0.0, seed=5
    ).fit(train)
    users = np.arange(train.n_users)
    base_scores = base.scores(users)
    blend_scores = blend.scores(users)
    # per-user min-max: an increasing map of each row, so the same order, within [0, 1]
    order = np.argsort(-base_scores, axis=1, kind="stable")
    ranked = np.take_along_axis(blend_scores, order, axis=1)
    finite = np.isfinite(ranked)
    assert np.all(np.diff(np.where(finite, ranked, -1.0), axis=1) <= 1e-6)
    assert blend_scores[np.isfinite(blend_scores)].min() >= 0.0
    assert blend_scores[np.isfinite(blend_scores)].max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(blend.recommend(users, 10)[0], top_k(base_scores, 10)[0])


def test_the_weight_moves_lists_towards_recent_popularity() -> None:
    train = planted_clusters()
    users = np.arange(train.n_users)
    popular = RecencyPopularityRecommender(half_life_days=7).fit(train)
    popular_lists = popular.recommend(users, 5)[0]
    overlaps = []
    for weight in (0.0, 0.5, 0.99):
        blend = RecencyBlendRecommender(base_params={"l2": 10.0}, blend_weight=weight).fit(train)
        lists = blend.recommend(users, 5)[0]
        shared = [len(set(a) & set(b)) for a, b in zip(lists, popular_lists, strict=True)]
        overlaps.append(np.mean(shared))
    assert overlaps[0] < overlaps[1] < overlaps[2]
    assert overlaps[2] > 4.5  # almost the popularity lists


def test_scores_are_the_weighted_sum_of_per_user_normalised_sides() -> None:
    train = small_train()
    blend = RecencyBlendRecommender(
        base_params={"l2": 2.0}, half_life_days=30, blend_weight=0.4
    ).fit(train)
    base = EASERecommender(l2=2.0).fit(train)
    popularity = decayed_counts(train, 30.0)
    for user in range(3):
        shown = ~train.seen[user].toarray().ravel()
        b = base.scores(np.array([user]), exclude_seen=False)[0]
        b = (b - b[shown].min()) / (b[shown].max() - b[shown].min())
        p = (popularity - popularity[shown].min()) / np.ptp(popularity[shown])
        want = 0.6 * b + 0.4 * p
        got = blend.scores(np.array([user]), exclude_seen=False)[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_blend_round_trips_and_serves_fold_in_and_similar_items() -> None:
    train = planted_clusters()
    blend = RecencyBlendRecommender(
        base_family="als", base_params={"factors": 8, "regularization": 0.1}, blend_weight=0.3
    ).fit(train)
    restored = RecencyBlendRecommender.from_bytes(blend.to_bytes())
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(restored.scores(users), blend.scores(users))
    assert pickle.loads(blend.to_bytes())["format"] == RecencyBlendRecommender.format_version
    # a new user with a known user's history gets a blend of the base's fold-in scores
    history = train.seen[4].indices
    folded = blend.fold_in_scores(history)
    assert folded.shape == (train.n_items,) and np.isfinite(folded).all()
    half = train.n_items // 2
    unseen = np.setdiff1d(np.arange(train.n_items), history)
    best = unseen[np.argsort(-folded[unseen], kind="stable")[:5]]
    assert (best // half == 4 % 2).all()  # user 4's own cluster
    np.testing.assert_array_equal(
        blend.item_similarity_scores(3), blend.base.item_similarity_scores(3)
    )


def test_ease_fold_in_of_a_known_history_equals_its_blended_scores() -> None:
    train = planted_clusters()
    blend = RecencyBlendRecommender(base_params={"l2": 10.0}, blend_weight=0.5).fit(train)
    for user in (0, 7):
        history = train.seen[user].indices
        scores = blend.scores(np.array([user]), exclude_seen=False)[0]
        np.testing.assert_allclose(blend.fold_in_scores(history), scores, rtol=1e-5, atol=1e-6)


def test_blend_works_without_timestamps(caplog) -> None:
    train = planted_clusters()
    train.ts = None
    with caplog.at_level(logging.WARNING, logger="reclab.models.recency"):
        blend = RecencyBlendRecommender(base_params={"l2": 10.0}, blend_weight=0.5).fit(train)
    assert "no timestamps" in caplog.text
    np.testing.assert_allclose(blend.popularity, np.bincount(train.item_idx, minlength=40))
    items, _ = blend.recommend(np.arange(train.n_users), 5)
    assert (items >= 0).all()


def test_items_the_base_rules_out_stay_out() -> None:
    train = planted_clusters()
    blend = RecencyBlendRecommender(
        base_params={"l2": 10.0, "max_items": 30}, blend_weight=0.9
    ).fit(train)
    scores = blend.scores(np.arange(train.n_users))
    kept = np.zeros(train.n_items, dtype=bool)
    kept[blend.base.kept_items] = True
    assert np.isneginf(scores[:, ~kept]).all()
    assert blend.train_sample == blend.base.train_sample != ""


@pytest.mark.parametrize(
    "params, message",
    [
        ({"base_family": "ncf"}, r"base_family must be one of item_knn, sar, ease, als"),
        ({"base_family": "recency_blend"}, r"base_family must be one of"),
        ({"base_params": {"nope": 1}}, r"base_params for ease: ease: unknown parameter\(s\)"),
        ({"base_params": {"l2": -1}}, r"base_params for ease: l2 must be a finite number > 0"),
        ({"base_params": [1, 2]}, r"base_params must be an object of ease parameters"),
        ({"blend_weight": 1.0}, r"blend_weight must be a finite number in \[0, 1\)"),
        ({"blend_weight": -0.1}, r"blend_weight must be"),
        ({"blend_weight": float("nan")}, r"blend_weight must be"),
        ({"half_life_days": 0}, r"half_life_days must be a finite number > 0"),
        ({"weight": 0.5}, r"recency_blend: unknown parameter\(s\) \['weight'\]"),
    ],
)
def test_bad_blend_parameters_are_refused_clearly(params, message) -> None:
    with pytest.raises(ValueError, match=message):
        RecencyBlendRecommender(**params)


def test_blend_is_registered_and_its_grids_are_valid() -> None:
    assert FAMILIES["recency_blend"].load_class() is RecencyBlendRecommender
    assert not FAMILIES["recency_blend"].uses_gpu
    for grid in ("quick", "full"):
        cpu, _ = plan_checked_candidates(["recency_blend", "ease", "item_knn", "als"], grid)
        blends = [c for c in cpu if c["family"] == "recency_blend"]
        weights = {c["params"]["blend_weight"] for c in blends}
        assert blends and all(0 < w < 1 for w in weights) and len(weights) >= 2
    # the seed reaches a base that takes one
    model = make_model("recency_blend", {"base_family": "als"}, seed=42)
    assert model.hparams.seed == 42 and model._make_base().hparams.seed == 42
