"""The deep families' row cap and validation sample: which rows, stated where, deterministic.

The cap keeps the most recent train rows (ties at the cut-off drawn with the seed; a seeded
sample without timestamps), never changes the id space, and is stated by the model
(``train_rows_used``, ``train_sample``) and in the leaderboard. The per-epoch validation sample
scores each sampled user exactly as a full evaluation does.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from reclab.evaluation import evaluate
from reclab.models import deep_scale
from reclab.models.base import TrainData, ValidationWindow
from reclab.models.deep_scale import (
    capped_train_rows,
    check_max_train_rows,
    resolve_max_train_rows,
    validation_sample,
)
from reclab.models.ncf import NCFRecommender
from tests.contract import planted_clusters
from tests.test_ncf import TINY

TINY_NCF = {**TINY, "epochs": 3}


def _train(ts: list[float] | None, n_users: int = 4) -> TrainData:
    n = len(ts) if ts is not None else 10
    return TrainData(
        user_idx=np.arange(n, dtype=np.int64) % n_users,
        item_idx=np.arange(n, dtype=np.int64) % 5,
        weight=np.ones(n),
        ts=None if ts is None else np.asarray(ts, dtype=np.float64),
        n_users=n_users,
        n_items=5,
        item_ids=np.arange(5),
    )


def test_cap_keeps_the_most_recent_rows_and_draws_ties_with_the_seed() -> None:
    train = _train([0, 0, 1, 1, 1, 1, 2, 2])
    rows, note = capped_train_rows(train, 5, seed=0)
    assert len(rows) == 5 and np.all(np.diff(rows) > 0)
    assert {6, 7} <= set(rows.tolist())  # everything after the cut-off time
    assert set(rows.tolist()) <= {2, 3, 4, 5, 6, 7}  # nothing before it
    again, _ = capped_train_rows(train, 5, seed=0)
    assert np.array_equal(rows, again)
    drawn = {tuple(capped_train_rows(train, 5, seed=s)[0]) for s in range(20)}
    assert len(drawn) > 1  # the seed picks among the rows tied at the cut-off
    assert note.startswith("most recent 5 of 8 train rows (max_train_rows 5)")


def test_cap_without_timestamps_is_a_seeded_sample() -> None:
    train = _train(None)
    rows, note = capped_train_rows(train, 4, seed=3)
    assert len(rows) == 4 and len(set(rows.tolist())) == 4
    assert np.array_equal(rows, capped_train_rows(train, 4, seed=3)[0])
    assert note.startswith("random (no timestamps) 4 of 10 train rows")


def test_no_cap_when_the_data_fits() -> None:
    train = _train([0, 1, 2])
    assert capped_train_rows(train, 3, seed=0) == (None, "")
    assert capped_train_rows(train, None, seed=0) == (None, "")


def test_cap_counts_users_and_items_left_without_rows() -> None:
    # users 0..3 in turn; the 2 most recent rows are users 2 and 3: users 0 and 1 lose all rows
    train = _train([0, 1, 2, 3])
    rows, note = capped_train_rows(train, 2, seed=0)
    assert rows.tolist() == [2, 3]
    assert "2 users and 2 items have no row left" in note


def test_max_train_rows_values() -> None:
    assert check_max_train_rows("auto") == "auto"
    assert check_max_train_rows(None) is None
    assert check_max_train_rows(1000) == 1000
    for bad in (0, -5, "many", True, 1.5):
        with pytest.raises(ValueError, match="max_train_rows"):
            check_max_train_rows(bad)
    assert resolve_max_train_rows("auto", on_gpu=False) == deep_scale.CPU_MAX_TRAIN_ROWS
    assert resolve_max_train_rows("auto", on_gpu=True) is None
    assert resolve_max_train_rows(500, on_gpu=True) == 500
    with pytest.raises(ValueError, match="max_train_rows"):
        NCFRecommender(max_train_rows=0)
    with pytest.raises(ValueError, match="validation_sample_users"):
        NCFRecommender(validation_sample_users=0)


def test_ncf_trains_on_the_capped_rows_and_keeps_every_user_scorable() -> None:
    train = planted_clusters()  # ts grows with the row: the most recent rows are the last users'
    model = NCFRecommender(**TINY_NCF, max_train_rows=360, seed=1).fit(train)
    assert model.train_rows_used == 360 and len(train.user_idx) == 720
    assert model.train_sample.startswith("most recent 360 of 720 train rows")
    assert "30 users" in model.train_sample
    assert (model.n_users, model.n_items) == (train.n_users, train.n_items)
    cut_user = 0  # all of user 0's rows are older than the cut-off
    items, _ = model.recommend(np.array([cut_user]), 5)
    assert (items >= 0).all()
    seen = set(train.item_idx[train.user_idx == cut_user].tolist())
    assert not seen & set(items[0].tolist())  # seen items still come from the full train
    twin = NCFRecommender(**TINY_NCF, max_train_rows=360, seed=1).fit(train)
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(model.scores(users), twin.scores(users))
    uncapped = NCFRecommender(**TINY_NCF, max_train_rows=None, seed=1).fit(train)
    assert uncapped.train_rows_used == 720 and uncapped.train_sample == ""
    assert not np.array_equal(model.scores(users), uncapped.scores(users))


def test_auto_caps_on_a_cpu(monkeypatch) -> None:
    monkeypatch.setattr(deep_scale, "CPU_MAX_TRAIN_ROWS", 200)
    model = NCFRecommender(**TINY_NCF).fit(planted_clusters())
    assert model.params["max_train_rows"] == "auto"
    assert model.train_rows_used == 200
    assert "(max_train_rows 200)" in model.train_sample


def test_validation_sample_scores_each_user_as_the_full_evaluation() -> None:
    train = planted_clusters()
    rng = np.random.default_rng(0)
    users = rng.integers(-1, train.n_users, 400)  # -1: cold users, never evaluated
    items = rng.integers(0, train.n_items + 3, 400)  # some items unseen in train
    validation = ValidationWindow(users, items)
    sample, window = validation_sample(train, validation, 15, seed=7)
    chosen = np.unique(window.user_idx)
    assert len(chosen) == 15 and (chosen >= 0).all()
    assert set(np.unique(sample.user_idx).tolist()) <= set(chosen.tolist())
    _, again = validation_sample(train, validation, 15, seed=7)
    assert np.array_equal(again.user_idx, window.user_idx)
    model = NCFRecommender(**TINY_NCF, seed=0).fit(planted_clusters())
    in_sample = np.isin(users, chosen)
    full_on_chosen = evaluate(
        model.recommend,
        train.user_idx,
        train.item_idx,
        users[in_sample],
        items[in_sample],
        n_users=train.n_users,
        n_items=train.n_items,
        ks=(10,),
    )
    assert window.score(model.recommend, sample) == pytest.approx(
        full_on_chosen.metrics["ndcg_at_10"], abs=1e-12
    )
    # small windows: every user
    unsampled = validation_sample(train, validation, 10_000, seed=7)
    assert unsampled[0] is train and unsampled[1] is validation


def test_leaderboard_states_the_rows_each_candidate_used(tmp_path) -> None:
    pytest.importorskip("merlin.models.tf")
    from reclab.training import build_leaderboard, train_and_evaluate
    from tests.test_two_tower import build_tiny

    train, built, _ = build_tiny(tmp_path)
    candidates = [
        {"candidate_id": "ncf-0", "family": "ncf", "params": {**TINY_NCF, "max_train_rows": 300}},
        {"candidate_id": "popularity-0", "family": "popularity", "params": {}},
    ]
    results = [
        train_and_evaluate(c, tmp_path / "encoded", built.user_map, built.item_map, seed=3)
        for c in candidates
    ]
    board = build_leaderboard(results, "ndcg_at_10").set_index("candidate_id")
    n = len(train.user_idx)
    assert board.loc["ncf-0", "train_rows"] == n and board.loc["ncf-0", "train_rows_used"] == 300
    assert board.loc["ncf-0", "train_sample"].startswith(f"most recent 300 of {n:,} train rows")
    assert board.loc["popularity-0", "train_rows_used"] == n
    assert board.loc["popularity-0", "train_sample"] == ""
    params = json.loads(board.loc["ncf-0", "params"])
    assert params["max_train_rows"] == 300


def test_two_tower_cap_keeps_every_user_and_item_embedding(tmp_path) -> None:
    pytest.importorskip("merlin.models.tf")
    from tests.test_two_tower import build_tiny, make_tiny

    train, _, validation = build_tiny(tmp_path)
    model = make_tiny(epochs=2, max_train_rows=300).fit(train, validation)
    n = len(train.user_idx)
    assert model.train_rows_used == 300
    assert model.train_sample.startswith(f"most recent 300 of {n:,} train rows")
    assert model.user_embeddings.shape[0] == train.n_users
    assert model.item_embeddings.shape[0] == train.n_items
    items, _ = model.recommend(np.arange(train.n_users), 5)
    assert (items >= 0).all()
    # The cap picks rows by index, so NVTabular's rows must be the encoded rows in order.
    order = np.random.default_rng(0).permutation(n)
    shuffled = TrainData(
        user_idx=train.user_idx[order],
        item_idx=train.item_idx[order],
        weight=train.weight[order],
        ts=train.ts[order],
        n_users=train.n_users,
        n_items=train.n_items,
        item_ids=train.item_ids,
        nvt_dir=train.nvt_dir,
    )
    with pytest.raises(ValueError, match="does not hold the encoded train rows in order"):
        make_tiny(epochs=1, max_train_rows=300).fit(shuffled, validation)


def test_a_grid_file_sets_or_lifts_the_cap(tmp_path) -> None:
    from reclab.models.registry import make_model
    from reclab.training import plan_candidates

    grids = tmp_path / "grids.json"
    grids.write_text(
        json.dumps(
            {
                "ncf": {"quick": [{"max_train_rows": None}, {"max_train_rows": 5_000_000}]},
                "two_tower": {"quick": [{"max_train_rows": 0}]},
            }
        )
    )
    _, gpu = plan_candidates(["ncf", "two_tower"], "quick", grids)
    ncf_none, ncf_five, bad = gpu
    assert make_model("ncf", ncf_none["params"], seed=0).hparams.max_train_rows is None
    assert make_model("ncf", ncf_five["params"], seed=0).hparams.max_train_rows == 5_000_000
    assert make_model("ncf", {}, seed=0).hparams.max_train_rows == "auto"  # the default
    with pytest.raises(ValueError, match="max_train_rows must be 'auto'"):
        make_model("two_tower", bad["params"], seed=0)


def test_the_card_says_which_candidates_trained_on_a_sample() -> None:
    import pandas as pd

    from reclab.report import leaderboard_components

    board = pd.DataFrame(
        {
            "candidate_id": ["ncf-0", "popularity-0"],
            "family": ["ncf", "popularity"],
            "params": ["{}", "{}"],
            "valid_ndcg_at_10": [0.2, 0.1],
            "test_ndcg_at_10": [0.2, 0.1],
            "train_rows": [10, 10],
            "train_rows_used": [4, 10],
            "train_sample": ["most recent 4 of 10 train rows (max_train_rows 4)", ""],
        }
    )
    header = leaderboard_components(board, "ndcg_at_10", {})[0].render()["source"]
    assert "ncf-0 trained on a sample: most recent 4 of 10 train rows" in header
    assert "popularity-0 trained" not in header
