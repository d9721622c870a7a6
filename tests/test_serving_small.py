"""RecommendationService on a small fitted run built in-process (tests/small_run.py): seconds.

Known users, cold start, fold-in, similar items, explanations, routing by capability, the one
popularity definition, input errors and concurrent requests. The same behaviours on the
session's ML-100k flow run are in tests/test_serving.py (marked slow).
"""

from __future__ import annotations

import json
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from reclab.bundle import ModelBundle
from reclab.errors import InputError
from reclab.popularity import interaction_counts
from reclab.serving import MAX_BATCH_USERS, RecommendationService
from tests.small_run import (
    ITEM_IDS,
    REPEATED_ITEM,
    UNKNOWN_USER,
    USER_IDS,
    bundle_of,
    fitted_models,
    item_metadata,
    ranked_raw_ids,
    rows_per_item,
    small_run,
    small_train,
)


@pytest.fixture(scope="module")
def run() -> dict[str, ModelBundle]:
    return small_run()


@pytest.fixture(scope="module")
def service(run) -> RecommendationService:
    """The SAR winner, the other families behind it (leaderboard order)."""
    return RecommendationService(run["sar"], run, "TrainFlow/small")


def assert_response(response: dict, k: int) -> None:
    """Shape every response shares, and plain json.dumps must work."""
    json.dumps(response)
    assert list(response)[-7:] == [
        "strategy",
        "cold_start",
        "served_by",
        "k",
        "items",
        "rules_applied",
        "warnings",
    ]
    assert response["k"] == k and len(response["items"]) <= k
    assert [item["rank"] for item in response["items"]] == list(
        range(1, len(response["items"]) + 1)
    )
    organic = [item["score"] for item in response["items"] if not item["forced"]]
    assert organic == sorted(organic, reverse=True)


def history_of(bundle: ModelBundle, user_id: int) -> set:
    """A known user's train items through the model's public user_history."""
    items, _ = bundle.model.user_history(int(bundle.user_map.to_idx([user_id])[0]))
    return set(bundle.item_map.to_raw(items).tolist())


def ids(response: dict) -> list:
    return [item["item_id"] for item in response["items"]]


def test_info_routes_each_capability_to_the_first_family_that_has_it(run) -> None:
    info = RecommendationService(run["popularity"], run, "TrainFlow/small").info()
    json.dumps(info)
    assert info["family"] == "popularity" and info["run"] == "TrainFlow/small"
    assert info["families"] == ["popularity", "sar", "item_knn", "als"]
    assert info["n_users"] == len(USER_IDS) and info["n_items"] == len(ITEM_IDS)
    assert info["capabilities"] == {
        "known_users": "popularity",
        "cold_start": "popularity",
        "fold_in": "sar",
        "similar_items": "sar",
        "explain_known_users": False,
        "explain_fold_in": True,
    }
    als_first = {"als": run["als"], "sar": run["sar"]}
    caps = RecommendationService(run["als"], als_first).info()["capabilities"]
    assert caps["fold_in"] == "als" and caps["explain_fold_in"] is False
    assert caps["explain_known_users"] is False


def test_known_user_gets_the_winners_top_k_without_train_items(run, service) -> None:
    user = int(USER_IDS[3])
    response = service.recommend(user, k=5)
    assert_response(response, 5)
    assert response["user_id"] == user and response["cold_start"] is False
    assert response["strategy"] == "model" and response["served_by"] == "sar"
    assert len(ids(response)) == 5 and not set(ids(response)) & history_of(run["sar"], user)
    assert ids(response) == run["sar"].recommend(user, k=5)["item_id"].tolist()
    assert all(item["title"] == f"Item {item['item_id']}" for item in response["items"])
    assert service.recommend(str(user), k=5) == response


