"""Tests for reclab.evaluation: metric arithmetic checked by hand, then the protocol around it."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from reclab.errors import InputError
from reclab.evaluation import (
    METRIC_NAMES,
    EvaluationResult,
    evaluate,
    metric_key,
    ranking_metrics,
)

# Item codes of the hand example.
A, B, C, X, Y, Z = range(6)


def table_recommender(table: dict[int, list[int]], pad: int = -1):
    """A model that returns a fixed list per user, padded with ``pad`` up to ``k``."""

    def recommend(user_idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        items = np.full((user_idx.size, k), pad, dtype=np.int64)
        for row, user in enumerate(user_idx):
            listed = table[int(user)][:k]
            items[row, : len(listed)] = listed
        scores = -np.arange(k, dtype=np.float64)[None, :].repeat(user_idx.size, axis=0)
        return items, scores

    return recommend


def csr_rows(rows: list[list[int]], n_cols: int) -> sp.csr_matrix:
    users = [u for u, items in enumerate(rows) for _ in items]
    items = [i for row in rows for i in row]
    return sp.csr_matrix((np.ones(len(items)), (users, items)), shape=(len(rows), n_cols))


def random_recommender(train_user_idx, train_item_idx, n_users: int, n_items: int, seed: int):
    """Uniformly random ranking of the items each user has not seen, vectorised per batch."""
    seen = sp.csr_matrix(
        (np.ones(len(train_user_idx)), (train_user_idx, train_item_idx)), shape=(n_users, n_items)
    )
    rng = np.random.default_rng(seed)

    def recommend(user_idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = rng.random((user_idx.size, n_items))
        scores[seen[user_idx].toarray() > 0] = -np.inf
        items = np.argsort(-scores, axis=1)[:, :k]
        return items, np.take_along_axis(scores, items, axis=1)

    return recommend


def random_problem(n_users: int = 2000, n_items: int = 500, seed: int = 1):
    """Each user has one train item and one different window item; nothing cold or unseen."""
    rng = np.random.default_rng(seed)
    users = np.arange(n_users, dtype=np.int64)
    train_items = rng.integers(0, n_items, n_users)
    window_items = (train_items + rng.integers(1, n_items, n_users)) % n_items
    return users, train_items, users.copy(), window_items


# --------------------------------------------------------------------------------------------
# ranking_metrics: the arithmetic
# --------------------------------------------------------------------------------------------


def test_hand_example_ranking_metrics():
    """k=3. User 1: truth {a, b}, list [a, x, b]; user 2: truth {c}, list [x, y, z].

    Denominators: recall / |relevant|, precision / k, AP / min(k, |relevant|), NDCG / ideal DCG
    over min(k, |relevant|) ranks. User 1: precision 2/3, recall 2/2, AP (1 + 2/3) / 2,
    NDCG (1 + 1/log2(4)) / (1 + 1/log2(3)). User 2: all zero.
    """
    recommended = np.array([[A, X, B], [X, Y, Z]])
    relevant = csr_rows([[A, B], [C]], n_cols=6)

    m = ranking_metrics(recommended, relevant, k=3)

    ndcg_1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    np.testing.assert_allclose(m["precision"], [2 / 3, 0])
    np.testing.assert_allclose(m["recall"], [1, 0])
    np.testing.assert_allclose(m["map"], [(1 + 2 / 3) / 2, 0])
    np.testing.assert_allclose(m["ndcg"], [ndcg_1, 0])
    np.testing.assert_allclose(m["hit_rate"], [1, 0])
    np.testing.assert_array_equal(m["n_relevant"], [2, 1])
    assert m["map"][0] == pytest.approx(0.8333, abs=1e-4)
    assert m["ndcg"][0] == pytest.approx(0.9197, abs=1e-4)
    assert m["precision"].mean() == pytest.approx(0.3333, abs=1e-4)
    assert m["recall"].mean() == pytest.approx(0.5)
    assert m["map"].mean() == pytest.approx(0.4167, abs=1e-4)
    assert m["ndcg"].mean() == pytest.approx(0.4599, abs=1e-4)


def test_ideal_dcg_and_map_use_min_of_k_and_relevant():
    """5 relevant items, k=3, 3 hits: the ideal list can only hold 3, so NDCG and MAP are 1."""
    m = ranking_metrics(np.array([[0, 1, 2]]), csr_rows([[0, 1, 2, 3, 4]], n_cols=5), k=3)

    assert m["ndcg"][0] == pytest.approx(1.0)
    assert m["map"][0] == pytest.approx(1.0)
    assert m["recall"][0] == pytest.approx(3 / 5)
    assert m["precision"][0] == pytest.approx(1.0)


def test_ranking_metrics_single_late_hit_and_cut():
    """One relevant item at rank 3: NDCG 1/log2(4) = 0.5, AP 1/3; cut at k=2 it is a miss."""
    recommended = np.array([[1, 2, 0]])
    relevant = csr_rows([[0]], n_cols=3)

    at_3 = ranking_metrics(recommended, relevant, k=3)
    at_2 = ranking_metrics(recommended, relevant, k=2)

    assert at_3["ndcg"][0] == pytest.approx(0.5)
    assert at_3["map"][0] == pytest.approx(1 / 3)
    assert at_3["precision"][0] == pytest.approx(1 / 3)
    assert at_2["recall"][0] == 0 and at_2["hit_rate"][0] == 0


def test_ranking_metrics_padding_is_a_miss_and_short_lists_are_padded():
    relevant = csr_rows([[0, 1]], n_cols=4)

    padded = ranking_metrics(np.array([[0, -1, -1]]), relevant, k=3)
    short = ranking_metrics(np.array([[0]]), relevant, k=3)

    for m in (padded, short):
        assert m["precision"][0] == pytest.approx(1 / 3)  # still divided by k
        assert m["recall"][0] == pytest.approx(1 / 2)
        assert m["ndcg"][0] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_ranking_metrics_user_without_relevant_is_nan():
    m = ranking_metrics(np.array([[0, 1]]), sp.csr_matrix((1, 3)), k=2)

    assert np.isnan(m["recall"][0]) and np.isnan(m["ndcg"][0]) and np.isnan(m["map"][0])
    assert m["precision"][0] == 0


@pytest.mark.parametrize(
    ("recommended", "k", "match"),
    [
        (np.array([[0, 1]]), 0, "k must be"),
        (np.array([[0, 1], [1, 0]]), 2, "rows"),
        (np.array([[0, 9]]), 2, r"\[-1, 3\)"),
        (np.array([[1, 1]]), 2, "more than once"),
        (np.array([[0.0, 1.0]]), 2, "integer"),
    ],
)
def test_ranking_metrics_rejects_bad_input(recommended, k, match):
    with pytest.raises(InputError, match=match):
        ranking_metrics(recommended, csr_rows([[0]], n_cols=3), k=k)


# --------------------------------------------------------------------------------------------
# evaluate: the protocol
# --------------------------------------------------------------------------------------------


def hand_example(**kwargs) -> EvaluationResult:
    """The hand example through ``evaluate``: users 1 and 2, user 0 only in train."""
    train_users = np.array([0, 1, 2])
    train_items = np.array([A, C, A])  # none of them collide with the recommendations
    window_users = np.array([1, 1, 1, 2])
    window_items = np.array([A, B, A, C])  # a duplicate (1, a) must count once
    recommend = table_recommender({1: [A, X, B], 2: [X, Y, Z]})
    return evaluate(
        recommend, train_users, train_items, window_users, window_items,
        n_users=3, n_items=6, **{"ks": (3,), **kwargs},
    )  # fmt: skip


def test_hand_example_evaluate():
    result = hand_example()

    assert result.metrics["precision_at_3"] == pytest.approx(1 / 3)
    assert result.metrics["recall_at_3"] == pytest.approx(0.5)
    assert result.metrics["map_at_3"] == pytest.approx((1 + 2 / 3) / 4)
    assert result.metrics["ndcg_at_3"] == pytest.approx(
        (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)) / 2
    )
    assert result.metrics["hit_rate_at_3"] == pytest.approx(0.5)
    assert result.metrics["coverage_at_3"] == pytest.approx(5 / 6)  # {a, x, b, y, z} of 6
    assert set(result.metrics) == {metric_key(name, 3) for name in METRIC_NAMES}
    assert result.counts == {
        "window_users": 2,
        "cold_users": 0,
        "cold_interactions": 0,
        "evaluated_users": 2,
        "skipped_users": 0,
        "relevant_pairs": 3,
        "unseen_item_share": 0.0,
    }
    assert result.per_user["user_idx"].tolist() == [1, 2]
    assert result.per_user["n_relevant"].tolist() == [2, 1]
    assert list(result.per_user.columns) == ["user_idx", "n_relevant", "ndcg_at_3", "recall_at_3"]


def test_seen_items_leave_relevant_and_users_with_nothing_new_are_skipped():
    # User 0: window {0, 1}, 0 already in train -> relevant {1}.
    # User 1: window {2}, already in train -> skipped. User 2 has no window interaction.
    train_users = np.array([0, 1, 2])
    train_items = np.array([0, 2, 3])
    window_users = np.array([0, 0, 1])
    window_items = np.array([0, 1, 2])
    recommend = table_recommender({0: [1, 2]})

    result = evaluate(
        recommend, train_users, train_items, window_users, window_items, 3, 4, ks=(2,)
    )

    assert result.counts["evaluated_users"] == 1
    assert result.counts["skipped_users"] == 1
    assert result.counts["window_users"] == 2
    assert result.counts["relevant_pairs"] == 1
    assert result.per_user["user_idx"].tolist() == [0]
    assert result.metrics["recall_at_2"] == 1.0
    assert result.metrics["ndcg_at_2"] == 1.0


def test_cold_users_counted_not_evaluated():
    train_users = np.array([0, 1])
    train_items = np.array([0, 1])
    # Two cold users with their own codes (-1, -2), one warm user.
    window_users = np.array([-1, -1, -2, 0])
    window_items = np.array([1, 2, 0, 1])
    asked: list[int] = []

    def recommend(user_idx, k):
        asked.extend(user_idx.tolist())
        return table_recommender({0: [1]})(user_idx, k)

    result = evaluate(recommend, train_users, train_items, window_users, window_items, 2, 3)

    assert asked == [0]
    assert result.counts["cold_users"] == 2
    assert result.counts["cold_interactions"] == 3
    assert result.counts["window_users"] == 3
    assert result.counts["evaluated_users"] == 1


def test_unseen_items_each_count_and_share_is_reported():
    """Two distinct items unseen in train (codes 3 and 4 >= n_items) are two relevant items."""
    train_users = np.array([0, 1])
    train_items = np.array([0, 0])
    window_users = np.array([0, 0, 0, 1])
    window_items = np.array([1, 3, 4, 2])
    recommend = table_recommender({0: [1, 2], 1: [2, 1]})

    result = evaluate(
        recommend, train_users, train_items, window_users, window_items, 2, 3, ks=(2,)
    )

    assert result.per_user["n_relevant"].tolist() == [3, 1]
    assert result.per_user["recall_at_2"].tolist() == pytest.approx([1 / 3, 1.0])
    assert result.counts["relevant_pairs"] == 4
    assert result.counts["unseen_item_share"] == pytest.approx(2 / 4)
    # A user whose only relevant items are unseen is evaluated and scores zero.
    only_unseen = evaluate(recommend, train_users, train_items, [0], [4], 2, 3, ks=(2,))
    assert only_unseen.metrics["recall_at_2"] == 0.0
    assert only_unseen.counts["unseen_item_share"] == 1.0


def test_perfect_recommender():
    rng = np.random.default_rng(0)
    n_users, n_items, k = 200, 60, 5
    train_users = np.repeat(np.arange(n_users), 3)
    train_items = rng.integers(0, n_items, train_users.size)
    window_users = np.repeat(np.arange(n_users), 4)
    window_items = rng.integers(0, n_items, window_users.size)
    seen = {u: set() for u in range(n_users)}
    truth = {u: set() for u in range(n_users)}
    for u, i in zip(train_users, train_items, strict=True):
        seen[u].add(int(i))
    for u, i in zip(window_users, window_items, strict=True):
        truth[u].add(int(i))
    table = {}
    for u in range(n_users):
        relevant = sorted(truth[u] - seen[u])
        rest = [i for i in range(n_items) if i not in seen[u] and i not in truth[u]]
        table[u] = relevant + rest

    result = evaluate(
        table_recommender(table), train_users, train_items, window_users, window_items,
        n_users, n_items, ks=(k,),
    )  # fmt: skip

    per_user = result.per_user
    np.testing.assert_allclose(per_user[f"ndcg_at_{k}"], 1.0)
    assert (per_user["n_relevant"] <= k).all()  # at most 4 window items: recall 1 everywhere
    np.testing.assert_allclose(per_user[f"recall_at_{k}"], 1.0)
    assert result.metrics[f"recall_at_{k}"] == pytest.approx(1.0)
    assert result.metrics[f"map_at_{k}"] == pytest.approx(1.0)
    assert result.metrics[f"hit_rate_at_{k}"] == 1.0


def test_random_recommender_recall_is_k_over_candidates():
    """One relevant item among 499 candidates (500 items minus the train item).

    Each user's recall@k is Bernoulli(p = k / 499); over 2000 users the mean has standard error
    sqrt(p (1 - p) / 2000), about 0.0031 at k=10. We allow 4 standard errors, so a correct
    evaluator fails this with probability < 1e-4 (and the seeds make it deterministic anyway),
    while an off-by-one in ranks or denominators (e.g. k/2 or 2k/499) is far outside it.
    """
    n_users, n_items = 2000, 500
    problem = random_problem(n_users, n_items)
    recommend = random_recommender(problem[0], problem[1], n_users, n_items, seed=3)

    result = evaluate(recommend, *problem, n_users, n_items, ks=(10, 50), bootstrap_samples=200)

    for k in (10, 50):
        p = k / (n_items - 1)
        tolerance = 4 * math.sqrt(p * (1 - p) / n_users)
        assert result.metrics[f"recall_at_{k}"] == pytest.approx(p, abs=tolerance)
        assert result.metrics[f"hit_rate_at_{k}"] == result.metrics[f"recall_at_{k}"]
        assert result.metrics[f"precision_at_{k}"] == pytest.approx(
            result.metrics[f"recall_at_{k}"] / k
        )
    assert result.metrics["coverage_at_10"] == 1.0  # 20000 random draws cover 500 items


def test_seen_item_violation_raises():
    def recommend(user_idx, k):
        return table_recommender({1: [C, A, B], 2: [X, Y, Z]})(user_idx, k)  # C is in train

    with pytest.raises(ValueError, match=r"item 2 for user 1.*exclude seen"):
        evaluate(recommend, [0, 1, 2], [A, C, A], [1, 1, 2], [A, B, C], 3, 6, ks=(3,))


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({1: [A, 6, B], 2: [X, Y, Z]}, r"item 6 for user 1.*\[-1, 6\)"),
        ({1: [A, -2, B], 2: [X, Y, Z]}, r"item -2 for user 1"),
        ({1: [A, X, B], 2: [X, X, Z]}, r"more than once for user 2"),
    ],
)
def test_model_contract_violations_raise(table, match):
    with pytest.raises(ValueError, match=match):
        evaluate(table_recommender(table), [0, 1, 2], [A, C, A], [1, 1, 2], [A, B, C], 3, 6, [3])


def test_wrong_output_shape_raises():
    def recommend(user_idx, k):
        return np.zeros((user_idx.size, k + 1), dtype=np.int64), np.zeros((user_idx.size, k + 1))

    with pytest.raises(ValueError, match="shape"):
        evaluate(recommend, [0], [0], [0], [1], 1, 3, ks=(2,))


def test_padding_is_a_miss():
    """The model only has 2 items to offer at k=4: -1 pads, precision still divides by 4."""
    recommend = table_recommender({0: [1, 2]})  # pads with -1 up to k

    def short(user_idx, k):  # returns fewer columns than asked: read as padding too
        items, scores = recommend(user_idx, k)
        return items[:, :2], scores[:, :2]

    for model in (recommend, short):
        result = evaluate(model, [0], [0], [0, 0], [2, 3], 1, 4, ks=(4,))
        assert result.metrics["precision_at_4"] == pytest.approx(1 / 4)
        assert result.metrics["recall_at_4"] == pytest.approx(1 / 2)
        assert result.metrics["coverage_at_4"] == pytest.approx(2 / 4)


def test_batching_gives_identical_results():
    n_users, n_items = 300, 80
    problem = random_problem(n_users, n_items, seed=5)

    def model(user_idx, k):  # deterministic per user so batch boundaries cannot matter
        items = (user_idx[:, None] * 7 + np.arange(1, k + 1)[None, :] * 3) % n_items
        train_item = problem[1][user_idx][:, None]
        items = np.where(items == train_item, -1, items)
        return items, -np.arange(k, dtype=float)[None, :].repeat(user_idx.size, axis=0)

    one = evaluate(model, *problem, n_users, n_items, ks=(5, 20), batch_size=1)
    many = evaluate(model, *problem, n_users, n_items, ks=(5, 20), batch_size=4096)
    odd = evaluate(model, *problem, n_users, n_items, ks=(5, 20), batch_size=37)

    for other in (many, odd):
        assert one.metrics == other.metrics
        assert one.intervals == other.intervals
        assert one.counts == other.counts
        pd.testing.assert_frame_equal(one.per_user, other.per_user)


def test_bootstrap_intervals_contain_mean_and_follow_seed():
    n_users, n_items = 1000, 100
    problem = random_problem(n_users, n_items, seed=2)

    def run(seed: int) -> EvaluationResult:
        recommend = random_recommender(problem[0], problem[1], n_users, n_items, seed=11)
        return evaluate(recommend, *problem, n_users, n_items, ks=(10, 20), seed=seed)

    first, again, other = run(0), run(0), run(1)

    assert set(first.intervals) == {"ndcg_at_10", "recall_at_10", "ndcg_at_20", "recall_at_20"}
    for key, (low, high) in first.intervals.items():
        assert low < first.metrics[key] < high
    assert first.intervals == again.intervals
    assert first.intervals != other.intervals
    assert first.metrics == other.metrics  # the seed only drives the bootstrap


def test_multiple_ks_equal_separate_calls():
    n_users, n_items = 400, 50
    problem = random_problem(n_users, n_items, seed=4)

    def model(user_idx, k):  # deterministic: the top-k of a longer list is the shorter list
        order = np.argsort((user_idx[:, None] * 31 + np.arange(n_items)[None, :] * 17) % 101)
        order = order[order != problem[1][user_idx][:, None]].reshape(user_idx.size, -1)
        return order[:, :k], -np.arange(k, dtype=float)[None, :].repeat(user_idx.size, axis=0)

    together = evaluate(model, *problem, n_users, n_items, ks=(10, 1, 5))

    for k in (1, 5, 10):
        alone = evaluate(model, *problem, n_users, n_items, ks=(k,))
        for name in METRIC_NAMES:
            key = metric_key(name, k)
            assert together.metrics[key] == pytest.approx(alone.metrics[key])
        for name in ("ndcg", "recall"):
            key = metric_key(name, k)
            np.testing.assert_allclose(together.per_user[key], alone.per_user[key])


def test_no_evaluable_user_gives_nan_and_warns(caplog):
    called = []

    def recommend(user_idx, k):
        called.append(user_idx)
        raise AssertionError("must not be called")

    with caplog.at_level(logging.WARNING, logger="reclab.evaluation"):
        result = evaluate(recommend, [0], [1], [0, -1], [1, 2], 1, 3, ks=(2,))

    assert not called
    assert all(math.isnan(value) for value in result.metrics.values())
    assert all(math.isnan(low) and math.isnan(high) for low, high in result.intervals.values())
    assert result.counts["skipped_users"] == 1 and result.counts["cold_users"] == 1
    assert result.per_user.empty
    assert "No user could be evaluated" in caplog.text


def test_as_row():
    row = hand_example(bootstrap_samples=50).as_row("val")

    assert row["val_ndcg_at_3"] == pytest.approx(0.4599, abs=1e-4)
    assert "val_recall_at_3_low" in row and "val_recall_at_3_high" in row
    assert len(row) == len(METRIC_NAMES) + 2 * 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ks": (0,)}, "k must be"),
        ({"ks": ()}, "at least one"),
        ({"ks": 10}, "sequence"),
        ({"n_items": 0}, "n_items"),
        ({"batch_size": 0}, "batch_size"),
        ({"train_item_idx": [A, C]}, "train_item_idx has 2"),
        ({"window_item_idx": [A]}, "window_item_idx has 1"),
        ({"train_item_idx": [A, C, 6]}, r"train_item_idx must be \[0, 6\)"),
        ({"window_user_idx": [1, 1, 3]}, "window_user_idx"),
        ({"window_item_idx": [A, -1, C]}, "window_item_idx must be >= 0"),
    ],
)
def test_evaluate_rejects_bad_input(kwargs, match):
    args = {
        "recommend": table_recommender({1: [A, X, B], 2: [X, Y, Z]}),
        "train_user_idx": [0, 1, 2],
        "train_item_idx": [A, C, A],
        "window_user_idx": [1, 1, 2],
        "window_item_idx": [A, B, C],
        "n_users": 3,
        "n_items": 6,
        "ks": (3,),
    } | kwargs
    with pytest.raises(InputError, match=match):
        evaluate(**args)
