"""Candidate planning, grids, leaderboard ranking and the model bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reclab.bundle import ModelBundle
from reclab.errors import InputError
from reclab.evaluation import EvaluationResult
from reclab.grids import load_grids
from reclab.id_maps import IdMap
from reclab.models.base import evaluate_window
from reclab.models.baselines import PopularityRecommender
from reclab.models.registry import parse_model_list
from reclab.training import (
    CandidateResult,
    build_leaderboard,
    plan_candidates,
    select_best,
    validate_metric,
)
from tests.contract import planted_clusters


def test_models_all_and_unknown_family() -> None:
    assert parse_model_list("all")[:2] == ["popularity", "random"]
    assert parse_model_list(" random , popularity,random") == ["random", "popularity"]
    with pytest.raises(InputError, match="unknown model family 'nope'.*registered"):
        parse_model_list("popularity,nope")
    with pytest.raises(InputError, match="empty"):
        parse_model_list(" , ")


def test_plan_candidates_ids_are_stable_and_unique() -> None:
    cpu, gpu = plan_candidates(["popularity", "random"])
    assert [c["candidate_id"] for c in cpu] == ["popularity-0", "random-0"]
    assert gpu == []


def test_grid_file_errors_name_the_problem(tmp_path) -> None:
    bad = tmp_path / "grids.json"
    bad.write_text(json.dumps({"random": {"quick": [{"sed": 1}]}}))
    with pytest.raises(InputError, match=r"unknown parameter\(s\) \['sed'\]"):
        load_grids(bad)
    bad.write_text(json.dumps({"nope": {"quick": [{}]}}))
    with pytest.raises(InputError, match="unknown family"):
        load_grids(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_grids(bad)
    with pytest.raises(InputError, match="does not exist"):
        load_grids(tmp_path / "missing.json")
    with pytest.raises(InputError, match="--grid must be one of"):
        plan_candidates(["popularity"], grid_name="huge")


def test_validation_metric_must_be_reported_at_k() -> None:
    validate_metric("recall_at_10", 10)
    with pytest.raises(InputError, match="ndcg_at_10"):
        validate_metric("ndcg_at_20", 10)


def _result(candidate_id: str, valid_ndcg: float) -> CandidateResult:
    def evaluation(value: float) -> EvaluationResult:
        return EvaluationResult(
            metrics={"ndcg_at_10": value, "recall_at_10": value / 2},
            intervals={"ndcg_at_10": (value - 0.01, value + 0.01)},
            counts={"evaluated_users": 5},
            per_user=pd.DataFrame(),
        )

    return CandidateResult(
        candidate={"candidate_id": candidate_id, "family": candidate_id, "params": {"a": 1}},
        valid=evaluation(valid_ndcg),
        test=evaluation(0.5),
        fit_seconds=0.1,
        recommend_seconds=0.1,
        model_payload=b"",
    )


def test_leaderboard_sorted_by_validation_and_ties_keep_candidate_order() -> None:
    board = build_leaderboard(
        [_result("a", 0.1), _result("b", 0.3), _result("c", 0.1)], "ndcg_at_10"
    )
    assert board["candidate_id"].tolist() == ["b", "a", "c"]
    assert board.loc[0, "params"] == '{"a": 1}'
    assert {"valid_ndcg_at_10_low", "valid_ndcg_at_10_high", "test_ndcg_at_10"} <= set(board)
    assert select_best(board, "ndcg_at_10") == "b"


def test_select_best_refuses_when_nothing_could_be_evaluated() -> None:
    board = build_leaderboard([_result("a", float("nan"))], "ndcg_at_10")
    with pytest.raises(ValueError, match="no evaluable users"):
        select_best(board, "ndcg_at_10")


def test_bundle_recommends_raw_ids_and_refuses_unknown_users() -> None:
    train = planted_clusters()
    model = PopularityRecommender().fit(train)
    bundle = ModelBundle(
        family="popularity",
        params={},
        model_payload=model.to_bytes(),
        user_map=IdMap("user_id", np.arange(100, 100 + train.n_users), 3),
        item_map=IdMap("item_id", train.item_ids, 3),
        item_metadata=pd.DataFrame(
            {"title": [f"t{i}" for i in train.item_ids]},
            index=pd.Index(train.item_ids, name="item_id"),
        ),
    )
    recs = bundle.recommend(100, k=3)
    assert recs.columns.tolist() == ["rank", "item_id", "score", "title"]
    expected = train.item_ids[model.recommend(np.array([0]), 3)[0][0]]
    assert recs["item_id"].tolist() == expected.tolist()
    assert recs["title"].tolist() == [f"t{i}" for i in expected]
    with pytest.raises(InputError, match="not in the training data"):
        bundle.recommend(99999)
    import pickle

    restored = pickle.loads(pickle.dumps(bundle))
    pd.testing.assert_frame_equal(restored.recommend(100, k=3), recs)


def _window(train, seed: int, name: str):
    """A window of held-out items for the planted users: mostly unseen in-cluster items."""
    from reclab.encoded import Window

    rng = np.random.default_rng(seed)
    users = rng.integers(0, train.n_users, 150)
    items = rng.integers(0, train.n_items, 150)
    users[:5] = -1  # cold users are counted, not evaluated
    return Window(name=name, user_idx=users, item_idx=items)


def test_one_evaluator_call_per_window_equals_the_four_calls_it_replaces(monkeypatch) -> None:
    """evaluate_candidate's single pass = the leaderboard calls at k + the curve calls 1..50."""
    from reclab.models.sar import SARRecommender
    from reclab.training import CURVE_KS, evaluate_candidate

    train = planted_clusters(n_users=80, n_items=60)
    windows = {"valid": _window(train, 1, "valid"), "test": _window(train, 2, "test")}
    k, samples, seed = 10, 200, 7
    model = SARRecommender(similarity="jaccard", time_decay_half_life_days=30).fit(train)
    calls: list[int] = []
    model_recommend = model.recommend

    def counted(user_idx, kk, exclude_seen=True):
        calls.append(kk)
        return model_recommend(user_idx, kk, exclude_seen=exclude_seen)

    model.recommend = counted
    evaluator_calls: list[int] = []

    def counted_evaluator(train, recommend, user_idx, item_idx, **options):
        evaluator_calls.append(len(user_idx))
        return evaluate_window(train, recommend, user_idx, item_idx, **options)

    monkeypatch.setattr("reclab.training.evaluate_window", counted_evaluator)
    evaluated = evaluate_candidate(model, train, windows, k, samples, seed)
    model.recommend = model_recommend
    monkeypatch.undo()
    # one recommend call: each warm user of either window once (< RECOMMEND_BATCH users)
    assert calls == [50]
    # one evaluator call per window, with every cut-off
    assert evaluator_calls == [len(windows["valid"].user_idx), len(windows["test"].user_idx)]

    for name, window in windows.items():
        old = evaluate_window(
            train, model.recommend, window.user_idx, window.item_idx, (k,), samples, seed
        )
        new = evaluated.results[name]
        assert new.metrics.keys() == old.metrics.keys()
        for key, value in old.metrics.items():
            assert new.metrics[key] == pytest.approx(value, rel=1e-12), key
        for key, (low, high) in old.intervals.items():
            assert new.intervals[key] == pytest.approx((low, high), rel=1e-12), key
        assert new.counts == old.counts
        pd.testing.assert_frame_equal(new.per_user, old.per_user, rtol=1e-12)
        old_curves = evaluate_window(
            train, model.recommend, window.user_idx, window.item_idx, CURVE_KS
        )
        curve = evaluated.curves[evaluated.curves["window"] == name]
        assert curve["k"].tolist() == list(CURVE_KS)
        np.testing.assert_allclose(
            curve["ndcg"], [old_curves.metrics[f"ndcg_at_{kk}"] for kk in CURVE_KS], rtol=1e-12
        )
        np.testing.assert_allclose(
            curve["recall"],
            [old_curves.metrics[f"recall_at_{kk}"] for kk in CURVE_KS],
            rtol=1e-12,
        )
    # the leaderboard's cut-off beyond the curves is evaluated too
    beyond = evaluate_candidate(model, train, windows, 60, 0, seed)
    assert "ndcg_at_60" in beyond.results["valid"].metrics
    assert beyond.curves["k"].max() == 50


