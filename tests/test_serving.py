"""Serving the winner: model capabilities on tiny hand-checkable data, then the service on ML-100k.

The first half checks fold-in, similar items and explanations of the families on matrices small
enough to compute by hand. The second half runs :class:`RecommendationService` on the real
MovieLens-100k run of the session (``trained_run``), read back through the Metaflow client.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from reclab.errors import InputError
from reclab.models.als import ALSRecommender
from reclab.models.base import TrainData
from reclab.models.knn import ItemKNNRecommender
from reclab.models.sar import SARRecommender
from reclab.serving import RecommendationService
from tests.contract import most_similar

# ------------------------------------------------------------------------------------------
# Model capabilities on tiny data
# ------------------------------------------------------------------------------------------


def tiny_train() -> TrainData:
    """4 users x 4 items. u0: i0(5) i1(3); u1: i0 i1 i2; u2: i1 i2; u3: i2 i3 (weights 1)."""
    pairs = [(0, 0, 5.0), (0, 1, 3.0), (1, 0, 1), (1, 1, 1), (1, 2, 1), (2, 1, 1), (2, 2, 1)]
    pairs += [(3, 2, 1), (3, 3, 1)]
    users, items, weights = (np.array(column) for column in zip(*pairs, strict=True))
    return TrainData(
        user_idx=users.astype(np.int64),
        item_idx=items.astype(np.int64),
        weight=weights.astype(np.float64),
        ts=None,
        n_users=4,
        n_items=4,
        item_ids=np.array([10, 20, 30, 40]),
    )


def test_sar_fold_in_equals_the_scores_of_an_equivalent_existing_user() -> None:
    model = SARRecommender(similarity="counts", time_decay_half_life_days=None).fit(tiny_train())
    # user 0 has i0 (rating 5) and i1 (rating 3); co-occurrence counts: C[0] = [2, 2, 1, 0],
    # C[1] = [2, 3, 2, 0], so a new user with the same ratings scores 5*C[0] + 3*C[1].
    folded = model.fold_in_scores(np.array([0, 1]), np.array([5.0, 3.0]))
    np.testing.assert_allclose(folded, [16, 19, 11, 0])
    np.testing.assert_allclose(folded, model.scores(np.array([0]), exclude_seen=False)[0])


def test_item_knn_fold_in_sums_the_neighbour_similarities() -> None:
    model = ItemKNNRecommender(n_neighbors=3).fit(tiny_train())
    folded = model.fold_in_scores(np.array([0, 1]), np.array([5.0, 3.0]))  # weights ignored
    expected = model.item_similarity[[0, 1]].toarray().sum(axis=0)
    np.testing.assert_allclose(folded, expected, rtol=1e-6)
    np.testing.assert_allclose(folded, model.scores(np.array([0]), exclude_seen=False)[0])


def test_als_fold_in_solves_the_normal_equations_by_hand() -> None:
    model = ALSRecommender(factors=1, regularization=0.5, alpha=1.0, weighting="none")
    model.n_items = 2
    model.item_factors = np.array([[1.0], [2.0]], dtype=np.float32)
    # history {i0}: c0 = 1 + 1 * 1 = 2; (Y^T Y + (c0 - 1) y0 y0^T + reg) x = c0 y0
    # (5 + 1 + 0.5) x = 2  ->  x = 2 / 6.5
    x = model.fold_in_user_factor(np.array([0]))
    np.testing.assert_allclose(x, [2 / 6.5], rtol=1e-6)
    np.testing.assert_allclose(model.fold_in_scores(np.array([0])), [2 / 6.5, 4 / 6.5], rtol=1e-6)


@pytest.mark.parametrize("weighting", ["none", "linear", "bm25", "tfidf"])
def test_als_fold_in_of_an_existing_history_recovers_the_trained_factor(weighting) -> None:
    rng = np.random.default_rng(0)
    users, items = np.nonzero(rng.random((40, 30)) < 0.2)
    weights = rng.integers(1, 6, len(users)).astype(np.float64)
    train = TrainData(
        user_idx=users.astype(np.int64),
        item_idx=items.astype(np.int64),
        weight=weights,
        ts=None,
        n_users=40,
        n_items=30,
        item_ids=np.arange(30),
    )
    model = ALSRecommender(
        factors=4,
        regularization=0.1,
        alpha=2.0,
        weighting=weighting,
        iterations=50,
        num_threads=1,
        use_gpu=False,
    ).fit(train)
    for user in range(5):
        mine = users == user
        folded = model.fold_in_scores(items[mine], weights[mine])
        trained = model.scores(np.array([user]), exclude_seen=False)[0]
        # implicit's conjugate-gradient sweeps stop near, not at, the exact solve
        np.testing.assert_allclose(folded, trained, atol=0.03 * np.abs(trained).max())


def test_similar_items_rank_by_similarity_and_leave_the_item_out() -> None:
    sar = SARRecommender(similarity="counts", time_decay_half_life_days=None).fit(tiny_train())
    items, scores = most_similar(sar, np.array([1]), 3)
    assert items.tolist() == [[0, 2, -1]]  # C[1] = [2, 3, 2, 0]: tie to the smaller index; no i3
    assert scores[0, :2].tolist() == [2.0, 2.0]
    als = ALSRecommender(factors=2)
    als.n_items = 3
    als.item_factors = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]], dtype=np.float32)
    items, scores = most_similar(als, np.array([0]), 2)
    assert items.tolist() == [[1, 2]]
    np.testing.assert_allclose(scores[0], [1 / np.sqrt(1.01), 0.0], atol=1e-6)
    knn = ItemKNNRecommender(n_neighbors=2).fit(tiny_train())
    assert 3 not in most_similar(knn, np.array([3]), 3)[0][0]


def test_explanations_are_the_largest_affinity_times_similarity_terms() -> None:
    model = SARRecommender(similarity="counts", time_decay_half_life_days=None).fit(tiny_train())
    history, affinity = model.user_history(0)
    assert history.tolist() == [0, 1] and affinity.tolist() == [5.0, 3.0]
    # item 2: 5 * C[0, 2] = 5 and 3 * C[1, 2] = 6, so i1 comes first
    assert model.explain(history, affinity, np.array([2]), k=3) == [[(1, 6.0), (0, 5.0)]]
    # item 3 never co-occurs with the history: nothing explains it
    assert model.explain(history, affinity, np.array([3]), k=3) == [[]]
    knn = ItemKNNRecommender(n_neighbors=3).fit(tiny_train())
    (because,) = knn.explain(np.array([0, 1]), np.array([5.0, 3.0]), np.array([2]), k=1)
    assert because == [(1, pytest.approx(float(knn.item_similarity[1, 2])))]


# ------------------------------------------------------------------------------------------
# The service on the session's ML-100k run (input errors: tests/test_serving_small.py)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(trained_run) -> RecommendationService:
    return RecommendationService(
        trained_run.data.best_model, trained_run.data.best_model_per_family, trained_run.pathspec
    )


@pytest.fixture(scope="module")
def per_family(trained_run) -> dict:
    return trained_run.data.best_model_per_family


def train_items_of(bundle, user_id) -> set:
    """Raw item ids a raw user has in train, read from the model's seen matrix."""
    user_idx = bundle.user_map.to_idx([user_id])[0]
    return set(bundle.item_map.to_raw(bundle.model._seen[user_idx].indices).tolist())


