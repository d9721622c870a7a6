"""How the deep families (NCF, two-tower) stay usable on large train data.

Why this module exists: on a CPU, NCF and the Merlin two-tower model train at about 10-30
thousand rows per CPU second, less as the embedding tables grow (``benchmarks/README.md``, "Deep
families at scale"), so one epoch over MovieLens-25M's 20M train rows costs 45 minutes of CPU
or more and a candidate (4-10 epochs) many hours. Two things keep them usable, both seeded and
stated:

* **A training-row cap** (``max_train_rows``). ``"auto"`` (the default) caps training at
  :data:`CPU_MAX_TRAIN_ROWS` rows when the family trains on a CPU and uses every row on a GPU;
  an int caps at that many rows everywhere; None uses every row everywhere. The kept rows are
  the **most recent** ones (the validation and test windows follow train in time, so these are
  the rows closest to what is evaluated); rows tied at the cut-off time are drawn with the seed.
  Without timestamps the kept rows are a seeded uniform sample. The id space never changes:
  every train user and item keeps its embedding row and stays scorable, seen items are still
  those of the full train, and the evaluator still judges every user, so a user whose rows
  were all cut costs the metric what it costs. The model states the cap in ``train_sample``
  and ``train_rows_used``, and the leaderboard carries both.
* **A validation sample for epoch selection** (``validation_sample_users``). After each epoch
  the deep families measure validation NDCG@10 to keep the best epoch (and to stop early). On
  a large window that is a full-catalogue ranking of tens of thousands of users per epoch, so
  a seeded sample of at most that many warm validation users (with all their window rows and
  train rows) is used instead. The leaderboard's validation and test figures are still computed
  on the whole windows, after training.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reclab.models.base import PicklesThroughBytes, TrainData, ValidationWindow
from reclab.models.params import check_field, check_number, set_field

logger = logging.getLogger(__name__)

# Rows a deep family trains on by default on a CPU: at MovieLens-25M's table sizes an NCF epoch
# of about 2.3 min of CPU (4.9k steps), a ten-epoch candidate about 25 min (measured per step:
# benchmarks/README.md, "Deep families at scale").
CPU_MAX_TRAIN_ROWS = 1_000_000
# Warm validation users whose NDCG@10 picks the best epoch: a standard error of at most 0.011
# on a mean NDCG (a user's NDCG lies in [0, 1], so its standard deviation is at most 0.5), less
# on the difference of two epochs measured on the same users. NCF scores
# every item through its MLP: 2,000 users x 52-59k items took 13-33 s per epoch on one thread.
VALIDATION_SAMPLE_USERS = 2_000


@dataclass(frozen=True)
class DeepParams:
    """The hyper-parameters the deep families share, checked once; each family's ``Params``
    subclasses it, adds its own fields and may change a default (the families' docstrings
    describe every field).

    Attributes:
        epochs: Maximum number of epochs.
        batch_size: Train rows per optimizer step.
        learning_rate: The optimizer's learning rate (> 0).
        mlp_dims: Layer sizes of the family's MLP.
        early_stopping_patience: With a validation window, stop after this many epochs without
            a better validation NDCG@10; None never stops early.
        seed: Seeds the fit.
        deterministic: Ask the framework for deterministic ops while fitting.
        max_train_rows: The row cap: ``"auto"``, None or an int >= 1 (module docstring).
        validation_sample_users: Warm validation users the per-epoch NDCG@10 is measured on
            (None: all of them).
    """

    epochs: int = 10
    batch_size: int = 1024
    learning_rate: float = 1e-3
    mlp_dims: Sequence[int] = ()
    early_stopping_patience: int | None = None
    seed: int = 0
    deterministic: bool = False
    max_train_rows: int | str | None = "auto"
    validation_sample_users: int | None = VALIDATION_SAMPLE_USERS

    def __post_init__(self) -> None:
        check_field(self, "epochs", 1, integer=True)
        check_field(self, "batch_size", 1, integer=True)
        check_field(self, "learning_rate", 0, low_open=True)
        dims = tuple(check_number("mlp_dims[]", d, 1, integer=True) for d in self.mlp_dims)
        set_field(self, "mlp_dims", dims)
        check_field(self, "early_stopping_patience", 1, integer=True, allow_none=True)
        check_field(self, "seed", 0, integer=True)
        set_field(self, "deterministic", bool(self.deterministic))
        set_field(self, "max_train_rows", check_max_train_rows(self.max_train_rows))
        users = check_validation_sample_users(self.validation_sample_users)
        set_field(self, "validation_sample_users", users)

    def train_rows(self, train: TrainData, on_gpu: bool) -> tuple[np.ndarray | None, str]:
        """:func:`capped_train_rows` under this cap (``"auto"`` resolved for the device)."""
        return capped_train_rows(
            train, resolve_max_train_rows(self.max_train_rows, on_gpu), self.seed
        )


def check_max_train_rows(value: int | str | None) -> int | str | None:
    """A valid ``max_train_rows``: ``"auto"``, None or an int >= 1.

    Raises:
        ValueError: Saying what the hyper-parameter accepts.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None if value is None else "auto"
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(
            "max_train_rows must be 'auto' (a cap of "
            f"{CPU_MAX_TRAIN_ROWS:,} rows on a CPU, none on a GPU), None (every row) or an "
            f"int >= 1, got {value!r}"
        )
    return int(value)