def test_collect_keeps_exactly_the_payloads_the_join_bundles() -> None:
    """Each family's best by the leaderboard's rule keeps its payload; the others are dropped."""
    from dataclasses import replace

    from reclab.training import keep_family_best_payloads

    def candidate(candidate_id: str, family: str, valid_ndcg: float) -> CandidateResult:
        result = _result(candidate_id, valid_ndcg)
        result.candidate = {**result.candidate, "family": family}
        return replace(result, model_payload=candidate_id.encode())

    results = [
        candidate("sar-0", "sar", 0.2),
        None,  # an empty fan-out
        candidate("sar-1", "sar", 0.3),
        candidate("als-0", "als", float("nan")),
        candidate("als-1", "als", 0.1),
        candidate("pop-0", "pop", 0.4),
        candidate("pop-1", "pop", 0.4),  # a tie keeps the earlier candidate
        candidate("rnd-0", "rnd", float("nan")),
        candidate("rnd-1", "rnd", float("nan")),
    ]
    kept = keep_family_best_payloads(iter(results), "ndcg_at_10")
    payloads = {r.candidate["candidate_id"]: r.model_payload for r in kept}
    assert [r.candidate["candidate_id"] for r in kept] == [
        r.candidate["candidate_id"] for r in results if r is not None
    ]
    assert {cid for cid, payload in payloads.items() if payload} == {
        "sar-1",
        "als-1",
        "pop-0",
        "rnd-0",
    }
    assert payloads["sar-1"] == b"sar-1"
    board = build_leaderboard(kept, "ndcg_at_10")
    first_of_family = board.drop_duplicates("family")["candidate_id"]
    assert set(first_of_family) == {cid for cid, payload in payloads.items() if payload}


