"""Neural Collaborative Filtering (NeuMF), as in NVIDIA DeepLearningExamples' PyTorch NCF.

Why this module exists: NeuMF is the deep implicit-feedback baseline of the pipeline, the one
family that learns a non-linear user x item interaction from ids alone. It follows NVIDIA's
``neumf.py``:

* a **GMF** branch: user and item embeddings of ``gmf_dim``, multiplied elementwise;
* an **MLP** branch: separate user and item embeddings of ``mlp_dims[0] // 2`` (or an explicit
  ``mlp_embedding_dim``), concatenated and passed through ``Linear -> ReLU (-> dropout)``
  layers of sizes ``mlp_dims[1:]``;
* the two outputs concatenated into one ``Linear(.., 1)``: the logit.

Initialisation is NVIDIA's: embeddings ``N(0, 0.01)``, MLP weights Glorot-uniform, final layer
LeCun-uniform, biases PyTorch's default.

Training is implicit: every distinct train (user, item) pair is a positive; each epoch draws
``negatives`` items per positive uniformly over the catalogue (seeded; optionally redrawing
those that are among the user's positives), and minimises binary cross-entropy on the logits
with Adam. When ``fit`` is given a validation window (``ValidationWindow``),
the run's validation metric (``--validation-metric``, NDCG@10 by default) of
:func:`reclab.evaluation.evaluate` is measured after every epoch (on a
seeded sample of ``validation_sample_users`` warm users), the best epoch's weights are kept and
training stops after ``early_stopping_patience`` epochs without improvement. On a CPU training
is capped at the most recent ``max_train_rows`` rows (:mod:`reclab.models.deep_scale`).

Scoring is exact and needs no (user, item) pair tensor for the first layers: the final layer
splits into a GMF part, ``(U_gmf * w_gmf) @ I_gmf^T``, and an MLP part whose first linear layer
splits into a user term and an item term, ``W [u; i] + b = W_u u + W_i i + b``, so each user
batch is scored against all items on the device in chunks of about ``score_chunk_pairs`` pairs.

torch is imported here, never at package import; import torch before TensorFlow when both are
used in one process.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import logging
import math
import os
import sys
import time
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from reclab.models.base import (
    Recommender,
    TrainData,
    ValidationWindow,
    check_format_version,
)
from reclab.models.deep_scale import DeepParams, EpochSelector, EpochTrained, validation_sample
from reclab.models.params import check_field, set_field

logger = logging.getLogger(__name__)

_MAX_REJECTION_ROUNDS = 50
# recommend scores at most about this many (user, item) pairs per user batch: 256 MB of float32
# per score matrix, whatever the training batch size and the catalogue.
_SCORE_BATCH_PAIRS = 1 << 26


def resolve_device(device: str) -> torch.device:
    """The torch device to train and score on.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:<n>"``. A CUDA device asked for on a machine without one falls back to the
            CPU with a warning, so a GPU step that lands on a CPU host still runs.

    Returns:
        The device.

    Raises:
        ValueError: If ``device`` is none of the above.
    """
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            logger.warning("NCF: device %r asked for but CUDA is not available; using CPU", device)
            return torch.device("cpu")
        return torch.device(name)
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<n>', got {device!r}")


def sample_negatives(
    pos_users: torch.Tensor,
    n_items: int,
    negatives: int,
    generator: torch.Generator,
    positive_keys: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform negative items for each positive, vectorised.

    Args:
        pos_users: User of each positive, int64 (P,).
        n_items: Catalogue size; items are drawn from ``[0, n_items)``.
        negatives: Negatives per positive.
        generator: CPU generator the draws come from (seeded by the caller).
        positive_keys: Sorted ``user * n_items + item`` keys of all positives. When given,
            drawn items that are among the user's positives are redrawn (whole rounds at once,
            at most 50 rounds; a user who has nearly every item may keep a few).

    Returns:
        (users, items), both int64 (P * negatives,): positive ``p``'s negatives are at
        ``p * negatives .. p * negatives + negatives - 1``, and ``users`` repeats its user.
    """
    users = pos_users.repeat_interleave(negatives)
    items = torch.randint(0, n_items, (len(users),), generator=generator, dtype=torch.int64)
    if positive_keys is None or len(positive_keys) == 0:
        return users, items
    todo = torch.arange(len(users))
    for _ in range(_MAX_REJECTION_ROUNDS):
        keys = users[todo] * n_items + items[todo]
        hit = torch.searchsorted(positive_keys, keys).clamp_(max=len(positive_keys) - 1)
        todo = todo[positive_keys[hit] == keys]
        if len(todo) == 0:
            break
        items[todo] = torch.randint(
            0, n_items, (len(todo),), generator=generator, dtype=torch.int64
        )
    else:
        keys = users[todo] * n_items + items[todo]
        hit = torch.searchsorted(positive_keys, keys).clamp_(max=len(positive_keys) - 1)
        left = int((positive_keys[hit] == keys).sum())
        if left:
            logger.warning("NCF: %d sampled negatives are positives after rejection", left)
    return users, items