def some_user(bundle):
    """A known raw user with a long train history (a stable, well-explained case)."""
    counts = np.diff(bundle.model._seen.indptr)
    return bundle.user_map.raw_ids[int(np.argmax(counts))].item()


def assert_response(response: dict, k: int) -> None:
    """Shape every response shares, and plain json.dumps must work."""
    json.dumps(response)
    assert set(response) >= {"strategy", "cold_start", "served_by", "k", "items"}
    assert set(response) >= {"rules_applied", "warnings"}
    assert response["k"] == k and len(response["items"]) <= k
    assert [item["rank"] for item in response["items"]] == list(
        range(1, len(response["items"]) + 1)
    )
    organic = [item["score"] for item in response["items"] if not item["forced"]]
    assert organic == sorted(organic, reverse=True)


@pytest.mark.slow
def test_info_says_which_family_serves_what(service, trained_run) -> None:
    info = service.info()
    json.dumps(info)
    assert info["family"] == trained_run.data.best_model_name
    assert info["run"] == trained_run.pathspec
    assert info["n_items"] == len(trained_run.data.best_model.item_map)
    assert info["capabilities"]["known_users"] == info["family"]
    folds_in = {"sar", "item_knn", "ease", "als", "recency_blend"}
    assert info["capabilities"]["fold_in"] in folds_in
    assert info["capabilities"]["similar_items"] in folds_in | {"two_tower"}


