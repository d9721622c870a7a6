"""Adding a model family: one module plus one grid entry, as the README's "Model families" says.

``ItemMeanRecommender`` below is a complete family written exactly that way: a frozen
``Params`` dataclass checked once, ``_fit`` and the one scoring hook ``_scores_into``. The tests
register it at test time (one :class:`FamilySpec`), give it one grid entry, and run it through
the real training path on MovieLens-100k: ``build_workflow`` (NVTabular), the grid file,
``plan_candidates``, ``train_and_evaluate`` (fit, the evaluator on both windows, ``to_bytes``)
and the leaderboard, then load the winner's payload back as serving does. The contract tests of
``tests/contract.py`` run on it too, and the save/load format version is checked for every
registered family.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reclab.errors import InputError
from reclab.models.base import (
    FormatVersionError,
    Recommender,
    TrainData,
    ValidationWindow,
    evaluate_window,
)
from reclab.models.capabilities import Explains, FoldIn, ItemSimilarity
from reclab.models.params import check_field
from reclab.models.registry import FAMILIES, FamilySpec, make_model
from tests.contract import RecommenderContract, planted_clusters

# ------------------------------------------------------------------------------------------
# The toy family: this block is the whole module a new family needs.
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemMeanParams:
    """Hyper-parameters of :class:`ItemMeanRecommender`.

    Attributes:
        prior_count: Pseudo-interactions of weight 0 added to every item, so an item rated 5
            once does not outrank one rated 4.5 a hundred times (>= 0).
    """

    prior_count: float = 10.0

    def __post_init__(self) -> None:
        check_field(self, "prior_count", 0)


class ItemMeanRecommender(Recommender):
    """Ranks items by their mean train weight (rating), shrunk towards 0 by ``prior_count``."""

    family = "item_mean"
    Params = ItemMeanParams
    format_version = 1

    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None:
        sums = np.bincount(train.item_idx, weights=train.weight, minlength=train.n_items)
        counts = np.bincount(train.item_idx, minlength=train.n_items)
        self.item_means = (sums / (counts + self.hparams.prior_count)).astype(np.float32)

    def _scores_into(self, user_idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        out[:] = self.item_means
        return out


TOY_SPEC = FamilySpec("item_mean", f"{__name__}:ItemMeanRecommender")


@pytest.fixture
def registered(monkeypatch) -> FamilySpec:
    """The toy family in the registry for one test (``FAMILIES`` is restored afterwards)."""
    monkeypatch.setitem(FAMILIES, TOY_SPEC.name, TOY_SPEC)
    return TOY_SPEC


# ------------------------------------------------------------------------------------------
# The contract, the parameters, the format version
# ------------------------------------------------------------------------------------------


class TestItemMeanContract(RecommenderContract):
    learns_planted_pattern = False  # one ranking for everyone

    def make_model(self):
        return ItemMeanRecommender(prior_count=2)


def test_parameters_are_checked_once_and_unknown_names_are_refused() -> None:
    model = ItemMeanRecommender(prior_count=3)
    assert model.hparams == ItemMeanParams(prior_count=3.0)
    assert model.params == {"prior_count": 3.0}
    assert isinstance(model.hparams.prior_count, float)  # normalised at construction
    with pytest.raises(ValueError, match=r"prior_count must be a finite number >= 0"):
        ItemMeanRecommender(prior_count=-1)
    with pytest.raises(ValueError, match=r"prior_count must be a finite number"):
        ItemMeanRecommender(prior_count=float("nan"))
    message = r"item_mean: unknown parameter\(s\) \['prior'\]; item_mean accepts"
    with pytest.raises(ValueError, match=message + r" \['prior_count'\]"):
        ItemMeanRecommender(prior=1)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_states_its_parameters_and_capabilities(family) -> None:
    cls = FAMILIES[family].load_class()
    model = make_model(family, {}, seed=0)
    assert model.params == type(model)(**model.params).params  # a dict that rebuilds it
    with pytest.raises(ValueError, match=rf"{family}: unknown parameter\(s\) \['no_such'\]"):
        cls(no_such=1)
    assert isinstance(cls.format_version, int)
    # Capabilities are the mixins: no flags, and a family without one has no such method.
    for capability, method in (
        (FoldIn, "fold_in_scores"),
        (ItemSimilarity, "item_similarity_scores"),
        (Explains, "explain"),
    ):
        assert issubclass(cls, capability) == hasattr(cls, method), (family, method)
    for flag in ("can_fold_in", "can_find_similar", "can_explain", "uses_gpu"):
        assert not hasattr(cls, flag)


@pytest.mark.parametrize(
    "family",
    ["popularity", "random", "recent_popularity", "sar", "item_knn", "ease", "recency_blend"],
)
def test_a_payload_of_another_format_version_is_refused(family) -> None:
    model = make_model(family, {}, seed=0).fit(planted_clusters())
    cls = type(model)
    envelope = pickle.loads(model.to_bytes())
    assert envelope["family"] == family and envelope["format"] == cls.format_version
    envelope["format"] = cls.format_version + 1
    held, reads = cls.format_version + 1, cls.format_version
    with pytest.raises(
        FormatVersionError, match=rf"holds format version {held}; this code reads .* {reads}"
    ):
        cls.from_bytes(pickle.dumps(envelope))
    # a model pickled by class path, as before format versions, is refused the same way
    with pytest.raises(FormatVersionError, match="no format version"):
        cls.from_bytes(pickle.dumps(model))
    other = "popularity" if family != "popularity" else "random"
    with pytest.raises(TypeError, match=f"payload holds a {family} model"):
        FAMILIES[other].load_class().from_bytes(model.to_bytes())


# ------------------------------------------------------------------------------------------
# One grid entry, the real training path on MovieLens-100k
# ------------------------------------------------------------------------------------------


def _write_ml100k_windows(ml100k_dir: Path, split_dir: Path) -> None:
    """MovieLens-100k in the canonical split layout, windowed by time like the flow."""
    ratings = pd.read_csv(
        ml100k_dir / "u.data", sep="\t", names=["user_id", "item_id", "weight", "ts"]
    )
    ratings["weight"] = ratings["weight"].astype(np.float64)
    ratings["ts"] = pd.to_datetime(ratings["ts"], unit="s")
    valid_start, test_start = pd.Timestamp("1998-03-07"), pd.Timestamp("1998-03-31")
    split_dir.mkdir(parents=True)
    windows = {
        "train": ratings[ratings["ts"] < valid_start],
        "valid": ratings[(ratings["ts"] >= valid_start) & (ratings["ts"] < test_start)],
        "test": ratings[ratings["ts"] >= test_start],
    }
    for name, frame in windows.items():
        frame.reset_index(drop=True).to_parquet(split_dir / f"{name}.parquet")


def test_a_family_added_in_one_module_and_one_grid_entry_trains_in_the_flow_path(
    registered, ml100k_dir, tmp_path
) -> None:
    from reclab.bundle import ModelBundle
    from reclab.encoded import load_train, load_window
    from reclab.grids import load_grids
    from reclab.training import build_leaderboard, plan_candidates, train_and_evaluate
    from workflow_builder import build_workflow

    grid_file = tmp_path / "grids.json"
    grid_file.write_text(
        json.dumps({"popularity": {"quick": [{}]}, "item_mean": {"quick": [{"prior_count": 25}]}})
    )
    cpu, gpu = plan_candidates(["popularity", "item_mean"], grid_file=grid_file)
    assert gpu == [] and [c["candidate_id"] for c in cpu] == ["popularity-0", "item_mean-0"]
    _write_ml100k_windows(ml100k_dir, tmp_path / "split")
    built = build_workflow(tmp_path / "split", tmp_path, with_features=False)
    encoded = tmp_path / "encoded"
    results = [
        train_and_evaluate(c, encoded, built.user_map, built.item_map, seed=0, bootstrap_samples=20)
        for c in cpu
    ]
    board = build_leaderboard(results, "ndcg_at_10").set_index("candidate_id")
    toy = board.loc["item_mean-0"]
    assert toy["family"] == "item_mean" and json.loads(toy["params"]) == {"prior_count": 25}
    # The leaderboard's figures are the evaluator's on a model fitted here independently.
    train = load_train(encoded, built.user_map, built.item_map)
    model = ItemMeanRecommender(prior_count=25).fit(train)
    for name in ("valid", "test"):
        window = load_window(encoded, name)
        expected = evaluate_window(train, model.recommend, window.user_idx, window.item_idx)
        assert toy[f"{name}_ndcg_at_10"] == pytest.approx(expected.metrics["ndcg_at_10"])
        assert toy[f"{name}_recall_at_10"] == pytest.approx(expected.metrics["recall_at_10"])
    assert 0 < toy["valid_ndcg_at_10"] < 1
    # Serving loads the payload through the registry, checking family and format version.
    payload = next(r.model_payload for r in results if r.candidate["family"] == "item_mean")
    bundle = ModelBundle(
        family="item_mean",
        params={"prior_count": 25},
        model_payload=payload,
        user_map=built.user_map,
        item_map=built.item_map,
    )
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(
        bundle.model.recommend(users, 10)[0], model.recommend(users, 10)[0]
    )
    # A run without the popularity family still serves the popularity baseline's cold-start
    # ranking: every bundle carries the counts the baseline was fitted with.
    from reclab.serving import RecommendationService
    from reclab.training import summarise_run

    toy_only = [r for r in results if r.candidate["family"] == "item_mean"]
    summary = summarise_run(toy_only, "ndcg_at_10", built.user_map, built.item_map, None, {})
    assert "popularity" not in summary.best_model_per_family
    baseline = next(r for r in results if r.candidate["family"] == "popularity")
    baseline_model = ModelBundle(
        family="popularity",
        params={},
        model_payload=baseline.model_payload,
        user_map=built.user_map,
        item_map=built.item_map,
    ).model
    np.testing.assert_array_equal(summary.best_model.item_popularity, baseline_model.item_counts)
    service = RecommendationService(summary.best_model, summary.best_model_per_family)
    cold = service.recommend(10**9, k=10)  # a user id the data never had
    assert cold["cold_start"] is True
    expected = baseline_model.recommend(np.array([0]), 10, exclude_seen=False)[0][0]
    assert [item["item_id"] for item in cold["items"]] == built.item_map.to_raw(expected).tolist()
    # An unknown parameter in the grid entry fails before training, naming what is accepted.
    grid_file.write_text(json.dumps({"item_mean": {"quick": [{"prior": 25}]}}))
    with pytest.raises(InputError, match=r"unknown parameter\(s\) \['prior'\]; item_mean accepts"):
        load_grids(grid_file)