class NeuMF(nn.Module):
    """NVIDIA's NeuMF network: GMF and MLP branches joined by one linear layer (a logit).

    Args:
        n_users: Number of users (embedding rows).
        n_items: Number of items (embedding rows).
        gmf_dim: GMF embedding size.
        mlp_embedding_dim: MLP user and item embedding size each.
        mlp_dims: Output sizes of the MLP's linear layers, in order (may be empty).
        dropout: Dropout after each MLP ReLU, in training only.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        gmf_dim: int,
        mlp_embedding_dim: int,
        mlp_dims: Sequence[int],
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.gmf_user = nn.Embedding(n_users, gmf_dim)
        self.gmf_item = nn.Embedding(n_items, gmf_dim)
        self.mlp_user = nn.Embedding(n_users, mlp_embedding_dim)
        self.mlp_item = nn.Embedding(n_items, mlp_embedding_dim)
        sizes = [2 * mlp_embedding_dim, *mlp_dims]
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.dropout = float(dropout)
        self.gmf_dim = gmf_dim
        self.final = nn.Linear(gmf_dim + sizes[-1], 1)
        for embedding in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(embedding.weight, 0.0, 0.01)
        for layer in self.mlp:
            limit = math.sqrt(6.0 / (layer.in_features + layer.out_features))  # Glorot
            nn.init.uniform_(layer.weight, -limit, limit)
        limit = math.sqrt(3.0 / self.final.in_features)  # LeCun
        nn.init.uniform_(self.final.weight, -limit, limit)

    def _mlp_tail(self, x: torch.Tensor, first: int) -> torch.Tensor:
        """ReLU (and dropout) after layer ``first - 1``, then the MLP layers from ``first``."""
        x = torch.relu(x)
        if self.dropout:
            x = nn.functional.dropout(x, p=self.dropout, training=self.training)
        for layer in self.mlp[first:]:
            x = torch.relu(layer(x))
            if self.dropout:
                x = nn.functional.dropout(x, p=self.dropout, training=self.training)
        return x

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of (user, item) pairs, shape (n,)."""
        gmf = self.gmf_user(users) * self.gmf_item(items)
        mlp = torch.cat((self.mlp_user(users), self.mlp_item(items)), dim=1)
        if len(self.mlp):
            mlp = self._mlp_tail(self.mlp[0](mlp), 1)
        return self.final(torch.cat((gmf, mlp), dim=1)).squeeze(1)

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, chunk_pairs: int) -> torch.Tensor:
        """Logits of every user in ``users`` for every item, shape (len(users), n_items).

        Equal to ``forward`` on all pairs up to float rounding (the first layers are split
        into user and item terms), computed in user chunks of about ``chunk_pairs`` pairs.
        """
        w_gmf = self.final.weight[0, : self.gmf_dim]
        w_mlp = self.final.weight[0, self.gmf_dim :]
        gmf = (self.gmf_user(users) * w_gmf) @ self.gmf_item.weight.T + self.final.bias
        item_mlp = self.mlp_item.weight
        if not len(self.mlp):
            return (
                gmf
                + (self.mlp_user(users) @ w_mlp[: item_mlp.shape[1]])[:, None]
                + (item_mlp @ w_mlp[item_mlp.shape[1] :])
            )
        first = self.mlp[0]
        dim = self.mlp_user.embedding_dim
        user_part = self.mlp_user(users) @ first.weight[:, :dim].T + first.bias  # (n, h1)
        item_part = item_mlp @ first.weight[:, dim:].T  # (n_items, h1)
        n_items = item_mlp.shape[0]
        step = max(1, chunk_pairs // max(n_items, 1))
        for start in range(0, len(users), step):  # adds into gmf: one (n, n_items) matrix
            hidden = user_part[start : start + step, None, :] + item_part[None, :, :]
            gmf[start : start + step] += self._mlp_tail(hidden, 1) @ w_mlp
        return gmf


def import_torch_dynamo() -> None:
    """Import ``torch._dynamo`` under the real ``typing_extensions``' typing rules.

    ``torch.optim`` imports ``torch._dynamo`` on first use. Metaflow vendors an older
    ``typing_extensions`` that, once imported (the Runner, the client), replaces
    ``typing._collect_parameters`` with a version that takes every TypeVar of the installed
    ``typing_extensions`` for one with a default, and torch's import then fails with "Type
    parameter ... without a default follows type parameter with a default". The real function is
    put back for this one import; Metaflow's stays in place for everything else.
    """
    if "torch._dynamo" in sys.modules:
        return
    import typing_extensions

    patched = typing._collect_parameters
    typing._collect_parameters = getattr(typing_extensions, "_collect_parameters", patched)
    try:
        import torch._dynamo  # noqa: F401
    finally:
        typing._collect_parameters = patched


@contextmanager
def _torch_settings(seed: int, num_threads: int | None, deterministic: bool) -> Iterator[None]:
    """Seed torch locally (global RNG state restored afterwards), set threads, determinism."""
    old_threads = torch.get_num_threads()
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    # The CPU kernels used here are deterministic already; the switch matters on CUDA only.
    switch_determinism = (
        deterministic and bool(cuda_devices) and not torch.are_deterministic_algorithms_enabled()
    )
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        try:
            if num_threads is not None:
                torch.set_num_threads(num_threads)
            if switch_determinism:
                torch.use_deterministic_algorithms(True, warn_only=True)
            yield
        finally:
            torch.set_num_threads(old_threads)
            if switch_determinism:
                torch.use_deterministic_algorithms(False)


@dataclass(frozen=True)
class NCFParams(DeepParams):
    """Hyper-parameters of :class:`NCFRecommender`.

    The defaults are the reference settings of ``shared/FINDINGS.md``: 16-dim GMF, MLP
    64-32-16 (32-dim MLP embeddings), 4 negatives (redrawn when they are the user's positives),
    10 epochs, Adam 1e-3, batch 1024, no dropout or weight decay.

    Attributes:
        gmf_dim: GMF embedding size.
        mlp_dims: MLP layer sizes; like NVIDIA, ``mlp_dims[0]`` is the width of the concatenated
            user and item MLP embeddings (each ``mlp_dims[0] // 2``) and ``mlp_dims[1:]`` are
            the linear layers' outputs.
        mlp_embedding_dim: Explicit MLP embedding size per side; then every entry of
            ``mlp_dims`` is a linear layer's output size. None follows NVIDIA.
        negatives: Sampled negatives per positive per epoch.
        reject_positives: Redraw sampled negatives that are among the user's train items.
            NVIDIA's training sampler does not; on MovieLens-100k (3 seeds) rejecting gave
            NDCG@10 0.118 / 0.143 (valid / test) against 0.106 / 0.133 without.
        epochs: Maximum number of epochs.
        batch_size: Training (user, item, label) rows per Adam step.
        learning_rate: Adam's learning rate.
        weight_decay: Adam's L2 weight decay.
        dropout: Dropout after each MLP ReLU.
        early_stopping_patience: With a validation window, stop after this many epochs without a
            better validation score (the run's metric); None (the default) never stops early. Either
            way the best epoch's weights are kept. On MovieLens-100k the validation curve dips after
            epoch 1 and climbs again from epoch 5, so a patience of 3 stopped at epoch 4 and kept
            epoch 1 for two of three seeds (valid 0.107-0.114); all 10 epochs with the best kept
            gave valid 0.121-0.127 / test 0.144-0.151.
        seed: Seeds initialisation, dropout, negative sampling and shuffling.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:n]"``.
        num_threads: torch CPU threads while fitting (restored afterwards); None leaves
            torch's setting. Scoring never changes the process-wide setting (serving threads
            share it). One by default: a step of this network (1024 rows, layers
            under 100 wide) is too small for intra-op threads to pay, and on a 2-core host
            shared with other flow branches 2 threads measured 2-6x slower per step than 1.
        deterministic: Ask torch for deterministic algorithms during fit (matters on CUDA; the
            CPU path is deterministic with a seed anyway).
        score_chunk_pairs: About how many (user, item) pairs go through the MLP at once. 2**16
            (an 8 MB hidden layer at width 32) took a third of the CPU time of 2**18 for 300
            users x 59k items, with identical scores.
        max_train_rows: Train on at most this many rows, the most recent (see
            :mod:`reclab.models.deep_scale`): ``"auto"`` caps at 1,000,000 on a CPU and uses
            every row on CUDA; None uses every row; an int caps everywhere. Users and items
            whose rows were all cut keep their (untrained) embeddings and are still scored.
        validation_sample_users: Measure the per-epoch validation score on a seeded sample of
            at most this many warm validation users (None: all of them).

    """

    mlp_dims: Sequence[int] = (64, 32, 16)
    deterministic: bool = True
    gmf_dim: int = 16
    mlp_embedding_dim: int | None = None
    negatives: int = 4
    reject_positives: bool = True
    weight_decay: float = 0.0
    dropout: float = 0.0
    device: str = "auto"
    num_threads: int | None = 1
    score_chunk_pairs: int = 1 << 16

    def __post_init__(self) -> None:
        super().__post_init__()  # epochs, batch size, learning rate, mlp_dims, seed, the cap
        for name in ("gmf_dim", "negatives", "score_chunk_pairs"):
            check_field(self, name, 1, integer=True)
        if self.mlp_embedding_dim is None:
            if not self.mlp_dims or self.mlp_dims[0] % 2:
                raise ValueError(
                    "without mlp_embedding_dim, mlp_dims[0] must be even (it is the width of "
                    f"the two concatenated MLP embeddings), got {list(self.mlp_dims)}"
                )
        else:
            check_field(self, "mlp_embedding_dim", 1, integer=True)
        check_field(self, "weight_decay", 0)
        check_field(self, "dropout", 0, 1, high_open=True)
        check_field(self, "num_threads", 1, integer=True, allow_none=True)
        resolve_device(self.device)  # validates the name
        set_field(self, "device", str(self.device))
        set_field(self, "reject_positives", bool(self.reject_positives))

    def mlp_shape(self) -> tuple[int, tuple[int, ...]]:
        """(MLP embedding size per side, the MLP's linear layer sizes)."""
        if self.mlp_embedding_dim is None:
            return self.mlp_dims[0] // 2, tuple(self.mlp_dims[1:])
        return self.mlp_embedding_dim, tuple(self.mlp_dims)


class NCFRecommender(EpochTrained, Recommender):
    """NeuMF (GMF + MLP) trained on implicit feedback with sampled negatives.

    Hyper-parameters: :class:`NCFParams`; a value out of range raises a ``ValueError``.
    """

    family = "ncf"
    Params = NCFParams
    format_version = 1

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.network: NeuMF | None = None
        self._device = torch.device("cpu")

    @property
    def batch_size(self) -> int:
        """Users per ``recommend`` batch: at most 2,048 and about 2**26 scores, so a batch's
        score matrices stay near 256 MB whatever the catalogue and the training batch size."""
        return max(1, min(2048, _SCORE_BATCH_PAIRS // max(self.n_items, 1)))

    # ----------------------------------------------------------------------------------------
    # Training
    # ----------------------------------------------------------------------------------------

    def _build_network(self) -> NeuMF:
        embedding_dim, layer_dims = self.hparams.mlp_shape()
        return NeuMF(
            self.n_users,
            self.n_items,
            self.hparams.gmf_dim,
            embedding_dim,
            layer_dims,
            self.hparams.dropout,
        )

    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None:
        import_torch_dynamo()
        params = self.hparams
        with _torch_settings(params.seed, params.num_threads, params.deterministic):
            self._train(train, validation)

    def _train(self, train: TrainData, validation: ValidationWindow | None) -> None:
        params = self.hparams
        self._device = device = resolve_device(params.device)
        if device.type == "cuda" and params.deterministic:
            # cuBLAS is deterministic only with a fixed workspace; read when its handle is made.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        positives = self._positives(train, device.type == "cuda")
        generator = torch.Generator().manual_seed(params.seed)
        self.network = network = self._build_network().to(device)
        # fused: one pass over each parameter per step. Adam updates every embedding row each
        # step, so with MovieLens-25M's tables (10.6M parameters) a step cost 102 ms of CPU with
        # the foreach update and 26 ms fused (1.6 vs 1.9 ms at ML-100k size); the updated
        # weights agree to 1e-8.
        optimizer = torch.optim.Adam(
            network.parameters(),
            lr=params.learning_rate,
            weight_decay=params.weight_decay,
            fused=True,
        )
        if validation is not None:
            sample = validation_sample(
                train, validation, params.validation_sample_users, params.seed
            )
        metric = "ndcg_at_10" if validation is None else validation.metric
        self._valid_key = f"valid_{metric}"
        selector = EpochSelector("NCF", params.early_stopping_patience, logger, metric)
        self.history = []
        logger.info(
            "NCF: %d users, %d items, %d positives, %d negatives each, on %s",
            train.n_users,
            train.n_items,
            len(positives[0]),
            params.negatives,
            device,
        )
        for epoch in range(1, params.epochs + 1):
            record = self._train_epoch(epoch, positives, generator, optimizer)
            if validation is not None:
                network.eval()
                validation_started = time.perf_counter()
                record[self._valid_key] = ndcg = sample[1].score(self.recommend, sample[0])
                record["validation_seconds"] = time.perf_counter() - validation_started
                if math.isnan(ndcg):
                    logger.warning(
                        "NCF: no validation user can be evaluated; training without early "
                        "stopping and keeping the last epoch"
                    )
                    validation = None
                else:
                    selector.record(epoch, ndcg, lambda: copy.deepcopy(network.state_dict()))
            self.history.append(record)
            self._log_epoch(record)
            if validation is not None and selector.should_stop(epoch):
                break
        self.best_epoch = selector.best_epoch
        if validation is not None and selector.best is not None:
            network.load_state_dict(selector.best)
        network.eval()

    def _positives(
        self, train: TrainData, on_gpu: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(users, items, sorted ``user * n_items + item`` keys) of the distinct positives of
        the (capped) train rows; sets ``train_rows_used`` and ``train_sample``."""
        params = self.hparams
        rows, self.train_sample = params.train_rows(train, on_gpu)
        user_idx, item_idx = train.user_idx, train.item_idx
        if rows is not None:
            user_idx, item_idx = user_idx[rows], item_idx[rows]
        self.train_rows_used = len(user_idx)
        keys = torch.from_numpy(np.unique(user_idx.astype(np.int64) * train.n_items + item_idx))
        return keys // train.n_items, keys % train.n_items, keys

    def _train_epoch(
        self,
        epoch: int,
        positives: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        generator: torch.Generator,
        optimizer: torch.optim.Optimizer,
    ) -> dict[str, float]:
        """One epoch: fresh negatives, a shuffle, the Adam steps; returns its history record."""
        params, network, device = self.hparams, self.network, self._device
        pos_users, pos_items, positive_keys = positives
        n_pos = len(positive_keys)
        started, started_cpu = time.perf_counter(), time.process_time()
        neg_users, neg_items = sample_negatives(
            pos_users,
            self.n_items,
            params.negatives,
            generator,
            positive_keys if params.reject_positives else None,
        )
        labels = torch.cat((torch.ones(n_pos), torch.zeros(n_pos * params.negatives)))
        order = torch.randperm(len(labels), generator=generator)
        users = torch.cat((pos_users, neg_users))[order].to(device)
        items = torch.cat((pos_items, neg_items))[order].to(device)
        targets = labels[order].to(device)
        # Free the draws now: at 20M positives about 2 GB that the steps never read.
        del neg_users, neg_items, order
        sampling_seconds = time.perf_counter() - started
        network.train()
        loss_fn = nn.BCEWithLogitsLoss()
        total = torch.zeros((), device=device)
        for start in range(0, len(targets), params.batch_size):
            batch = slice(start, start + params.batch_size)
            logits = network(users[batch], items[batch])
            loss = loss_fn(logits, targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(logits)
        epoch_loss = float(total) / len(targets)  # also waits for the device
        train_seconds = time.perf_counter() - started
        return {
            "epoch": epoch,
            "loss": epoch_loss,
            "seconds": train_seconds,
            "cpu_seconds": time.process_time() - started_cpu,  # all threads; < wall if busy
            "samples_per_second": len(targets) / max(train_seconds, 1e-9),
            "sampling_seconds": sampling_seconds,
            self._valid_key: math.nan,
            "validation_seconds": 0.0,
        }

    def _log_epoch(self, record: dict[str, float]) -> None:
        logger.info(
            "NCF epoch %d/%d: loss %.4f, %s %.4f, train %.2f s (%.0f samples/s, "
            "negative sampling %.2f s), validation %.2f s",
            record["epoch"],
            self.hparams.epochs,
            record["loss"],
            self._valid_key,
            record[self._valid_key],
            record["seconds"],
            record["samples_per_second"],
            record["sampling_seconds"],
            record["validation_seconds"],
        )

    # ----------------------------------------------------------------------------------------
    # Scoring and serialisation
    # ----------------------------------------------------------------------------------------

    def _scores_into(self, user_idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.network is None:
            raise ValueError("NCFRecommender is not fitted: call fit() first")
        # No torch.set_num_threads here: it is process-wide, and serving scores from several
        # threads at once. The network is in eval mode since fit / from_bytes.
        users = torch.as_tensor(np.asarray(user_idx, dtype=np.int64), device=self._device)
        scores = self.network.score_all(users, self.hparams.score_chunk_pairs)
        out[:] = scores.to(device="cpu", dtype=torch.float32).numpy()
        return out

    def to_bytes(self) -> bytes:
        """Serialise the fitted model: its parameters, state dict, seen items and history.

        Only tensors, numbers and strings are stored, so :meth:`from_bytes` loads them with
        ``torch.load(weights_only=True)``.
        """
        if self.network is None or self._seen is None:
            raise ValueError("NCFRecommender is not fitted: call fit() first")
        seen_indptr, seen_indices = self._seen_arrays()
        payload = {
            "format": self.format_version,
            "family": self.family,
            "params": json.dumps(self.params),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "state_dict": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
            "seen_indptr": torch.from_numpy(seen_indptr),
            "seen_indices": torch.from_numpy(seen_indices),
            "history": json.dumps(self.history),
            "best_epoch": -1 if self.best_epoch is None else self.best_epoch,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> NCFRecommender:
        """Restore a model serialised with :meth:`to_bytes`, on its ``device`` setting
        (``"auto"``: CUDA when the loading machine has one, else CPU).

        Raises:
            TypeError: If the payload is not an NCF model.
            FormatVersionError: If it was written in another format version.
        """
        try:
            data = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        except Exception as error:  # pickle payloads of other families fail here
            raise TypeError(f"payload is not a serialised {cls.__name__}: {error}") from error
        if not isinstance(data, dict) or data.get("family") != cls.family:
            raise TypeError(f"payload is not a serialised {cls.__name__}")
        check_format_version(cls.family, data.get("format"), cls.format_version)
        model = cls(**json.loads(data["params"]))
        model._restore_seen(
            data["n_users"], data["n_items"], data["seen_indptr"], data["seen_indices"]
        )
        model.network = model._build_network()
        model.network.load_state_dict(data["state_dict"])
        model._device = resolve_device(model.hparams.device)
        model.network.to(model._device).eval()
        model.history = json.loads(data["history"])
        model.best_epoch = None if int(data["best_epoch"]) < 0 else int(data["best_epoch"])
        return model