@pytest.mark.slow
def test_from_run_loads_the_run_by_id_pathspec_and_tag(trained_run) -> None:
    by_id = RecommendationService.from_run(run_id=trained_run.id)
    assert by_id.info()["run"] == trained_run.pathspec
    by_pathspec = RecommendationService.from_run(run_id=trained_run.pathspec)
    assert by_pathspec.info()["family"] == trained_run.data.best_model_name
    tag = f"best_model:{trained_run.data.best_model_name}"
    by_tag = RecommendationService.from_run(tag=tag)
    from metaflow import Run

    assert tag in Run(by_tag.info()["run"]).tags


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"run_id": "987654321"}, "not found"),
        ({"run_id": "OtherFlow/1"}, "not a run of TrainFlow"),
        ({"tag": "no-such-tag"}, "no successful TrainFlow run has the tag"),
        ({"run_id": "1", "tag": "x"}, "not both"),
        ({"flow_name": "NoSuchFlow"}, "not found"),
    ],
)
@pytest.mark.slow
def test_from_run_rejects_missing_runs(trained_run, kwargs, message) -> None:
    with pytest.raises(InputError, match=message):
        RecommendationService.from_run(**kwargs)


@pytest.mark.slow
def test_known_user_gets_k_unseen_items_with_titles(service, trained_run) -> None:
    best = trained_run.data.best_model
    user = some_user(best)
    response = service.recommend(user, k=10)
    assert_response(response, 10)
    assert response["strategy"] == "model" and response["cold_start"] is False
    assert response["served_by"] == best.family and response["user_id"] == user
    ids = [item["item_id"] for item in response["items"]]
    assert len(ids) == 10 and not set(ids) & train_items_of(best, user)
    assert all(isinstance(item["title"], str) and item["title"] for item in response["items"])
    # the winner's own top-10 (bundle.recommend) is what the service serves
    assert ids == best.recommend(user, k=10)["item_id"].tolist()
    # raw ids arrive as strings from URLs and the command line
    assert service.recommend(str(user), k=10)["items"] == response["items"]


@pytest.mark.slow
def test_unknown_user_gets_the_cold_start_popularity_list(service, trained_run) -> None:
    response = service.recommend(999_999, k=5)
    assert_response(response, 5)
    assert response["cold_start"] is True and response["strategy"] == "cold_start_popularity"
    best = trained_run.data.best_model
    users_per_item = np.bincount(best.model._seen.indices, minlength=len(best.item_map))
    order = sorted(
        range(len(users_per_item)), key=lambda i: (-users_per_item[i], best.item_map.raw_ids[i])
    )
    assert [item["item_id"] for item in response["items"]] == [
        best.item_map.raw_ids[i].item() for i in order[:5]
    ]
    assert response["items"][0]["score"] == float(users_per_item.max())


@pytest.mark.slow
def test_recommend_many_keeps_the_order_and_mixes_known_and_cold(service, trained_run) -> None:
    user = some_user(trained_run.data.best_model)
    responses = service.recommend_many([user, 999_999, str(user)], k=3)
    assert [r["cold_start"] for r in responses] == [False, True, False]
    assert responses[0]["items"] == responses[2]["items"]


LIKED = [50, 172, 181]  # Star Wars, The Empire Strikes Back, Return of the Jedi


