"""The pre-computed cache: every known user's top-k as hive-partitioned parquet."""

from __future__ import annotations

import numpy as np
import pytest

from reclab.batch_scoring import (
    default_scores_location,
    publish_batch_scores,
    read_batch_scores,
    write_batch_scores,
)
from reclab.bundle import ModelBundle
from reclab.errors import InputError
from reclab.id_maps import IdMap
from reclab.models.knn import ItemKNNRecommender
from tests.contract import planted_clusters


def _bundle(n_extra_users: int = 0) -> ModelBundle:
    train = planted_clusters()
    model = ItemKNNRecommender(n_neighbors=5).fit(train)
    return ModelBundle(
        family="item_knn",
        params={},
        model_payload=model.to_bytes(),
        user_map=IdMap("user_id", np.arange(500, 500 + train.n_users + n_extra_users), 3),
        item_map=IdMap("item_id", train.item_ids, 3),
    )


def test_every_known_user_gets_k_ranked_rows_equal_to_recommend(tmp_path) -> None:
    bundle = _bundle()
    written = write_batch_scores(bundle, tmp_path / "scores", k=4, n_buckets=3, batch_size=7)
    frame = read_batch_scores(written.location)
    n_users = len(bundle.user_map)
    assert written.users == n_users and written.rows == len(frame)
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == [
        "bucket=0",
        "bucket=1",
        "bucket=2",
    ]
    assert set(frame["user_id"]) == set(bundle.user_map.raw_ids.tolist())
    for user_id, rows in frame.groupby("user_id"):
        expected = bundle.recommend(user_id, k=4)
        assert rows["rank"].tolist() == list(range(1, len(expected) + 1))
        assert rows["item_id"].tolist() == expected["item_id"].tolist()
        np.testing.assert_allclose(rows["score"], expected["score"], rtol=1e-6)
        assert (np.diff(rows["score"].to_numpy()) <= 0).all()
        assert (rows["bucket"] == (user_id - 500) % 3).all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_failure_leaves_nothing_behind(tmp_path) -> None:
    # The id map knows more users than the model: recommend fails after the first batches.
    with pytest.raises(ValueError, match="user_idx must lie in"):
        write_batch_scores(_bundle(n_extra_users=5), tmp_path / "scores", k=3, batch_size=10)
    assert list(tmp_path.iterdir()) == []


def test_refuses_bad_k_and_an_existing_directory(tmp_path) -> None:
    with pytest.raises(InputError, match="k must be an integer >= 1"):
        write_batch_scores(_bundle(), tmp_path / "scores", k=0)
    (tmp_path / "scores").mkdir()
    with pytest.raises(InputError, match="already exists"):
        publish_batch_scores(_bundle(), str(tmp_path / "scores"))


def test_default_location_is_beside_the_run() -> None:
    assert default_scores_location("local", "/x/.metaflow", "TrainFlow", "12") == (
        "/x/.metaflow/TrainFlow/12/batch_scores"
    )
    assert default_scores_location("s3", "s3://b/mf/", "TrainFlow", "12") == (
        "s3://b/mf/TrainFlow/12/batch_scores"
    )


def test_two_claims_at_once_one_wins_and_the_other_names_it(tmp_path) -> None:
    """The directory never exists without its claim: the loser always learns who holds it."""
    import threading

    from reclab.batch_scoring import CLAIM_FILE, claim_scores_location
    from reclab.errors import InputError

    for attempt in range(30):
        location = str(tmp_path / f"scores-{attempt}")
        barrier = threading.Barrier(2)
        errors: dict[str, str] = {}

        def claim(owner: str, location=location, barrier=barrier, errors=errors) -> None:
            barrier.wait()
            try:
                claim_scores_location(location, owner)
            except InputError as error:
                errors[owner] = str(error)

        threads = [threading.Thread(target=claim, args=(f"TrainFlow/{n}",)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(errors) == 1, errors
        ((loser, message),) = errors.items()
        winner = (tmp_path / f"scores-{attempt}" / CLAIM_FILE).read_text()
        assert winner != loser and f"is claimed by run {winner}" in message
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
