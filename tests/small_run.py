"""A small fitted run for the serving tests: real models on a hand-made interaction set, bundled
in-process the way ``TrainFlow`` bundles them (no flow run, a few seconds).

40 users in two taste clusters over 12 items with shuffled raw ids (so the raw-id tie-break is
not the index order). Users 20 and 21 each log item 204 six times: it has the most train
interactions but few distinct users, so the popularity baseline's ranking (interaction rows)
and a distinct-user ranking differ in their top 5. Item metadata has a title, a list column
(``item_genres``) and a numeric one (``item_year``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reclab.bundle import ModelBundle
from reclab.id_maps import IdMap
from reclab.models.als import ALSRecommender
from reclab.models.base import Recommender, TrainData
from reclab.models.baselines import PopularityRecommender
from reclab.models.knn import ItemKNNRecommender
from reclab.models.sar import SARRecommender

ITEM_IDS = np.array([205, 203, 201, 210, 207, 202, 209, 204, 206, 208, 211, 212])
USER_IDS = np.arange(1000, 1040)
REPEATED_ITEM = 204  # six interactions each by users 1020 and 1021
GENRES = {0: ["Comedy"], 1: ["Comedy", "Drama"], 2: ["Drama"]}
UNKNOWN_USER = 999_999


def small_train(seed: int = 0) -> TrainData:
    """The interactions (see the module docstring); timestamps one hour apart."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for user in range(len(USER_IDS)):
        own = np.arange(6) if user < 20 else np.arange(6, 12)
        chosen = rng.choice(own, size=3, replace=False)
        users += [user] * 3
        items += chosen.tolist()
    repeated = int(np.flatnonzero(ITEM_IDS == REPEATED_ITEM)[0])
    for user in (20, 21):
        users += [user] * 6
        items += [repeated] * 6
    n = len(users)
    return TrainData(
        user_idx=np.asarray(users, dtype=np.int64),
        item_idx=np.asarray(items, dtype=np.int64),
        weight=rng.integers(1, 6, n).astype(np.float64),
        ts=1_700_000_000.0 + np.arange(n, dtype=np.float64) * 3600.0,
        n_users=len(USER_IDS),
        n_items=len(ITEM_IDS),
        item_ids=ITEM_IDS,
    )


def item_metadata() -> pd.DataFrame:
    """Title, genres (a list column) and year per raw item id."""
    return pd.DataFrame(
        {
            "title": [f"Item {raw}" for raw in ITEM_IDS],
            "item_genres": [
                GENRES[i % 3] if i < 6 else ["Sci-Fi", "Adventure"][: 1 + i % 2]
                for i in range(len(ITEM_IDS))
            ],
            "item_year": [1990.0 + i % 4 for i in range(len(ITEM_IDS))],
        },
        index=pd.Index(ITEM_IDS, name="item_id"),
    )


def fitted_models(train: TrainData) -> dict[str, Recommender]:
    """One small fitted model per family the service routes to, in leaderboard order."""
    return {
        "popularity": PopularityRecommender().fit(train),
        "sar": SARRecommender(similarity="jaccard", time_decay_half_life_days=30.0).fit(train),
        "item_knn": ItemKNNRecommender(n_neighbors=5).fit(train),
        "als": ALSRecommender(factors=4, iterations=10, num_threads=1, use_gpu=False, seed=0).fit(
            train
        ),
    }


def bundle_of(
    family: str,
    model: Recommender,
    metadata: pd.DataFrame | None = None,
    item_popularity: np.ndarray | None = None,
) -> ModelBundle:
    """A bundle as the join step makes it (payload, id maps, metadata)."""
    return ModelBundle(
        family=family,
        params=dict(model.params),
        model_payload=model.to_bytes(),
        user_map=IdMap("user_id", USER_IDS, 1),
        item_map=IdMap("item_id", ITEM_IDS, 1),
        item_metadata=metadata,
        metrics={"valid_ndcg_at_10": 0.5},
        item_popularity=item_popularity,
    )


def small_run(seed: int = 0) -> dict[str, ModelBundle]:
    """Every family's bundle, in leaderboard order, with metadata."""
    train = small_train(seed)
    metadata = item_metadata()
    return {
        family: bundle_of(family, model, metadata) for family, model in fitted_models(train).items()
    }


def rows_per_item(train: TrainData) -> np.ndarray:
    """Train interaction rows per item, counted here independently of reclab."""
    counts = np.zeros(train.n_items)
    for item in train.item_idx:
        counts[item] += 1
    return counts


def ranked_raw_ids(counts: np.ndarray) -> list[int]:
    """Raw item ids by count, ties to the smaller raw id (sorted by hand)."""
    return [
        int(ITEM_IDS[i])
        for i in sorted(range(len(ITEM_IDS)), key=lambda i: (-counts[i], ITEM_IDS[i]))
    ]