def _encoded(tmp_path, train) -> Path:
    """``encoded/`` as build_workflow writes it, for the planted users."""
    encoded = tmp_path / "encoded"
    encoded.mkdir()
    pd.DataFrame(
        {
            "user_idx": train.user_idx,
            "item_idx": train.item_idx,
            "weight": train.weight,
            "ts": np.full(len(train.user_idx), np.nan),
        }
    ).to_parquet(encoded / "train.parquet")
    for seed, name in ((1, "valid"), (2, "test")):
        window = _window(train, seed, name)
        pd.DataFrame({"user_idx": window.user_idx, "item_idx": window.item_idx}).to_parquet(
            encoded / f"{name}.parquet"
        )
    return encoded


def test_train_branch_sets_the_result_and_the_time_also_on_failure(tmp_path) -> None:
    """Both train steps' one call: a result, the no-op branch's None, and a failure's time."""
    from types import SimpleNamespace

    from reclab.training import train_and_evaluate, train_branch

    train = planted_clusters(n_users=60, n_items=40)
    encoded = _encoded(tmp_path, train)
    maps = {
        "user_map": IdMap("user_id", np.arange(train.n_users), 3),
        "item_map": IdMap("item_id", train.item_ids, 3),
    }
    candidate = {"candidate_id": "popularity-0", "family": "popularity", "params": {}}
    branch = SimpleNamespace(
        input=candidate, k=5, seed=3, bootstrap_samples=20, validation_metric="ndcg_at_5", **maps
    )
    train_branch(branch, encoded)
    assert isinstance(branch.result, CandidateResult)
    assert branch.result.candidate == candidate and branch.elapsed_seconds > 0
    direct = train_and_evaluate(candidate, encoded, k=5, seed=3, bootstrap_samples=20, **maps)
    assert branch.result.valid.metrics == direct.valid.metrics
    assert branch.result.test.intervals == direct.test.intervals

    no_op = SimpleNamespace(input=None, k=5, seed=3, bootstrap_samples=20, **maps)
    train_branch(no_op, encoded)
    assert no_op.result is None and no_op.elapsed_seconds >= 0

    failing = SimpleNamespace(
        input=candidate, k=5, seed=3, bootstrap_samples=20, validation_metric="ndcg_at_5", **maps
    )
    with pytest.raises(FileNotFoundError):
        train_branch(failing, tmp_path / "missing")
    assert not hasattr(failing, "result") and failing.elapsed_seconds >= 0


