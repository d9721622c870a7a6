"""Business rules: validation of the JSON form, then each rule applied on the ML-100k run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reclab.errors import InputError
from reclab.rules import BusinessRules, ForcedItem
from reclab.serving import RecommendationService

# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------


def test_a_full_rules_dict_is_parsed() -> None:
    rules = BusinessRules.from_dict(
        {
            "exclude_items": [1, "2"],
            "exclude_top_popular": 3,
            "include_items": [{"item_id": 9, "position": 4}, {"item_id": 8, "position": 1}],
            "filters": {"item_genres": ["Comedy"], "item_year": 1995},
        }
    )
    assert rules.exclude_items == (1, "2") and rules.exclude_top_popular == 3
    assert rules.include_items == (ForcedItem(8, 1), ForcedItem(9, 4))  # sorted by position
    assert rules.filters == {"item_genres": ("Comedy",), "item_year": (1995,)}
    assert BusinessRules.from_dict(None).is_empty() and BusinessRules.from_dict({}).is_empty()
    assert BusinessRules.from_dict(rules) is rules


@pytest.mark.parametrize(
    "rules, message",
    [
        ([1, 2], "rules must be a JSON object"),
        ({"exclude": [1]}, "unknown key"),
        ({"exclude_items": 5}, "exclude_items must be a list"),
        ({"exclude_items": [1.5]}, "is not an item id"),
        ({"exclude_items": [True]}, "is not an item id"),
        ({"exclude_top_popular": -1}, "integer >= 0"),
        ({"exclude_top_popular": "3"}, "integer >= 0"),
        ({"exclude_top_popular": True}, "integer >= 0"),
        ({"include_items": {"item_id": 1, "position": 1}}, "must be a list"),
        ({"include_items": [{"item_id": 1}]}, 'exactly the keys "item_id" and "position"'),
        ({"include_items": [{"item_id": 1, "position": 0}]}, r"position must be an integer >= 1"),
        ({"include_items": [{"item_id": 1, "position": 1.0}]}, "position must be an integer"),
        (
            {"include_items": [{"item_id": 1, "position": 1}, {"item_id": 2, "position": 1}]},
            "already taken",
        ),
        (
            {"include_items": [{"item_id": 1, "position": 1}, {"item_id": 1, "position": 2}]},
            "forced twice",
        ),
        (
            {"exclude_items": [1], "include_items": [{"item_id": "1", "position": 1}]},
            "both in exclude_items and include_items",
        ),
        ({"filters": ["Comedy"]}, "rules.filters must be an object"),
        ({"filters": {"item_genres": []}}, "non-empty list"),
        ({"filters": {"item_genres": [None]}}, "not a string or a number"),
    ],
)
def test_bad_rules_are_input_errors(rules, message) -> None:
    with pytest.raises(InputError, match=message):
        BusinessRules.from_dict(rules)


# ------------------------------------------------------------------------------------------
# Rules applied on the session's ML-100k run (catalogue misfits: tests/test_rules_small.py)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(trained_run) -> RecommendationService:
    return RecommendationService(
        trained_run.data.best_model, trained_run.data.best_model_per_family, trained_run.pathspec
    )


@pytest.fixture(scope="module")
def user(trained_run):
    """A known user with a long history."""
    best = trained_run.data.best_model
    return best.user_map.raw_ids[int(np.argmax(np.diff(best.model._seen.indptr)))].item()


def ids(response: dict) -> list:
    json.dumps(response)
    return [item["item_id"] for item in response["items"]]


def most_popular(trained_run, n: int) -> list:
    """The n items with the most distinct train users (ties: smaller raw id), from the data."""
    best = trained_run.data.best_model
    counts = np.bincount(best.model._seen.indices, minlength=len(best.item_map))
    raw = best.item_map.raw_ids
    return [raw[i].item() for i in sorted(range(len(raw)), key=lambda i: (-counts[i], raw[i]))][:n]


@pytest.mark.slow
def test_excluded_items_are_absent_and_the_list_still_has_k(service, user) -> None:
    plain = ids(service.recommend(user, k=10))
    response = service.recommend(user, k=10, rules={"exclude_items": plain[:3] + [99_999_999]})
    assert len(ids(response)) == 10 and not set(ids(response)) & set(plain[:3])
    assert ids(response)[:7] == plain[3:]
    assert response["rules_applied"] and any("99999999" in w for w in response["warnings"])


@pytest.mark.slow
def test_top_popular_items_are_absent(service, user, trained_run) -> None:
    top = most_popular(trained_run, 20)
    for response in (
        service.recommend(user, k=10, rules={"exclude_top_popular": 20}),
        service.recommend(999_999, k=10, rules={"exclude_top_popular": 20}),
        service.recommend_for_items([50, 172, 181], k=10, rules={"exclude_top_popular": 20}),
    ):
        assert len(ids(response)) == 10 and not set(ids(response)) & set(top)
    cold = service.recommend(999_999, k=5, rules={"exclude_top_popular": 20})
    assert ids(cold) == most_popular(trained_run, 25)[20:]


@pytest.mark.slow
def test_forced_items_are_at_their_positions(service, user) -> None:
    plain = ids(service.recommend(user, k=10))
    rules = {
        "include_items": [
            {"item_id": 1682, "position": 1},
            {"item_id": "1681", "position": 4},
            {"item_id": plain[5], "position": 2},  # already in the list: moved, not duplicated
        ]
    }
    response = service.recommend(user, k=10, rules=rules)
    got = ids(response)
    assert len(got) == 10 and len(set(got)) == 10
    assert got[0] == 1682 and got[1] == plain[5] and got[3] == 1681
    forced = [item for item in response["items"] if item["forced"]]
    assert [item["rank"] for item in forced] == [1, 2, 4]
    assert all(item["score"] is None and item["title"] for item in forced)
    organic = [i for i in got if i not in (1682, 1681, plain[5])]
    assert organic == [i for i in plain if i != plain[5]][:7]


@pytest.mark.slow
def test_a_forced_item_beyond_k_is_reported(service, user) -> None:
    response = service.recommend(
        user, k=3, rules={"include_items": [{"item_id": 1, "position": 9}]}
    )
    assert 1 not in ids(response) and any("beyond k=3" in w for w in response["warnings"])


@pytest.mark.slow
def test_genre_filter_keeps_only_matching_items(service, user, trained_run) -> None:
    metadata = trained_run.data.best_model.item_metadata
    response = service.recommend(user, k=10, rules={"filters": {"item_genres": ["Sci-Fi"]}})
    assert len(ids(response)) == 10
    for item in response["items"]:
        assert "Sci-Fi" in list(metadata.loc[item["item_id"], "item_genres"])
        assert "Sci-Fi" in item["item_genres"]
    # membership, case-insensitive, several values and columns combine
    rules = {"filters": {"item_genres": ["film-noir", "western"], "item_year": ["1995", 1996]}}
    response = service.similar_items(50, k=5, rules=rules)
    for item in response["items"]:
        assert {"Film-Noir", "Western"} & set(item["item_genres"])
        assert item["item_year"] in (1995.0, 1996.0)


@pytest.mark.slow
def test_rules_that_leave_no_items_say_so(service, user) -> None:
    rules = {"filters": {"item_genres": ["Documentary"], "item_year": [1800]}}
    response = service.recommend(user, k=10, rules=rules)
    assert response["items"] == []
    assert any("removed all" in w for w in response["warnings"])
    assert any("no item has the value(s) [1800]" in w for w in response["warnings"])