def check_validation_sample_users(value: int | None) -> int | None:
    """A valid ``validation_sample_users``: None (every user) or an int >= 1.

    Raises:
        ValueError: Saying what the hyper-parameter accepts.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"validation_sample_users must be None or an int >= 1, got {value!r}")
    return int(value)


def resolve_max_train_rows(max_train_rows: int | str | None, on_gpu: bool) -> int | None:
    """The cap that applies: ``"auto"`` is :data:`CPU_MAX_TRAIN_ROWS` on a CPU, none on a GPU."""
    if max_train_rows == "auto":
        return None if on_gpu else CPU_MAX_TRAIN_ROWS
    return max_train_rows


def capped_train_rows(
    train: TrainData, max_rows: int | None, seed: int
) -> tuple[np.ndarray | None, str]:
    """The train rows a capped family trains on, and a sentence that says so.

    Args:
        train: The full train data.
        max_rows: At most this many rows; None keeps every row.
        seed: Draws the rows tied at the cut-off time (or the sample, without timestamps).

    Returns:
        (row indices in increasing order, or None when every row is kept; a description for the
        leaderboard, empty when every row is kept).
    """
    n = len(train.user_idx)
    if max_rows is None or n <= max_rows:
        return None, ""
    rng = np.random.default_rng(seed)
    if train.ts is not None:
        # The max_rows most recent rows: every row after the cut-off time, and a seeded draw
        # of the rows at it. np.partition is linear; a full sort of 20M times took seconds.
        ts = np.nan_to_num(np.asarray(train.ts, dtype=np.float64), nan=-np.inf)  # NaN: oldest
        cutoff = np.partition(ts, n - max_rows)[n - max_rows]
        after = np.flatnonzero(ts > cutoff)
        at = np.flatnonzero(ts == cutoff)
        drawn = rng.choice(at, size=max_rows - len(after), replace=False)
        rows = np.sort(np.concatenate((after, drawn)))
        rule = "most recent"
    else:
        rows = np.sort(rng.choice(n, size=max_rows, replace=False))
        rule = "random (no timestamps)"
    users_with_rows = np.zeros(train.n_users, dtype=bool)
    users_with_rows[train.user_idx] = True
    kept_users = np.zeros(train.n_users, dtype=bool)
    kept_users[train.user_idx[rows]] = True
    items_with_rows = np.zeros(train.n_items, dtype=bool)
    items_with_rows[train.item_idx] = True
    kept_items = np.zeros(train.n_items, dtype=bool)
    kept_items[train.item_idx[rows]] = True
    users_cut = int(users_with_rows.sum() - kept_users.sum())
    items_cut = int(items_with_rows.sum() - kept_items.sum())
    note = (
        f"{rule} {len(rows):,} of {n:,} train rows (max_train_rows {max_rows:,}); "
        f"{users_cut:,} users and {items_cut:,} items have no row left (untrained embeddings)"
    )
    logger.info("training on a capped sample: %s", note)
    return rows, note


def validation_sample(
    train: TrainData, validation: ValidationWindow, max_users: int | None, seed: int
) -> tuple[TrainData, ValidationWindow]:
    """The train data and window an epoch's validation NDCG is measured on: at most
    ``max_users`` warm validation users, drawn with ``seed``, with all their validation and
    train rows.

    Per user the evaluator reads only that user's train and window rows, so each sampled user
    scores exactly as in a full evaluation; cold window users are never evaluated and are left
    out. Returns ``(train, validation)`` themselves when the window has at most ``max_users``
    warm users.
    """
    if max_users is None:
        return train, validation
    window_users = np.asarray(validation.user_idx, dtype=np.int64)
    warm_users = np.unique(window_users[window_users >= 0])
    if len(warm_users) <= max_users:
        return train, validation
    chosen = np.zeros(train.n_users, dtype=bool)
    chosen[np.random.default_rng(seed).choice(warm_users, size=max_users, replace=False)] = True
    window_rows = (window_users >= 0) & chosen[np.maximum(window_users, 0)]
    train_rows = chosen[train.user_idx]
    logger.info(
        "epoch validation on a seeded sample of %d of %d warm validation users",
        max_users,
        len(warm_users),
    )
    sample = TrainData(
        user_idx=train.user_idx[train_rows],
        item_idx=train.item_idx[train_rows],
        weight=train.weight[train_rows],
        ts=None if train.ts is None else train.ts[train_rows],
        n_users=train.n_users,
        n_items=train.n_items,
        item_ids=train.item_ids,
    )
    window = ValidationWindow(
        user_idx=window_users[window_rows],
        item_idx=np.asarray(validation.item_idx, dtype=np.int64)[window_rows],
        metric=validation.metric,
    )
    return sample, window


class EpochTrained(PicklesThroughBytes):
    """A deep family's mixin: trained epoch by epoch, it keeps one ``history`` record per epoch
    and the ``best_epoch`` chosen on validation (None without a window), and pickles through
    its framework-free ``to_bytes`` payload."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.history: list[dict[str, float]] = []
        self.best_epoch: int | None = None
        self._valid_key = "valid_ndcg_at_10"  # history key of the selection metric


