"""NCF (NeuMF): the contract on CPU, plus its own promises.

Tiny networks and few epochs keep the file fast: the planted-cluster fixture has 60 users and
40 items, so an epoch is a few dozen Adam steps.
"""

from __future__ import annotations

import io
import json
import logging
import pickle

import numpy as np
import pytest
import torch

from reclab.models.base import FormatVersionError, TrainData, ValidationWindow
from reclab.models.ncf import NCFRecommender, NeuMF, resolve_device, sample_negatives
from tests.contract import RecommenderContract, planted_clusters

TINY = {
    "gmf_dim": 8,
    "mlp_dims": (16, 8),
    "epochs": 10,
    "batch_size": 256,
    "learning_rate": 0.02,
    "device": "cpu",
}


class TestNCFContract(RecommenderContract):
    def make_model(self):
        return NCFRecommender(**TINY)


def _train_with_valid(seed: int = 0) -> tuple[TrainData, ValidationWindow]:
    """Planted clusters and a validation window of each user's unseen in-cluster items."""
    train = planted_clusters(seed=seed)
    half = train.n_items // 2
    seen = set(zip(train.user_idx.tolist(), train.item_idx.tolist(), strict=True))
    pairs = [
        (u, i)
        for u in range(train.n_users)
        for i in range((u % 2) * half, (u % 2 + 1) * half)
        if (u, i) not in seen
    ]
    users = np.array([u for u, _ in pairs], dtype=np.int64)
    return train, ValidationWindow(users, np.array([i for _, i in pairs], dtype=np.int64))


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_scores_match_the_forward_pass() -> None:
    # score_all splits the first layers into user and item terms; it must equal forward().
    torch.manual_seed(0)
    net = NeuMF(5, 7, gmf_dim=4, mlp_embedding_dim=3, mlp_dims=[6, 4], dropout=0.5).eval()
    for param in net.parameters():  # move away from the near-zero initial embeddings
        torch.nn.init.normal_(param)
    users = torch.tensor([0, 3, 4])
    grid_users = users.repeat_interleave(7)
    grid_items = torch.arange(7).repeat(3)
    expected = net(grid_users, grid_items).reshape(3, 7)
    for chunk in (1, 7, 100):  # one user per chunk, exact fit, everything at once
        torch.testing.assert_close(net.score_all(users, chunk), expected, rtol=1e-5, atol=1e-5)
    flat = NeuMF(5, 7, gmf_dim=4, mlp_embedding_dim=3, mlp_dims=[]).eval()
    torch.nn.init.normal_(flat.final.weight)
    torch.testing.assert_close(
        flat.score_all(users, 10), flat(grid_users, grid_items).reshape(3, 7)
    )


def test_network_shapes_follow_nvidia() -> None:
    model = NCFRecommender(gmf_dim=16, mlp_dims=(64, 32, 16), device="cpu")
    model.n_users, model.n_items = 10, 20
    net = model._build_network()
    assert net.mlp_user.embedding_dim == 32 and net.gmf_user.embedding_dim == 16
    assert [(layer.in_features, layer.out_features) for layer in net.mlp] == [(64, 32), (32, 16)]
    assert net.final.in_features == 16 + 16
    explicit = NCFRecommender(mlp_dims=(32, 16), mlp_embedding_dim=8, device="cpu")
    explicit.n_users, explicit.n_items = 10, 20
    net = explicit._build_network()
    assert net.mlp_user.embedding_dim == 8
    assert [(layer.in_features, layer.out_features) for layer in net.mlp] == [(16, 32), (32, 16)]


def test_save_load_round_trip_gives_identical_scores() -> None:
    train = planted_clusters()
    model = NCFRecommender(**{**TINY, "epochs": 2}).fit(train)
    restored = NCFRecommender.from_bytes(model.to_bytes())
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(
        restored.scores(users, exclude_seen=False), model.scores(users, exclude_seen=False)
    )
    np.testing.assert_array_equal(restored.recommend(users, 5)[0], model.recommend(users, 5)[0])
    assert restored.params == model.params and restored.best_epoch == model.best_epoch
    assert json.dumps(restored.history) == json.dumps(model.history)  # NaN != NaN otherwise
    # pickling goes through to_bytes too
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(
        again.scores(users, exclude_seen=False), model.scores(users, exclude_seen=False)
    )
    for payload in (b"not a model", _torch_bytes({"family": "sar"})):
        with pytest.raises(TypeError):
            NCFRecommender.from_bytes(payload)
    other_version = torch.load(io.BytesIO(model.to_bytes()), weights_only=True)
    other_version["format"] = 0
    with pytest.raises(FormatVersionError, match="holds format version 0.*reads ncf format"):
        NCFRecommender.from_bytes(_torch_bytes(other_version))
    with pytest.raises(ValueError):
        NCFRecommender().to_bytes()


