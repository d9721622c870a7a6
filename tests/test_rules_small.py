"""Business rules applied by the service on the small fitted run (tests/small_run.py): seconds.

The same rules on the session's ML-100k flow run are in tests/test_rules.py (marked slow).
"""

from __future__ import annotations

import json

import pytest

from reclab.errors import InputError
from reclab.serving import RecommendationService
from tests import small_run as small

USER = int(small.USER_IDS[24])  # a cluster B user


@pytest.fixture(scope="module")
def run():
    return small.small_run()


@pytest.fixture(scope="module")
def service(run) -> RecommendationService:
    return RecommendationService(run["item_knn"], run)


def ids(response: dict) -> list:
    json.dumps(response)
    return [item["item_id"] for item in response["items"]]


def most_popular(n: int) -> list:
    """The n items with the most train interactions (ties: smaller raw id), counted by hand."""
    return small.ranked_raw_ids(small.rows_per_item(small.small_train()))[:n]


def test_excluded_items_are_absent_and_the_rest_keep_their_order(service) -> None:
    plain = ids(service.recommend(USER, k=8))
    response = service.recommend(USER, k=8, rules={"exclude_items": plain[:2] + [99_999_999]})
    assert not set(ids(response)) & set(plain[:2])
    assert ids(response)[:6] == plain[2:]
    assert response["rules_applied"] == ["exclude_items: 3 item(s)"]
    assert any("[99999999] are not in the catalogue" in w for w in response["warnings"])


def test_top_popular_items_by_interactions_are_absent(service) -> None:
    top = most_popular(3)
    for response in (
        service.recommend(USER, k=5, rules={"exclude_top_popular": 3}),
        service.recommend(small.UNKNOWN_USER, k=5, rules={"exclude_top_popular": 3}),
        service.recommend_for_items([205, 203], k=5, rules={"exclude_top_popular": 3}),
    ):
        assert ids(response) and not set(ids(response)) & set(top)
        assert response["rules_applied"] == ["exclude_top_popular: 3"]
    cold = service.recommend(small.UNKNOWN_USER, k=4, rules={"exclude_top_popular": 3})
    assert ids(cold) == most_popular(7)[3:]


def test_forced_items_are_at_their_positions(service) -> None:
    plain = ids(service.recommend(USER, k=6))
    rules = {
        "include_items": [
            {"item_id": 777, "position": 1},  # not in the catalogue: shown as given
            {"item_id": str(plain[3]), "position": 2},  # already in the list: moved
            {"item_id": 201, "position": 4},
        ]
    }
    response = service.recommend(USER, k=6, rules=rules)
    got = ids(response)
    assert got[0] == 777 and got[1] == plain[3] and got[3] == 201 and len(set(got)) == 6
    forced = [item for item in response["items"] if item["forced"]]
    assert [item["rank"] for item in forced] == [1, 2, 4]
    assert all(item["score"] is None for item in forced)
    assert forced[0]["title"] is None and forced[2]["title"] == "Item 201"
    organic = [i for i in got if i not in (777, plain[3], 201)]
    assert organic == [i for i in plain if i not in (plain[3], 201)][:3]
    assert response["rules_applied"] == [f"include_items: 777@1, {plain[3]}@2, 201@4"]


def test_forced_items_move_up_or_drop_out_with_a_warning(service) -> None:
    rules = {
        "exclude_items": [int(raw) for raw in small.ITEM_IDS[:-1]],
        "include_items": [{"item_id": 1, "position": 4}],
    }
    response = service.recommend(small.UNKNOWN_USER, k=5, rules=rules)
    assert ids(response) == [int(small.ITEM_IDS[-1]), 1]
    assert any("moved from position 4 to 2" in w for w in response["warnings"])
    assert any("only 2 of the 5 requested items" in w for w in response["warnings"])
    beyond = service.recommend(USER, k=3, rules={"include_items": [{"item_id": 1, "position": 9}]})
    assert 1 not in ids(beyond) and any("beyond k=3" in w for w in beyond["warnings"])


