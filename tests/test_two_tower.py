"""Two-tower (Merlin): the shared contract on a tiny NVTabular output, tags, save/load.

The data is a tiny synthetic canonical dataset with two taste clusters (users of cluster c
interact with items of cluster c only), written with pandas and encoded by the real
``build_workflow``, so the Merlin schema tags (USER_ID, ITEM_ID, USER, ITEM) are the ones the
pipeline produces. Categorify orders codes by frequency, so encoded ids do not follow the
clusters; the planted-pattern test maps them back through the id maps.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reclab.encoded import load_train, load_window
from reclab.models.base import TrainData, ValidationWindow
from tests.contract import RecommenderContract

pytest.importorskip("merlin.models.tf")

N_USERS, N_ITEMS = 60, 40
USER_BASE, ITEM_BASE = 100, 1000  # raw ids: user 100 + u, item 1000 + i
TINY = {
    "epochs": 10,
    "batch_size": 64,
    "learning_rate": 0.05,
    "embedding_dim": 16,
    "early_stopping_patience": None,
    "seed": 0,
}


def cluster_frames(seed: int = 0, user_feature: str = "user_country", item_list: str = "item_tags"):
    """Canonical train/valid/test windows with two taste clusters and side features.

    Each user has 12 of their cluster's 20 items in train, 2 more in validation and 2 in test.
    User features: one categorical (random, no cluster signal) and ``user_age`` (int).
    Item features: a list column (random tags) and ``item_year`` (float, continuous).
    """
    rng = np.random.default_rng(seed)
    half = N_ITEMS // 2
    rows = []
    for user in range(N_USERS):
        own = np.arange((user % 2) * half, (user % 2 + 1) * half)
        chosen = rng.choice(own, size=16, replace=False)
        for position, item in enumerate(chosen):
            window = "train" if position < 12 else "valid" if position < 14 else "test"
            rows.append((USER_BASE + user, ITEM_BASE + int(item), window, position))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "window", "position"])
    frame["weight"] = 1.0
    frame["ts"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(
        frame["position"] * 1000 + frame.index, unit="s"
    )
    users = pd.DataFrame(
        {
            "user_id": USER_BASE + np.arange(N_USERS),
            user_feature: rng.choice(["de", "fr", "it"], N_USERS),
            "user_age": rng.integers(18, 60, N_USERS).astype(np.int32),
        }
    )
    tags = ["a", "b", "c", "d", "e"]
    items = pd.DataFrame(
        {
            "item_id": ITEM_BASE + np.arange(N_ITEMS),
            item_list: [
                list(rng.choice(tags, rng.integers(1, 3), replace=False)) for _ in range(N_ITEMS)
            ],
            "item_year": rng.integers(1990, 2020, N_ITEMS).astype(np.float64),
        }
    )
    frame = frame.merge(users, on="user_id").merge(items, on="item_id")
    return {
        window: part.drop(columns=["window", "position"]).reset_index(drop=True)
        for window, part in frame.groupby("window")
    }


def build_tiny(root: Path, **names: str) -> tuple[TrainData, object, ValidationWindow]:
    """Write the windows, run the real ``build_workflow``; return the TrainData (with
    nvt_dir), the built workflow and the validation window."""
    from workflow_builder import build_workflow

    split = root / "split"
    split.mkdir(parents=True)
    for window, frame in cluster_frames(**names).items():
        frame.to_parquet(split / f"{window}.parquet")
    built = build_workflow(split, root)
    train = load_train(root / "encoded", built.user_map, built.item_map)
    valid = load_window(root / "encoded", "valid")
    assert train.nvt_dir is not None
    return train, built, ValidationWindow(valid.user_idx, valid.item_idx)


def make_tiny(**overrides):
    from reclab.models.two_tower import TwoTowerRecommender

    return TwoTowerRecommender(**{**TINY, **overrides})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[TrainData, object, ValidationWindow]:
    return build_tiny(tmp_path_factory.mktemp("two_tower"))


class TestTwoTower(RecommenderContract):
    def make_model(self):
        return make_tiny()

    @pytest.fixture(scope="class")
    def train(self, tiny) -> TrainData:
        return tiny[0]

    @pytest.fixture(scope="class")
    def validation(self, tiny) -> ValidationWindow:
        return tiny[2]

    def test_planted_pattern_recovered(self, fitted, train, tiny) -> None:
        built = tiny[1]
        users = np.arange(train.n_users)
        items, _ = fitted.recommend(users, 5)
        user_cluster = (built.user_map.to_raw(users) - USER_BASE) % 2
        item_cluster = (built.item_map.to_raw(items.ravel()) - ITEM_BASE) // (N_ITEMS // 2)
        in_cluster = item_cluster.reshape(items.shape) == user_cluster[:, None]
        assert in_cluster.mean() > 0.9

    def test_save_load_reproduces_scores_exactly(self, fitted, train) -> None:
        users = np.arange(train.n_users)
        for restored in (
            type(fitted).from_bytes(fitted.to_bytes()),
            pickle.loads(pickle.dumps(fitted)),
        ):
            np.testing.assert_array_equal(restored.scores(users), fitted.scores(users))
            for a, b in zip(restored.recommend(users, 7), fitted.recommend(users, 7), strict=True):
                np.testing.assert_array_equal(a, b)
            assert restored.best_epoch == fitted.best_epoch
            assert restored.params == fitted.params

    def test_embeddings_and_history(self, fitted, train) -> None:
        assert fitted.user_embeddings.shape == (train.n_users, TINY["embedding_dim"])
        assert fitted.item_embeddings.shape == (train.n_items, TINY["embedding_dim"])
        np.testing.assert_allclose(np.linalg.norm(fitted.user_embeddings, axis=1), 1, atol=1e-5)
        np.testing.assert_allclose(
            fitted.scores(np.array([3]), exclude_seen=False),
            fitted.user_embeddings[[3]] @ fitted.item_embeddings.T,
        )
        # validation given: every epoch logged with our NDCG, the best one kept
        assert len(fitted.history) == TINY["epochs"]
        ndcg = [h["valid_ndcg_at_10"] for h in fitted.history]
        assert fitted.best_epoch == int(np.argmax(ndcg)) + 1

    def test_towers_take_inputs_by_tags(self, fitted) -> None:
        assert fitted.inputs["query"][0] == "user_id"
        assert set(fitted.inputs["query"]) == {"user_id", "user_country", "user_age"}
        assert set(fitted.inputs["candidate"]) == {"item_id", "item_tags", "item_year"}


def test_renamed_feature_columns_are_still_found_by_tags(tmp_path) -> None:
    train, _, validation = build_tiny(tmp_path, user_feature="user_region", item_list="item_labels")
    model = make_tiny(epochs=1).fit(train, validation)
    assert "user_region" in model.inputs["query"] and "item_labels" in model.inputs["candidate"]
    assert "user_country" not in model.inputs["query"]
    items, _ = model.recommend(np.arange(train.n_users), 3)
    assert (items >= 0).all()


def test_needs_the_nvtabular_output(tiny) -> None:
    train = tiny[0]
    bare = dataclasses.replace(train, nvt_dir=None)
    with pytest.raises(ValueError, match="nvt_dir"):
        make_tiny().fit(bare)


@pytest.mark.parametrize(
    "bad",
    [{"epochs": 0}, {"optimizer": "sgd"}, {"temperature": 0}, {"mlp_dims": [0]}],
)
def test_bad_parameters_raise(bad) -> None:
    with pytest.raises(ValueError):
        make_tiny(**bad)