def test_cold_start_serves_the_popularity_baselines_ranking_by_interactions(run) -> None:
    train = small_train()
    rows = rows_per_item(train)
    users = np.array([len(set(train.user_idx[train.item_idx == i])) for i in range(12)])
    assert ranked_raw_ids(rows)[:5] != ranked_raw_ids(users)[:5]  # the data tells them apart
    assert ranked_raw_ids(rows)[0] == REPEATED_ITEM
    baseline = run["popularity"].model
    evaluated = ITEM_IDS[np.argsort(-baseline.item_scores, kind="stable")].tolist()
    assert evaluated == ranked_raw_ids(rows)
    for winner in ("sar", "popularity", "item_knn", "als"):
        response = RecommendationService(run[winner], run).recommend(UNKNOWN_USER, k=6)
        assert_response(response, 6)
        assert response["cold_start"] is True and response["strategy"] == "cold_start_popularity"
        assert response["served_by"] == "popularity"
        assert ids(response) == ranked_raw_ids(rows)[:6]
        assert response["items"][0]["score"] == rows.max()


def test_popularity_comes_from_the_bundle_when_the_run_has_no_popularity_candidate() -> None:
    train = small_train()
    sar = fitted_models(train)["sar"]
    counts = interaction_counts(train.item_idx, train.n_items)
    carried = bundle_of("sar", sar, item_metadata(), item_popularity=counts)
    response = RecommendationService(carried).recommend(UNKNOWN_USER, k=4)
    assert ids(response) == ranked_raw_ids(rows_per_item(train))[:4]
    bare = RecommendationService(bundle_of("sar", sar, item_metadata()), None, "TrainFlow/7")
    assert bare.info()["capabilities"]["cold_start"] is None
    with pytest.raises(InputError, match="TrainFlow/7 has no popularity ranking"):
        bare.recommend(UNKNOWN_USER)
    with pytest.raises(InputError, match="exclude_top_popular needs the run's popularity"):
        bare.recommend(int(USER_IDS[0]), rules={"exclude_top_popular": 2})
    assert bare.recommend(int(USER_IDS[0]), k=2)["strategy"] == "model"
    assert bare.similar_items(int(ITEM_IDS[0]), k=2)["served_by"] == "sar"


def test_recommend_many_keeps_the_order_and_mixes_known_and_cold(service) -> None:
    user = int(USER_IDS[0])
    responses = service.recommend_many([user, UNKNOWN_USER, str(user)], k=3)
    assert [r["cold_start"] for r in responses] == [False, True, False]
    assert responses[0]["items"] == responses[2]["items"]
    assert [r["user_id"] for r in responses] == [user, UNKNOWN_USER, user]


LIKED = [205, 203]  # cluster A items


@pytest.mark.parametrize("family", ["sar", "item_knn", "als"])
def test_each_capable_family_folds_in_and_explains_when_it_can(run, family) -> None:
    service = RecommendationService(run[family], run)
    response = service.recommend_for_items(LIKED, ratings=[5, 4], k=4, explain=True)
    assert_response(response, 4)
    assert response["user_id"] is None and response["cold_start"] is True
    assert response["served_by"] == family and response["strategy"] == "fold_in"
    assert len(ids(response)) == 4 and not set(ids(response)) & set(LIKED)
    if family == "als":
        assert any("explanations are not available for als" in w for w in response["warnings"])
        assert all("because" not in item for item in response["items"])
    else:
        explained = [item for item in response["items"] if item["because"]]
        assert explained, response
        for item in explained:
            assert {b["item_id"] for b in item["because"]} <= set(LIKED)
            assert all(b["title"] == f"Item {b['item_id']}" for b in item["because"])


def test_fold_in_by_the_router_when_the_winner_cannot(run) -> None:
    service = RecommendationService(run["popularity"], run)
    response = service.recommend_for_items(LIKED, k=3)
    assert response["strategy"] == "fold_in" and response["served_by"] == "sar"
    sar_model = run["sar"].model
    history = run["sar"].item_map.to_idx(LIKED)
    scores = sar_model.fold_in_scores(np.sort(history), None).astype(np.float64)
    assert response["items"][0]["score"] == pytest.approx(np.max(np.delete(scores, history)))