def test_filters_match_list_members_case_insensitively_and_numbers(service) -> None:
    metadata = small.item_metadata()
    response = service.recommend(USER, k=10, rules={"filters": {"item_genres": ["adventure"]}})
    expected = {raw for raw, g in metadata["item_genres"].items() if "Adventure" in g}
    assert ids(response) and set(ids(response)) <= expected
    assert all("Adventure" in item["item_genres"] for item in response["items"])
    rules = {"filters": {"item_genres": ["COMEDY", "sci-fi"], "item_year": ["1990", 1991]}}
    response = service.recommend(small.UNKNOWN_USER, k=12, rules=rules)
    passing = [
        raw
        for raw, row in metadata.iterrows()
        if {"Comedy", "Sci-Fi"} & set(row["item_genres"]) and row["item_year"] in (1990, 1991)
    ]
    assert sorted(ids(response)) == sorted(passing)
    assert response["rules_applied"] == [
        "filter item_genres in ['COMEDY', 'sci-fi']",
        "filter item_year in ['1990', 1991]",
    ]


def test_filter_values_no_item_has_are_reported(service) -> None:
    rules = {"filters": {"item_genres": ["Drama", "Western"], "item_year": [1800, 1992]}}
    response = service.recommend(small.UNKNOWN_USER, k=3, rules=rules)
    assert any(
        "no item has the value(s) ['Western']" in w and "values look like ['adventure'" in w
        for w in response["warnings"]
    )
    assert any(
        "no item has the value(s) [1800]" in w and "values look like [1990.0" in w
        for w in response["warnings"]
    )


def test_rules_that_leave_no_items_say_so(service) -> None:
    rules = {"filters": {"item_genres": ["Drama"], "item_year": [1800]}}
    response = service.recommend(USER, k=5, rules=rules)
    assert response["items"] == []
    assert any("removed all" in w for w in response["warnings"])


def test_filters_without_metadata_are_an_input_error() -> None:
    sar = small.fitted_models(small.small_train())["sar"]
    service = RecommendationService(small.bundle_of("sar", sar, None))
    with pytest.raises(InputError, match="no item metadata"):
        service.recommend(USER, rules={"filters": {"item_genres": ["Drama"]}})
    response = service.recommend(USER, k=2)
    assert all(set(item) == {"rank", "item_id", "score", "forced"} for item in response["items"])


@pytest.mark.parametrize(
    "rules, message",
    [
        ({"filters": {"genre": ["Comedy"]}}, "unknown metadata column 'genre'"),
        ({"filters": {"item_year": ["nineteen"]}}, "is not a number"),
        ({"exclude_items": ["abc"]}, "is not an integer"),
        ({"include_items": [{"item_id": "x1", "position": 1}]}, "is not an integer"),
        ({"exclude_top_popular": -1}, "integer >= 0"),
        ({"include_items": [{"item_id": 1, "position": 0}]}, "position must be an integer >= 1"),
    ],
)
def test_rules_that_do_not_fit_the_catalogue_are_input_errors(service, rules, message) -> None:
    with pytest.raises(InputError, match=message):
        service.recommend(USER, k=5, rules=rules)


def test_rules_apply_the_same_on_every_route(service) -> None:
    rules = {"exclude_items": [201], "filters": {"item_genres": ["Comedy", "Sci-Fi"]}}
    genres = small.item_metadata()["item_genres"]
    comedy_or_scifi = {raw for raw, g in genres.items() if {"Comedy", "Sci-Fi"} & set(g)}
    for response in (
        service.recommend(USER, k=4, rules=rules),
        service.recommend_many([USER, small.UNKNOWN_USER], k=4, rules=rules)[1],
        service.recommend_for_items([205], k=4, rules=rules),
        service.similar_items(203, k=4, rules=rules),
    ):
        got = ids(response)
        assert got and 201 not in got and set(got) <= comedy_or_scifi
        assert len(response["rules_applied"]) == 2