def test_collect_branches_gathers_and_merges_all_but_the_branch_artifacts() -> None:
    """Both collect steps' one call: results and failures set, shared artifacts merged."""
    from types import SimpleNamespace

    from reclab.training import BRANCH_ARTIFACTS, collect_branches

    merged = []
    join = SimpleNamespace(
        validation_metric="ndcg_at_10",
        merge_artifacts=lambda inputs, exclude: merged.append((inputs, exclude)),
    )
    branches = [
        SimpleNamespace(input=_result("a", 0.1).candidate, result=_result("a", 0.1)),
        SimpleNamespace(input=_result("b", 0.3).candidate, failure=ValueError("boom")),
        SimpleNamespace(input=None, result=None),
    ]
    collect_branches(join, branches)
    assert [r.candidate["candidate_id"] for r in join.results] == ["a"]
    assert [(f.candidate["candidate_id"], f.error) for f in join.failures] == [("b", "boom")]
    assert merged == [(branches, BRANCH_ARTIFACTS)]
    assert {"result", "failure", "elapsed_seconds"} <= set(BRANCH_ARTIFACTS)


def _flow_parameters(**changes):
    """What ``start`` sees: every flow parameter by name, plus ones it does not validate."""
    from types import SimpleNamespace

    values = {
        "dataset": "synthetic",
        "data_dir": "",
        "interactions_file": "",
        "columns": "",
        "synthetic_interactions": 20_000,
        "synthetic_users": 0,
        "synthetic_items": 0,
        "row_sampling": 100.0,
        "training_end_date": "",
        "validation_end_date": "",
        "models": "popularity,als",
        "grid": "quick",
        "grid_file": "",
        "als_engine": "implicit",
        "spark_master": "local[*]",
        "k": 10,
        "batch_k": 10,
        "scores_dir": "",
        "validation_metric": "ndcg_at_10",
        "seed": 42,
        "bootstrap_samples": 100,
        "promotion": "challenger",
    }
    return SimpleNamespace(**{**values, **changes})


def test_start_reads_the_parameters_by_name_and_checks_them_at_once() -> None:
    from dataclasses import replace

    from reclab.training import RunParameters, validate_run_parameters

    params = RunParameters.from_flow(_flow_parameters(als_engine="spark"))
    assert params.dataset == "synthetic" and params.bootstrap_samples == 100
    assert params.family_overrides == {"als": {"engine": "spark", "spark_master": "local[*]"}}
    checked = validate_run_parameters(params)
    assert checked.families == ["popularity", "als"]
    assert {c["family"] for c in checked.cpu_candidates} == {"popularity", "als"}
    assert all(
        c["params"]["engine"] == "spark" for c in checked.cpu_candidates if c["family"] == "als"
    )
    for change, message in (
        ({"k": 0}, "--k must be >= 1"),
        ({"bootstrap_samples": -1}, "--bootstrap-samples must be >= 0"),
        ({"seed": -1}, "--seed must be >= 0"),
        ({"batch_k": 1001}, "--batch-k must be in 1..1000"),
        ({"synthetic_interactions": 0}, "--synthetic-interactions must be >= 1"),
        ({"synthetic_items": -2}, "--synthetic-items must be >= 0"),
        ({"columns": "{oops"}, "--columns '{oops' is not valid JSON"),
        ({"columns": "[1]"}, "--columns must be a JSON object mapping roles"),
        ({"models": "nope"}, "unknown model family"),
        ({"validation_metric": "ndcg_at_5"}, "ndcg_at_10"),
        ({"promotion": "sometimes"}, "--promotion must be one of challenger, retrain, never"),
    ):
        with pytest.raises(InputError, match=message):
            validate_run_parameters(replace(params, **change))


def test_a_blend_with_an_als_base_takes_the_als_engine_overrides() -> None:
    overrides = {"als": {"engine": "spark", "spark_master": "local[1]"}}
    cpu, _ = plan_candidates(["als", "recency_blend"], overrides=overrides)
    blends = [c for c in cpu if c["family"] == "recency_blend"]
    assert blends and all(c["params"]["base_family"] == "als" for c in blends)
    assert all(c["params"]["base_params"]["engine"] == "spark" for c in blends)
    assert all(c["params"]["base_params"]["factors"] == 16 for c in blends)
    assert "engine" not in blends[0]["params"]