def test_fold_in_falls_back_to_popularity_when_no_family_can(run) -> None:
    service = RecommendationService(run["popularity"], None)
    response = service.recommend_for_items([REPEATED_ITEM], k=5)
    assert response["strategy"] == "fallback_popularity" and response["served_by"] == "popularity"
    assert any("no family of this run can fold in" in w for w in response["warnings"])
    expected = [i for i in ranked_raw_ids(rows_per_item(small_train())) if i != REPEATED_ITEM]
    assert ids(response) == expected[:5]
    similar = service.similar_items(REPEATED_ITEM, k=3)
    assert similar["strategy"] == "fallback_popularity" and similar["warnings"]
    assert ids(similar) == expected[:3]


def test_unknown_history_items_are_ignored_with_a_warning(service) -> None:
    response = service.recommend_for_items([205, 99_999_999], k=3)
    assert response["strategy"] == "fold_in"
    assert any("99999999" in w for w in response["warnings"])
    response = service.recommend_for_items([99_999_999], k=3)
    assert response["strategy"] == "fallback_popularity" and response["warnings"]
    assert service.recommend_for_items([], k=3)["strategy"] == "cold_start_popularity"
    # a repeated item adds up its ratings: the same answer as one item with the sum
    twice = service.recommend_for_items([205, 205, 203], ratings=[2, 3, 4], k=4)
    once = service.recommend_for_items([205, 203], ratings=[5, 4], k=4)
    assert twice["items"] == once["items"]


@pytest.mark.parametrize("family", ["sar", "item_knn", "als"])
def test_similar_items_of_each_family(run, family) -> None:
    response = RecommendationService(run[family]).similar_items("205", k=4)
    assert_response(response, 4)
    assert response["item_id"] == 205 and response["served_by"] == family
    assert response["strategy"] == "model" and response["cold_start"] is False
    assert 205 not in ids(response)
    scores = run[family].model.item_similarity_scores(0)
    best = ITEM_IDS[int(np.argmax(scores))]
    assert ids(response)[0] == best


def test_similar_items_of_an_unknown_item_is_an_input_error(service) -> None:
    with pytest.raises(InputError, match="not in the model's catalogue"):
        service.similar_items(99_999_999)


@pytest.mark.parametrize("family", ["sar", "item_knn"])
def test_explanations_come_from_the_users_train_history(run, family) -> None:
    user = int(USER_IDS[5])
    response = RecommendationService(run[family], run).recommend(user, k=3, explain=True)
    history = history_of(run[family], user)
    explained = [item for item in response["items"] if item["because"]]
    assert explained
    for item in explained:
        assert {b["item_id"] for b in item["because"]} <= history
        weights = [b["weight"] for b in item["because"]]
        assert weights == sorted(weights, reverse=True) and weights[0] > 0


def test_explain_where_unsupported_warns_without_because(run) -> None:
    service = RecommendationService(run["popularity"], run)
    response = service.recommend(int(USER_IDS[0]), k=3, explain=True)
    assert any("explanations are not available" in w for w in response["warnings"])
    assert all("because" not in item for item in response["items"])
    cold = service.recommend(UNKNOWN_USER, k=3, explain=True)
    assert cold["warnings"] and all("because" not in item for item in cold["items"])


def test_a_bundle_on_an_unrelated_catalogue_is_not_routed_to(run) -> None:
    # A catalogue that overlaps is translated by raw id (tests/test_production.py); one that
    # shares no item with the served catalogue cannot answer anything.
    other = pickle.loads(pickle.dumps(run["item_knn"]))
    other.item_map = type(other.item_map)("item_id", ITEM_IDS + 1000, 1)
    service = RecommendationService(run["popularity"], {"item_knn": other, "als": run["als"]})
    assert service.info()["families"] == ["popularity", "als"]
    shifted = pickle.loads(pickle.dumps(run["item_knn"]))
    shifted.item_map = type(shifted.item_map)("item_id", ITEM_IDS + 1, 1)
    service = RecommendationService(run["popularity"], {"item_knn": shifted, "als": run["als"]})
    assert service.info()["families"] == ["popularity", "item_knn", "als"]