def test_same_seed_same_model_other_seed_other_model() -> None:
    train = planted_clusters()
    params = {**TINY, "epochs": 2, "dropout": 0.2, "reject_positives": True}
    users = np.arange(train.n_users)
    a = NCFRecommender(seed=3, **params).fit(train).scores(users, exclude_seen=False)
    torch.manual_seed(123)  # the global RNG state must not matter ...
    state = torch.random.get_rng_state()
    b = NCFRecommender(seed=3, **params).fit(train).scores(users, exclude_seen=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # ... nor be changed by fit
    c = NCFRecommender(seed=4, **params).fit(train).scores(users, exclude_seen=False)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fit_restores_torch_thread_setting() -> None:
    before = torch.get_num_threads()
    NCFRecommender(**{**TINY, "epochs": 1, "num_threads": 1}).fit(planted_clusters())
    assert torch.get_num_threads() == before


def test_early_stopping_keeps_the_best_epoch(caplog) -> None:
    # A learning rate this high makes validation NDCG peak early and then fall apart, so the
    # run stops after `patience` epochs without improvement and restores the best epoch.
    train, validation = _train_with_valid()
    model = NCFRecommender(
        **{**TINY, "epochs": 30, "learning_rate": 0.3, "early_stopping_patience": 2}
    )
    with caplog.at_level(logging.INFO, logger="reclab.models.ncf"):
        model.fit(train, validation)
    ndcgs = [h["valid_ndcg_at_10"] for h in model.history]
    best = int(np.argmax(ndcgs)) + 1  # first epoch with the highest NDCG
    assert model.best_epoch == best
    assert len(model.history) == best + 2 < 30  # stopped `patience` epochs after the best
    assert "early stop" in caplog.text
    assert all(
        h["loss"] > 0 and h["seconds"] > 0 and h["samples_per_second"] > 0 for h in model.history
    )
    # the kept weights are the best epoch's: re-measuring gives the best NDCG, not the last
    assert validation.score(model.recommend, train) == pytest.approx(max(ndcgs))
    assert max(ndcgs) > ndcgs[-1]


def test_without_patience_all_epochs_run_and_best_is_kept() -> None:
    train, validation = _train_with_valid()
    model = NCFRecommender(
        **{**TINY, "epochs": 6, "learning_rate": 0.3, "early_stopping_patience": None}
    ).fit(train, validation)
    ndcgs = [h["valid_ndcg_at_10"] for h in model.history]
    assert len(ndcgs) == 6
    assert model.best_epoch == int(np.argmax(ndcgs)) + 1
    assert validation.score(model.recommend, train) == pytest.approx(max(ndcgs))


def test_epochs_are_chosen_by_the_runs_validation_metric(caplog) -> None:
    """--validation-metric recall_at_5: the history records it and the best epoch is its best."""
    train, validation = _train_with_valid()
    by_recall = ValidationWindow(validation.user_idx, validation.item_idx, metric="recall_at_5")
    model = NCFRecommender(
        **{**TINY, "epochs": 6, "learning_rate": 0.3, "early_stopping_patience": None}
    )
    with caplog.at_level(logging.INFO, logger="reclab.models.ncf"):
        model.fit(train, by_recall)
    recalls = [h["valid_recall_at_5"] for h in model.history]
    assert "valid_ndcg_at_10" not in model.history[0]
    assert model.best_epoch == int(np.argmax(recalls)) + 1
    assert by_recall.score(model.recommend, train) == pytest.approx(max(recalls))
    assert "valid_recall_at_5" in caplog.text
    with pytest.raises(ValueError, match="is not '<name>_at_<k>'"):
        ValidationWindow(validation.user_idx, validation.item_idx, metric="recall").score(
            model.recommend, train
        )


def test_validation_window_without_warm_users_does_not_stop_training(caplog) -> None:
    train = planted_clusters()
    cold_only = ValidationWindow(np.array([-1, -1]), np.array([0, 1]))  # cold users only
    params = {**TINY, "epochs": 3, "early_stopping_patience": 1}
    with caplog.at_level(logging.WARNING, logger="reclab.models.ncf"):
        model = NCFRecommender(**params).fit(train, cold_only)
    assert len(model.history) == 3 and model.best_epoch is None
    assert "no validation user" in caplog.text


def test_no_validation_window_trains_every_epoch() -> None:
    model = NCFRecommender(**{**TINY, "epochs": 3}).fit(planted_clusters())
    assert len(model.history) == 3 and model.best_epoch is None
    assert all(np.isnan(h["valid_ndcg_at_10"]) for h in model.history)


def test_negative_sampling_shapes_ratio_and_rejection() -> None:
    pos_users = torch.tensor([0, 0, 1, 2, 2, 2])
    users, items = sample_negatives(pos_users, 5, 3, torch.Generator().manual_seed(0))
    assert users.shape == items.shape == (18,)
    assert users.dtype == items.dtype == torch.int64
    assert users.tolist() == pos_users.repeat_interleave(3).tolist()  # 3 per positive, same user
    assert items.min() >= 0 and items.max() < 5
    # with rejection, no negative is one of the user's positives
    n_items = 6
    pos_items = torch.tensor([0, 1, 2, 0, 3, 5])
    keys = torch.sort(pos_users * n_items + pos_items).values
    for seed in range(5):
        users, items = sample_negatives(
            pos_users, n_items, 4, torch.Generator().manual_seed(seed), keys
        )
        assert users.shape == items.shape == (24,)
        drawn = set(zip(users.tolist(), items.tolist(), strict=True))
        positives = set(zip(pos_users.tolist(), pos_items.tolist(), strict=True))
        assert not drawn & positives
    # seeded: same generator seed, same draws
    a = sample_negatives(pos_users, 50, 2, torch.Generator().manual_seed(7))[1]
    b = sample_negatives(pos_users, 50, 2, torch.Generator().manual_seed(7))[1]
    assert torch.equal(a, b)


def test_negative_sampling_is_roughly_uniform() -> None:
    users, items = sample_negatives(
        torch.zeros(10_000, dtype=torch.int64), 10, 4, torch.Generator().manual_seed(0)
    )
    counts = torch.bincount(items, minlength=10).float()
    assert counts.sum() == 40_000 and (counts / 4_000 - 1).abs().max() < 0.05


def test_device_selection_falls_back_to_cpu(monkeypatch, caplog) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with caplog.at_level(logging.WARNING, logger="reclab.models.ncf"):
        assert resolve_device("cuda") == torch.device("cpu")
    assert "CUDA is not available" in caplog.text
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    with pytest.raises(ValueError):
        resolve_device("tpu")


def test_auto_device_trains_on_cpu_without_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = NCFRecommender(**{**TINY, "epochs": 1, "device": "auto"}).fit(planted_clusters())
    assert next(model.network.parameters()).device == torch.device("cpu")


@pytest.mark.parametrize(
    "params",
    [
        {"gmf_dim": 0},
        {"mlp_dims": (63, 32)},  # odd concatenated width without mlp_embedding_dim
        {"mlp_dims": ()},
        {"mlp_embedding_dim": 0},
        {"negatives": 0},
        {"epochs": 0},
        {"batch_size": 0},
        {"learning_rate": 0},
        {"weight_decay": -1},
        {"dropout": 1.0},
        {"early_stopping_patience": 0},
        {"num_threads": 0},
        {"device": "tpu"},
    ],
)
def test_bad_parameters_raise(params) -> None:
    with pytest.raises(ValueError):
        NCFRecommender(**params)


def test_fits_after_metaflow_vendored_typing_extensions_was_imported() -> None:
    # The order pytest and notebooks hit: torch first, then a Metaflow Runner/client call
    # (which imports Metaflow's vendored typing_extensions), then NCF's first Adam step.
    import subprocess
    import sys

    script = (
        "import torch\n"
        "import metaflow._vendor.typing_extensions\n"
        "from reclab.models.ncf import NCFRecommender\n"
        "from tests.contract import planted_clusters\n"
        "NCFRecommender(epochs=1, device='cpu').fit(planted_clusters())\n"
        "print('fitted')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fitted" in done.stdout


def test_scoring_never_changes_the_process_wide_torch_threads(monkeypatch) -> None:
    """Serving scores from several threads: a per-call torch.set_num_threads would race."""
    model = NCFRecommender(**{**TINY, "epochs": 1}).fit(planted_clusters())
    restored = NCFRecommender.from_bytes(model.to_bytes())

    def refuse(_threads: int) -> None:
        raise AssertionError("scoring changed torch's process-wide thread count")

    monkeypatch.setattr(torch, "set_num_threads", refuse)
    users = np.arange(10)
    np.testing.assert_array_equal(restored.scores(users), model.scores(users))
    restored.recommend(users, 5)
