"""Refit and promotion, without a flow run: the recipe for the refit, the promotion rule, and
serving a refit winner (all items of the run) next to families fitted on train only."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reclab.bundle import ModelBundle
from reclab.id_maps import IdMap
from reclab.models.base import TrainData
from reclab.models.baselines import PopularityRecommender
from reclab.models.ncf import NCFRecommender
from reclab.production import (
    ALL_WINDOWS,
    INCUMBENT_ID,
    Incumbent,
    checked_incumbent,
    decide_promotion,
    refit_params,
    with_incumbent,
    without_refit,
)
from reclab.serving import RecommendationService
from tests.small_run import ITEM_IDS, USER_IDS, bundle_of, fitted_models, small_train
from tests.test_ncf import TINY, _train_with_valid

INCUMBENT = Incumbent(run="TrainFlow/7", family="popularity", params={})


def board(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """A leaderboard as build_leaderboard orders it: (candidate_id, status, valid metric)."""
    frame = pd.DataFrame(rows, columns=["candidate_id", "status", "valid_ndcg_at_10"])
    frame["_failed"] = frame["status"] != "ok"
    frame = frame.sort_values(["_failed", "valid_ndcg_at_10"], ascending=[True, False])
    return frame.drop(columns="_failed").reset_index(drop=True)


def test_first_run_is_promoted() -> None:
    decision = decide_promotion(board([("ease-0", "ok", 0.12)]), "ndcg_at_10", None)
    assert decision.promote and "no run was in production" in decision.reason
    assert decision.winner == "ease-0" and math.isnan(decision.incumbent_metric)


def test_incumbent_that_wins_keeps_production_and_says_why() -> None:
    leaderboard = board([("ease-0", "ok", 0.12), (INCUMBENT_ID, "ok", 0.18)])
    decision = decide_promotion(leaderboard, "ndcg_at_10", INCUMBENT)
    assert not decision.promote
    assert "incumbent recipe of TrainFlow/7 won" in decision.reason
    assert "TrainFlow/7 stays in production" in decision.reason
    assert decision.incumbent_metric == pytest.approx(0.18)
    # --promotion retrain ships the incumbent's recipe refit on the newer data.
    retrain = decide_promotion(leaderboard, "ndcg_at_10", INCUMBENT, policy="retrain")
    assert retrain.promote and "retrain" in retrain.reason


def test_challenger_must_beat_the_incumbent() -> None:
    better = board([("ease-0", "ok", 0.19), (INCUMBENT_ID, "ok", 0.18)])
    decision = decide_promotion(better, "ndcg_at_10", INCUMBENT)
    assert decision.promote and "beats the incumbent" in decision.reason
    # A tie keeps the incumbent first on the leaderboard (planned first), so it wins.
    tie = board([(INCUMBENT_ID, "ok", 0.18), ("ease-0", "ok", 0.18)])
    assert not decide_promotion(tie, "ndcg_at_10", INCUMBENT).promote


def test_experiments_and_runs_without_refit_are_never_promoted() -> None:
    leaderboard = board([("ease-0", "ok", 0.3)])
    never = decide_promotion(leaderboard, "ndcg_at_10", None, policy="never")
    assert not never.promote and "never" in never.reason
    no_refit = decide_promotion(leaderboard, "ndcg_at_10", None, refit=False)
    assert not no_refit.promote and "--refit is off" in no_refit.reason


def test_a_failed_incumbent_does_not_block_the_winner() -> None:
    leaderboard = board([("ease-0", "ok", 0.1), (INCUMBENT_ID, "failed", float("nan"))])
    decision = decide_promotion(leaderboard, "ndcg_at_10", INCUMBENT)
    assert decision.promote and "failed to train" in decision.reason


def test_incumbent_is_planned_first_on_its_fan_out() -> None:
    cpu = [{"candidate_id": "sar-0", "family": "sar", "params": {}}]
    gpu = [{"candidate_id": "ncf-0", "family": "ncf", "params": {}}]
    planned_cpu, planned_gpu = with_incumbent(INCUMBENT, cpu, gpu)
    assert [c["candidate_id"] for c in planned_cpu] == [INCUMBENT_ID, "sar-0"]
    assert planned_gpu == gpu
    deep = Incumbent(run="TrainFlow/8", family="ncf", params={"epochs": 3})
    assert with_incumbent(deep, cpu, gpu)[1][0]["candidate_id"] == INCUMBENT_ID
    assert with_incumbent(None, cpu, gpu) == (cpu, gpu)


def test_an_incumbent_recipe_this_version_refuses_is_left_out() -> None:
    stale = Incumbent(run="TrainFlow/9", family="sar", params={"similarity": "no-such"})
    assert checked_incumbent(stale) is None
    assert checked_incumbent(INCUMBENT) is INCUMBENT


def test_refit_trains_the_epoch_count_selected_on_validation() -> None:
    train, validation = _train_with_valid()
    model = NCFRecommender(**{**TINY, "epochs": 4}).fit(train, validation)
    assert model.best_epoch is not None
    evaluated = ModelBundle(
        family="ncf",
        params=dict(model.params),
        model_payload=model.to_bytes(),
        user_map=IdMap("user_id", np.arange(train.n_users), 1),
        item_map=IdMap("item_id", np.arange(train.n_items), 1),
    )
    assert refit_params(evaluated)["epochs"] == model.best_epoch
    sar = fitted_models(small_train())["sar"]
    assert refit_params(bundle_of("sar", sar)) == dict(sar.params)


# A refit winner's catalogue: every train item plus two items first seen after train, in
# another order than the train catalogue, and two users first seen after train.
NEW_ITEMS = np.array([300, 301])
NEW_USERS = np.array([2000, 2001])


def refit_service() -> tuple[RecommendationService, dict[str, ModelBundle]]:
    """Popularity refit on train + a later window (new users, new items) as the winner, which
    can neither fold in nor find similar items; SAR, item KNN and ALS fitted on train only as
    the per-family bundles that can."""
    train = small_train()
    per_family = {f: bundle_of(f, m) for f, m in fitted_models(train).items() if f != "popularity"}
    all_items = np.concatenate([NEW_ITEMS, ITEM_IDS[::-1]])
    all_users = np.concatenate([USER_IDS, NEW_USERS])
    item_index = {raw: i for i, raw in enumerate(all_items.tolist())}
    later_users = np.array([40, 40, 41, 41, 0])
    later_items = np.array([item_index[r] for r in (300, 301, 300, 205, 203)])
    train_items = np.array([item_index[r] for r in ITEM_IDS[train.item_idx].tolist()])
    everything = TrainData(
        user_idx=np.concatenate([train.user_idx, later_users]),
        item_idx=np.concatenate([train_items, later_items]),
        weight=np.ones(len(train.user_idx) + len(later_users)),
        ts=None,
        n_users=len(all_users),
        n_items=len(all_items),
        item_ids=all_items,
    )
    refit = PopularityRecommender().fit(everything)
    winner = ModelBundle(
        family="popularity",
        params={},
        model_payload=refit.to_bytes(),
        user_map=IdMap("user_id", all_users, 1),
        item_map=IdMap("item_id", all_items, 1),
        item_popularity=np.bincount(everything.item_idx, minlength=len(all_items)),
        trained_on=ALL_WINDOWS,
    )
    return RecommendationService(winner, per_family, "TrainFlow/1"), per_family


def by_raw_id(bundle: ModelBundle, scores: np.ndarray) -> dict[int, float]:
    return {int(r): float(s) for r, s in zip(bundle.item_map.raw_ids, scores, strict=True)}


def test_refit_winner_serves_users_and_items_first_seen_after_train() -> None:
    service, _ = refit_service()
    info = service.info()
    assert info["trained_on"] == ALL_WINDOWS and info["n_users"] == len(USER_IDS) + 2
    assert info["capabilities"]["similar_items"] == "sar"
    response = service.recommend(int(NEW_USERS[0]), k=3)
    assert response["cold_start"] is False and response["strategy"] == "model"
    # 300 has the most interactions after train among the new items; user 2000 has it.
    assert 300 not in [item["item_id"] for item in response["items"]]


def test_similar_items_by_a_train_only_family_are_translated_by_raw_id() -> None:
    service, per_family = refit_service()
    sar = per_family["sar"]
    own = by_raw_id(sar, sar.model.item_similarity_scores(int(sar.item_map.to_idx([205])[0])))
    response = service.similar_items(205, k=4)
    assert response["served_by"] == "sar" and response["strategy"] == "model"
    for item in response["items"]:
        assert item["score"] == pytest.approx(own[item["item_id"]])
        assert item["item_id"] not in (300, 301)  # unknown to SAR: -inf
    assert response["items"][0]["score"] == pytest.approx(max(own.values()))
    # An item newer than SAR's data: the popularity list, and a warning that says why.
    newer = service.similar_items(300, k=3)
    assert newer["strategy"] == "fallback_popularity"
    assert any("newer than the data sar" in w for w in newer["warnings"])


def test_fold_in_and_explanations_by_a_train_only_family_use_raw_ids() -> None:
    service, per_family = refit_service()
    sar = per_family["sar"]
    response = service.recommend_for_items([205, 203, 300], k=4, explain=True)
    assert response["served_by"] == "sar" and response["strategy"] == "fold_in"
    own = by_raw_id(sar, sar.model.fold_in_scores(sar.item_map.to_idx([205, 203]), None))
    known_history = {205, 203}
    for item in response["items"]:
        assert item["score"] == pytest.approx(own[item["item_id"]])
        assert {b["item_id"] for b in item["because"]} <= known_history
        assert item["because"], item


def test_a_failed_refit_is_served_as_evaluated_and_never_promoted() -> None:
    from metaflow.exception import MetaflowExceptionWrapper

    promoted = decide_promotion(board([("ease-0", "ok", 0.2)]), "ndcg_at_10", None).as_dict()
    try:
        raise MemoryError("cannot allocate 40 GB for the Gram matrix")
    except MemoryError as error:
        caught = MetaflowExceptionWrapper(error)  # what @catch stores
    decision = without_refit(promoted, caught)
    assert decision["promote"] is False and decision["winner"] == "ease-0"
    assert "refit on all the data failed (cannot allocate 40 GB" in decision["reason"]