@pytest.mark.parametrize("k", [0, -1, 101, True, "5", 2.5, None])
def test_bad_k_is_an_input_error(service, k) -> None:
    with pytest.raises(InputError, match="k must be an integer from 1 to 100"):
        service.recommend(int(USER_IDS[0]), k=k)


@pytest.mark.parametrize("user_id", ["abc", None, True, 1.5, [1]])
def test_bad_user_id_is_an_input_error(service, user_id) -> None:
    with pytest.raises(InputError, match="user id"):
        service.recommend(user_id)


@pytest.mark.parametrize(
    "items, ratings, message",
    [
        ("205", None, "items must be a list"),
        ([205, "x"], None, "item id 'x' is not an integer"),
        ([205, 203], [5], "one number per item"),
        ([205], [0], "positive numbers"),
        ([205], [float("nan")], "positive numbers"),
        ([205], ["5"], "positive numbers"),
        ([205], [True], "positive numbers"),
        ([205] * 10_001, None, "at most 10000 items"),
    ],
)
def test_bad_history_is_an_input_error(service, items, ratings, message) -> None:
    with pytest.raises(InputError, match=message):
        service.recommend_for_items(items, ratings=ratings)


def test_recommend_many_rejects_a_non_list_and_too_many_users(service) -> None:
    with pytest.raises(InputError, match="user_ids must be a list"):
        service.recommend_many(1000)
    with pytest.raises(InputError, match=f"at most {MAX_BATCH_USERS} users"):
        service.recommend_many([1000] * (MAX_BATCH_USERS + 1))


def test_a_bundle_deserialises_its_model_once_under_concurrent_first_use(run) -> None:
    fresh = pickle.loads(pickle.dumps(run["sar"]))  # as the Metaflow client hands it over
    assert fresh.item_popularity is None and fresh._model is None
    start = threading.Barrier(8)

    def first_use(_: int):
        start.wait()
        return fresh.model

    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(first_use, range(8)))
    assert all(model is models[0] for model in models)


def test_a_bundle_pickled_before_item_popularity_still_loads(run) -> None:
    state = run["sar"].__getstate__()
    del state["item_popularity"]
    old = ModelBundle.__new__(ModelBundle)
    old.__setstate__(state)
    assert old.item_popularity is None and old.model.family == "sar"


REQUESTS = [
    ("recommend", (int(USER_IDS[2]),), {"k": 4, "explain": True}),
    ("recommend", (UNKNOWN_USER,), {"k": 4, "rules": {"exclude_top_popular": 2}}),
    ("recommend_for_items", (LIKED,), {"k": 4, "explain": True}),
    ("similar_items", (205,), {"k": 4, "rules": {"filters": {"item_genres": ["drama"]}}}),
    ("recommend_many", ([1000, 1021, UNKNOWN_USER],), {"k": 3}),
    ("recommend", (1030,), {"k": 5, "rules": {"include_items": [{"item_id": 1, "position": 2}]}}),
]


def test_concurrent_requests_get_the_same_answers_as_serial_ones() -> None:
    """Many threads on one fresh service (models not yet deserialised) answer as one does."""
    serial_run = small_run()
    serial = RecommendationService(serial_run["item_knn"], serial_run)
    expected = [getattr(serial, name)(*args, **kwargs) for name, args, kwargs in REQUESTS]
    fresh = {family: pickle.loads(pickle.dumps(b)) for family, b in small_run().items()}
    shared = RecommendationService(fresh["item_knn"], fresh)
    calls = [i % len(REQUESTS) for i in range(96)]
    start = threading.Barrier(8)

    def call(n: int):
        if n < 8:
            start.wait()  # the first eight start together, on cold bundles
        name, args, kwargs = REQUESTS[calls[n]]
        return getattr(shared, name)(*args, **kwargs)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(len(calls))))
    for i, answer in zip(calls, answers, strict=True):
        assert answer == expected[i], REQUESTS[i]