class EpochSelector:
    """Keeps the best epoch by the run's validation metric and says when to stop early (NCF,
    two-tower).

    Args:
        name: The family's name in log lines.
        patience: Stop after this many epochs without a better score; None never stops early.
        log: The family's logger (its early-stop line is the family's).
        metric: The validation metric's name, for the log lines.
    """

    def __init__(
        self, name: str, patience: int | None, log: logging.Logger, metric: str = "ndcg_at_10"
    ) -> None:
        self.name = name
        self.patience = patience
        self.log = log
        self.metric = metric
        self.best_score = -math.inf
        self.best_epoch: int | None = None
        self.best: Any = None  # what the family keeps of its best epoch
        self.stale = 0

    def record(self, epoch: int, score: float, snapshot: Callable[[], Any]) -> None:
        """Note an epoch's validation score; ``snapshot()`` is kept when it is the best so far."""
        if score > self.best_score:
            self.best_score, self.stale, self.best_epoch = score, 0, epoch
            self.best = snapshot()
        else:
            self.stale += 1

    def should_stop(self, epoch: int) -> bool:
        """True (and logged) when ``patience`` epochs in a row brought no better score."""
        if self.patience is None or self.stale < self.patience:
            return False
        self.log.info(
            "%s: early stop after epoch %d; best epoch %d (valid %s %.4f)",
            self.name,
            epoch,
            self.best_epoch,
            self.metric,
            self.best_score,
        )
        return True