@pytest.mark.slow
def test_new_user_is_folded_in_by_a_capable_family(service) -> None:
    response = service.recommend_for_items(LIKED, ratings=[5, 4, 5], k=10)
    assert_response(response, 10)
    assert response["user_id"] is None and response["cold_start"] is True
    assert response["strategy"] == "fold_in"
    assert response["served_by"] == service.info()["capabilities"]["fold_in"]
    ids = [item["item_id"] for item in response["items"]]
    assert len(ids) == 10 and not set(ids) & set(LIKED)
    popular = [item["item_id"] for item in service.recommend(999_999, k=13)["items"]]
    popular_without_liked = [i for i in popular if i not in LIKED][:10]
    assert ids != popular_without_liked


@pytest.mark.parametrize("family", ["sar", "item_knn", "als"])
@pytest.mark.slow
def test_every_capable_family_folds_in_and_explains_when_it_can(per_family, family) -> None:
    service = RecommendationService(per_family[family], per_family)
    response = service.recommend_for_items(LIKED, k=5, explain=True)
    assert response["served_by"] == family and response["strategy"] == "fold_in"
    assert not {item["item_id"] for item in response["items"]} & set(LIKED)
    if family == "als":
        assert any("explanations are not available" in w for w in response["warnings"])
        assert all("because" not in item for item in response["items"])
    else:
        for item in response["items"]:
            assert item["because"] and {b["item_id"] for b in item["because"]} <= set(LIKED)


@pytest.mark.slow
def test_fold_in_falls_back_to_popularity_when_no_family_can(per_family) -> None:
    service = RecommendationService(per_family["popularity"], None)
    response = service.recommend_for_items(LIKED, k=5)
    assert response["strategy"] == "fallback_popularity"
    assert response["served_by"] == "popularity" and response["warnings"]
    assert not {item["item_id"] for item in response["items"]} & set(LIKED)
    similar = service.similar_items(50, k=5)
    assert similar["strategy"] == "fallback_popularity" and similar["warnings"]


@pytest.mark.slow
def test_similar_items_for_star_wars_are_related(service, trained_run) -> None:
    response = service.similar_items(50, k=10)
    assert_response(response, 10)
    assert response["item_id"] == 50
    ids = [item["item_id"] for item in response["items"]]
    assert 50 not in ids
    # the sequels: verified in the data, most of Star Wars' raters also rated them
    best = trained_run.data.best_model
    seen = best.model._seen.tocsc()
    raters = {i: set(seen[:, best.item_map.to_idx([i])[0]].indices) for i in (50, 172, 181)}
    assert len(raters[50] & raters[181]) / len(raters[181]) > 0.8
    assert {172, 181} & set(ids)


@pytest.mark.parametrize("family", ["sar", "item_knn", "als"])
@pytest.mark.slow
def test_similar_items_of_each_family(per_family, family) -> None:
    response = RecommendationService(per_family[family]).similar_items("50", k=10)
    assert response["served_by"] == family
    ids = [item["item_id"] for item in response["items"]]
    assert 50 not in ids and {172, 181} & set(ids)


@pytest.mark.slow
def test_similar_items_of_an_unknown_item_is_an_input_error(service) -> None:
    with pytest.raises(InputError, match="not in the model's catalogue"):
        service.similar_items(99_999_999)


@pytest.mark.parametrize("family", ["sar", "item_knn"])
@pytest.mark.slow
def test_explanations_come_from_the_users_train_history(per_family, family) -> None:
    bundle = per_family[family]
    user = some_user(bundle)
    response = RecommendationService(bundle, per_family).recommend(user, k=5, explain=True)
    history = train_items_of(bundle, user)
    for item in response["items"]:
        assert item["because"], item
        assert {b["item_id"] for b in item["because"]} <= history
        weights = [b["weight"] for b in item["because"]]
        assert weights == sorted(weights, reverse=True) and weights[0] > 0
        assert all(b["title"] for b in item["because"])


@pytest.mark.slow
def test_explain_where_unsupported_warns_without_because(per_family) -> None:
    service = RecommendationService(per_family["popularity"], per_family)
    response = service.recommend(some_user(per_family["popularity"]), k=3, explain=True)
    assert any("explanations are not available" in w for w in response["warnings"])
    assert all("because" not in item for item in response["items"])
    cold = service.recommend(999_999, k=3, explain=True)
    assert cold["warnings"] and all("because" not in item for item in cold["items"])
