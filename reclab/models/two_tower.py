"""Two-tower retrieval model (NVIDIA Merlin ``TwoTowerModelV2``) on the NVTabular output.

Why this module exists: the two-tower model is the pipeline's feature-aware deep family. A
query tower embeds the user id and the user features, a candidate tower the item id and the
item features, and a user's score for an item is the dot product of the two embeddings, so
serving needs only the two embedding matrices.

How it is built and trained (the settings that made it learn on MovieLens-100k, see
``/shared/FINDINGS.md``):

* **Inputs by schema tags, never by column names.** The towers read the Merlin schema that
  NVTabular wrote with ``nvt_dir/train``: the query tower takes the columns tagged ``USER_ID``
  and ``USER``, the candidate tower those tagged ``ITEM_ID`` and ``ITEM``. Categorical columns
  (list columns such as genres included, averaged) are embedded; continuous ones are projected
  to the embedding size by one linear layer.
* **Towers.** With ``mlp_dims`` empty (the default) a tower is the element-wise SUM of its
  feature embeddings, all of size ``embedding_dim``; otherwise the embeddings are concatenated
  and passed through an MLP whose last layer (no activation) gives the output embedding. With
  ``l2_normalize`` the tower outputs are L2-normalised (cosine scores).
* **Loss.** Contrastive in-batch softmax: the other positives of a batch are the negatives,
  logits divided by ``temperature``. With ``logq_correction`` (default) each logit gets
  ``- temperature * log(q_item)`` with ``q_item`` the item's share of train rows
  (Merlin's ``PopularityLogitsCorrection``, which needs ``store_negative_ids=True``; it is
  applied before the temperature, so its factor equals the temperature and the correction on
  the scaled logits is exactly ``log q``). Without it in-batch negatives push popular items
  down and the model recommends niche items first (NDCG@10 0.01-0.04 instead of 0.12-0.15).
  Merlin's ``logq_sampling_correction`` does not work with in-batch negatives in 23.8.1 (the
  in-batch sampler provides no probabilities), hence the explicit correction.
* **Epoch selection.** When ``fit`` is given a validation window, after each epoch the
  user and item embeddings of the whole catalogue are computed and NDCG@10 is measured with
  :func:`reclab.evaluation.evaluate` (full catalogue, seen items excluded; a seeded sample of
  ``validation_sample_users`` warm users); the best epoch's embeddings are kept and training
  stops after ``early_stopping_patience`` epochs without improvement. Merlin's training
  metrics are off (``metrics=[]``): they made each epoch 3-5x slower and are in-batch figures,
  not comparable with the evaluator's.
* **Scale.** On a CPU training is capped at the most recent ``max_train_rows`` rows
  (:mod:`reclab.models.deep_scale`); every user and item still gets its embedding.

Sampled (non in-batch) negatives are not offered: in merlin-models 23.8.1 the popularity
sampler returns item ids without candidate-tower embeddings, which ``ContrastiveOutput`` can
only look up for an embedding-table output, not for a two-tower ``DotProduct``.

After training, the user embedding of every encoded user and the item embedding of every
encoded item are computed in our index order (``idx = code - code_offset`` of the category
files), from the features on each user's (item's) first train row. ``_scores`` is
``user_emb[users] @ item_emb.T``; :meth:`TwoTowerRecommender.to_bytes` stores those matrices
(NumPy), so a reloaded model scores without TensorFlow objects.

TensorFlow and Merlin are imported inside the functions that need them, never at package
import. TensorFlow places the computation on a GPU when it sees one; data loading uses Merlin's
CPU path (``Dataset(..., cpu=True)``), which runs everywhere. When torch is used in the same
process, import it before TensorFlow.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset

# TensorFlow's C++ INFO lines (e.g. "Executor start aborting") would drown the step logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from reclab.id_maps import IdMap
from reclab.models.base import (
    DotProductRecommender,
    TrainData,
    ValidationWindow,
    check_format_version,
)
from reclab.models.deep_scale import DeepParams, EpochSelector, EpochTrained, validation_sample
from reclab.models.params import check_field, set_field

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "adagrad")


@dataclass(frozen=True)
class TwoTowerParams(DeepParams):
    """Hyper-parameters of :class:`TwoTowerRecommender`.

    The defaults are the best settings of ``/shared/FINDINGS.md``: sum-of-embeddings towers of
    size 64, L2-normalised, temperature 0.2, Adam 3e-3, batch 1024, logQ correction on, and the
    epoch chosen on the run's validation metric (NDCG@10 by default).

    Attributes:
        epochs: Maximum number of epochs.
        batch_size: Train rows per step; the other rows of a batch are its negatives.
        learning_rate: The optimizer's learning rate.
        optimizer: ``"adam"`` or ``"adagrad"``.
        embedding_dim: Size of every feature embedding (and of the tower output when
            ``mlp_dims`` is empty).
        mlp_dims: Layer sizes of an MLP on the concatenated embeddings of each tower; the last
            size is the output embedding size. Empty: the tower sums its embeddings.
        temperature: Logits are divided by this (``> 0``).
        l2_normalize: L2-normalise both towers' outputs.
        logq_correction: Subtract ``log`` of the item's train frequency share from its logits
            in training (the popularity correction of the in-batch softmax).
        early_stopping_patience: With a validation window, stop after this many epochs without
            a better validation score (the run's metric); None never stops early. Either way
            the best epoch's embeddings are kept.
        seed: Seeds TensorFlow (initialisation), NumPy and the Merlin loader's shuffling.
        deterministic: Ask TensorFlow for deterministic ops while fitting (restored
            afterwards). On CPU a seed reproduces a fit without it (measured: identical
            validation NDCG per epoch), and it made epochs 2-3x slower, so it is off by
            default; turn it on for bit-exact reruns on a GPU.
        max_train_rows: Train on at most this many rows, the most recent (see
            :mod:`reclab.models.deep_scale`): ``"auto"`` caps at 1,000,000 when TensorFlow
            sees no GPU and uses every row on one; None uses every row; an int caps
            everywhere. Every user and item still gets a tower embedding (from its features on
            its first train row), so all stay scorable.
        validation_sample_users: Measure the per-epoch validation score on a seeded sample of
            at most this many warm validation users (None: all of them).

    """

    learning_rate: float = 3e-3
    early_stopping_patience: int | None = 3
    optimizer: str = "adam"
    embedding_dim: int = 64
    temperature: float = 0.2
    l2_normalize: bool = True
    logq_correction: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()  # epochs, batch size, learning rate, mlp_dims, seed, the cap
        check_field(self, "embedding_dim", 1, integer=True)
        optimizer = str(self.optimizer).lower()
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        set_field(self, "optimizer", optimizer)
        check_field(self, "temperature", 0, low_open=True)
        for name in ("l2_normalize", "logq_correction"):
            set_field(self, name, bool(getattr(self, name)))


class TwoTowerRecommender(EpochTrained, DotProductRecommender):
    """Merlin two-tower model: user tower . item tower, in-batch softmax with logQ correction.

    Hyper-parameters: :class:`TwoTowerParams`; a value out of range raises a ``ValueError``.
    """

    family = "two_tower"
    Params = TwoTowerParams
    format_version = 1

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.user_embeddings: np.ndarray | None = None
        self.item_embeddings: np.ndarray | None = None
        self.inputs: dict[str, list[str]] = {}
        self.keras_model: Any = None  # the trained Merlin model of this process (not saved)

    # ----------------------------------------------------------------------------------------
    # Training
    # ----------------------------------------------------------------------------------------

    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None:
        if train.nvt_dir is None:
            raise ValueError(
                "TwoTowerRecommender needs TrainData.nvt_dir (the NVTabular output of "
                "build_workflow): its towers read Merlin's tagged parquet"
            )
        import tensorflow as tf
        from tensorflow.python.framework import config as tf_config

        deterministic = self.hparams.deterministic
        old_determinism = tf_config.is_op_determinism_enabled()
        tf.keras.utils.set_random_seed(self.hparams.seed)  # Python, NumPy and TensorFlow
        if deterministic:
            tf_config.enable_op_determinism()
        try:
            self._train(train, validation)
        finally:
            if deterministic and not old_determinism:
                tf_config.disable_op_determinism()

    def _train(self, train: TrainData, validation: ValidationWindow | None) -> None:
        import tensorflow as tf

        params = self.hparams
        started = time.perf_counter()
        gpus = tf.config.list_logical_devices("GPU")
        rows, self.train_sample = params.train_rows(train, bool(gpus))
        data = _TowerData.load(Path(train.nvt_dir), train, rows)
        self.train_rows_used = len(data.train_frame)
        self.inputs = {
            "query": data.query_schema.column_names,
            "candidate": data.candidate_schema.column_names,
        }
        model, loader = self._compiled_model(data)
        logger.info(
            "two-tower: %d users, %d items, %d train rows; query inputs %s, candidate inputs "
            "%s; on %s",
            train.n_users,
            train.n_items,
            len(data.train_frame),
            self.inputs["query"],
            self.inputs["candidate"],
            gpus[0].name if gpus else "CPU",
        )
        if validation is not None:
            sample = validation_sample(
                train, validation, params.validation_sample_users, params.seed
            )
        metric = "ndcg_at_10" if validation is None else validation.metric
        self._valid_key = f"valid_{metric}"
        selector = EpochSelector("two-tower", params.early_stopping_patience, logger, metric)
        self.history = []
        for epoch in range(1, params.epochs + 1):
            epoch_start = time.perf_counter()
            record = self._train_epoch(epoch, model, loader, data)
            if validation is not None:
                validation_started = time.perf_counter()
                ndcg = sample[1].score(self.recommend, sample[0])
                record[self._valid_key] = ndcg = -math.inf if math.isnan(ndcg) else ndcg
                record["validation_seconds"] = time.perf_counter() - validation_started
                selector.record(
                    epoch,
                    ndcg,
                    lambda: (self.user_embeddings, self.item_embeddings, model.get_weights()),
                )
            record["epoch_seconds"] = time.perf_counter() - epoch_start
            self.history.append(record)
            self._log_epoch(record, len(data.train_frame))
            if validation is not None and selector.should_stop(epoch):
                break
        self.best_epoch = selector.best_epoch
        if selector.best is not None:
            self.user_embeddings, self.item_embeddings, weights = selector.best
            model.set_weights(weights)
        elif validation is not None:
            logger.warning(
                "two-tower: no validation user could be evaluated; keeping the last epoch"
            )
        logger.info(
            "two-tower: fitted in %.2f s; best epoch %s",
            time.perf_counter() - started,
            self.best_epoch,
        )

    def _compiled_model(self, data: _TowerData) -> tuple[Any, Any]:
        """The compiled Merlin model and its seeded, shuffling train loader."""
        import merlin.models.tf as mm
        import tensorflow as tf
        from merlin.io import Dataset

        params = self.hparams
        model = self._build_model(data)
        optimizer = (
            tf.keras.optimizers.Adam(learning_rate=params.learning_rate)
            if params.optimizer == "adam"
            else tf.keras.optimizers.Adagrad(learning_rate=params.learning_rate)
        )
        model.compile(optimizer=optimizer, metrics=[])
        self.keras_model = model
        shuffle_rng = np.random.default_rng(params.seed)
        loader = mm.Loader(
            Dataset(data.train_frame, schema=data.schema, cpu=True),
            batch_size=params.batch_size,
            shuffle=True,
            seed_fn=lambda: int(shuffle_rng.integers(2**31 - 1)),
            drop_last=False,
        )
        return model, loader

    def _train_epoch(self, epoch: int, model: Any, loader: Any, data: _TowerData) -> dict:
        """One epoch of Keras fit, then every user's and item's embedding; its record."""
        epoch_start, epoch_cpu = time.perf_counter(), time.process_time()
        fit_history = model.fit(loader, epochs=1, verbose=0)
        train_seconds = time.perf_counter() - epoch_start
        self.user_embeddings, self.item_embeddings = data.embeddings(model)
        return {
            "epoch": epoch,
            "loss": float(fit_history.history["loss"][-1]),
            "seconds": train_seconds,
            "cpu_seconds": time.process_time() - epoch_cpu,  # all threads
            self._valid_key: math.nan,
            "validation_seconds": 0.0,
        }

    def _log_epoch(self, record: dict, train_rows: int) -> None:
        logger.info(
            "two-tower epoch %d/%d: loss %.4f, %s %.4f (our evaluator, full "
            "catalogue), train %.2f s (%.0f rows/s), validation %.2f s, epoch incl. "
            "embeddings and validation %.2f s",
            record["epoch"],
            self.hparams.epochs,
            record["loss"],
            self._valid_key,
            record[self._valid_key],
            record["seconds"],
            train_rows / max(record["seconds"], 1e-9),
            record["validation_seconds"],
            record["epoch_seconds"],
        )

    def _build_model(self, data: _TowerData) -> Any:
        import merlin.models.tf as mm
        from merlin.models.tf.transforms.bias import PopularityLogitsCorrection

        query = self._tower(data.query_schema)
        candidate = self._tower(data.candidate_schema)
        output_kwargs: dict[str, Any] = {}
        if self.hparams.logq_correction:
            output_kwargs = {
                "post": PopularityLogitsCorrection(
                    data.item_code_counts.astype(np.float32),
                    reg_factor=self.hparams.temperature,
                    schema=data.candidate_schema,
                ),
                "store_negative_ids": True,
            }
        return mm.TwoTowerModelV2(
            query,
            candidate,
            logits_temperature=self.hparams.temperature,
            negative_samplers=["in-batch"],
            **output_kwargs,
        )

    def _tower(self, schema: Any) -> Any:
        """One tower over the columns of ``schema`` (categorical embedded, continuous
        projected): a sum of ``embedding_dim`` embeddings, or an MLP on their concatenation."""
        import merlin.models.tf as mm
        import tensorflow as tf
        from merlin.schema import Tags

        categorical = schema.select_by_tag(Tags.CATEGORICAL)
        continuous = schema.select_by_tag(Tags.CONTINUOUS)
        branches: dict[str, Any] = {
            "categorical": mm.Embeddings(
                categorical, dim=self.hparams.embedding_dim, sequence_combiner="mean"
            )
        }
        if continuous.column_names:
            branches["continuous"] = mm.ContinuousProjection(
                continuous, tf.keras.layers.Dense(self.hparams.embedding_dim, use_bias=False)
            )
        else:
            branches["continuous"] = Tags.CONTINUOUS  # selects nothing: no branch
        blocks = []
        if self.hparams.mlp_dims:
            inputs = mm.InputBlockV2(schema, aggregation="concat", **branches)
            blocks.append(mm.MLPBlock(list(self.hparams.mlp_dims), no_activation_last_layer=True))
        else:
            inputs = mm.InputBlockV2(schema, aggregation="element-wise-sum", **branches)
        if self.hparams.l2_normalize:
            blocks.append(mm.L2Norm())
        return mm.Encoder(inputs, *blocks)

    # ----------------------------------------------------------------------------------------
    # Scoring and serialisation
    # ----------------------------------------------------------------------------------------

    def _vectors(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        return self.user_embeddings, self.item_embeddings

    def to_bytes(self) -> bytes:
        """Serialise the fitted model: parameters, embedding matrices, seen items, history.

        Only NumPy arrays and JSON strings are stored (``np.savez``), so loading needs no
        TensorFlow and :meth:`from_bytes` reads them with ``allow_pickle=False``.
        """
        if self.user_embeddings is None or self.item_embeddings is None or self._seen is None:
            raise ValueError("TwoTowerRecommender is not fitted: call fit() first")
        seen_indptr, seen_indices = self._seen_arrays()
        meta = {
            "format": self.format_version,
            "family": self.family,
            "params": self.params,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "inputs": self.inputs,
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            meta=np.array(json.dumps(meta)),
            user_embeddings=self.user_embeddings,
            item_embeddings=self.item_embeddings,
            seen_indptr=seen_indptr,
            seen_indices=seen_indices,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> TwoTowerRecommender:
        """Restore a model serialised with :meth:`to_bytes`.

        Raises:
            TypeError: If the payload is not a serialised two-tower model.
            FormatVersionError: If it was written in another format version.
        """
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as arrays:
                meta = json.loads(str(arrays["meta"]))
                user_embeddings = arrays["user_embeddings"]
                item_embeddings = arrays["item_embeddings"]
                indptr, indices = arrays["seen_indptr"], arrays["seen_indices"]
        except (ValueError, OSError, KeyError) as error:  # e.g. a pickle of another family
            raise TypeError(f"payload is not a serialised {cls.__name__}: {error}") from error
        if meta.get("family") != cls.family:
            raise TypeError(f"payload is not a serialised {cls.__name__}")
        check_format_version(cls.family, meta.get("format"), cls.format_version)
        model = cls(**meta["params"])
        model._restore_seen(meta["n_users"], meta["n_items"], indptr, indices)
        model.user_embeddings, model.item_embeddings = user_embeddings, item_embeddings
        model.history, model.best_epoch = meta["history"], meta["best_epoch"]
        model.inputs = meta["inputs"]
        return model


class _TowerData:
    """The NVTabular train data, the towers' input schemas and the id codes, read once.

    Attributes:
        schema: The Merlin schema of the columns the towers read.
        query_schema: Columns tagged USER_ID or USER.
        candidate_schema: Columns tagged ITEM_ID or ITEM.
        train_frame: The train rows the model learns from (those columns), as NVTabular
            wrote them: all of them, or the capped rows.
        user_rows: One row per encoded user, in user_idx order (its first train row).
        item_rows: One row per encoded item, in item_idx order (its first train row).
        item_code_counts: Rows of ``train_frame`` per item code, length = the item id's
            cardinality (the logQ correction's frequencies).
    """

    def __init__(
        self,
        schema: Any,
        query_schema: Any,
        candidate_schema: Any,
        train_frame: pd.DataFrame,
        user_rows: pd.DataFrame,
        item_rows: pd.DataFrame,
        item_code_counts: np.ndarray,
    ) -> None:
        self.schema = schema
        self.query_schema = query_schema
        self.candidate_schema = candidate_schema
        self.train_frame = train_frame
        self.user_rows = user_rows
        self.item_rows = item_rows
        self.item_code_counts = item_code_counts

    @classmethod
    def load(cls, nvt_dir: Path, train: TrainData, rows: np.ndarray | None = None) -> _TowerData:
        """Read ``nvt_dir/train`` and pick the towers' columns by their tags.

        Args:
            nvt_dir: The NVTabular output of ``build_workflow``.
            train: The encoded train data (its rows are NVTabular's, in the same order).
            rows: Train rows to learn from (indices into ``train``); None: every row. Users'
                and items' tower inputs always come from the full train rows.

        Raises:
            ValueError: If the schema does not tag exactly one user id and one item id column,
                the category files disagree with the train data's catalogue, or (with
                ``rows``) NVTabular's rows are not the encoded train rows in order.
        """
        from merlin.io import Dataset
        from merlin.models.utils import schema_utils
        from merlin.schema import Tags

        dataset = Dataset(str(nvt_dir / "train"), engine="parquet", cpu=True)
        full = dataset.schema
        user_id = _one_column(full, Tags.USER_ID)
        item_id = _one_column(full, Tags.ITEM_ID)
        query_schema = full.select_by_name(
            _unique(full.select_by_tag(Tags.USER_ID).column_names)
            + _unique(full.select_by_tag(Tags.USER).column_names)
        ).excluding_by_tag(Tags.ITEM)
        candidate_schema = full.select_by_name(
            _unique(full.select_by_tag(Tags.ITEM_ID).column_names)
            + _unique(full.select_by_tag(Tags.ITEM).column_names)
        ).excluding_by_tag(Tags.USER)
        columns = _unique(query_schema.column_names + candidate_schema.column_names)
        schema = full.select_by_name(columns)
        # Arrow keeps list columns compact (pandas holds one array object per row); only the rows
        # the model learns from and each user's and item's first row become pandas.
        files = sorted((nvt_dir / "train").glob("*.parquet"), key=lambda p: (len(p.name), p.name))
        table = pyarrow.dataset.dataset([str(f) for f in files], format="parquet").to_table(
            columns=columns
        )
        user_codes = table.column(user_id).to_numpy().astype(np.int64)
        item_codes = table.column(item_id).to_numpy().astype(np.int64)

        categories = nvt_dir / "workflow" / "categories"
        user_map = IdMap.from_category_file(categories / f"unique.{user_id}.parquet", user_id)
        item_map = IdMap.from_category_file(categories / f"unique.{item_id}.parquet", item_id)
        if len(user_map) != train.n_users or len(item_map) != train.n_items:
            raise ValueError(
                f"{categories}: {len(user_map)} users / {len(item_map)} items, but the train "
                f"data has {train.n_users} / {train.n_items}"
            )
        user_first = _first_row_of_codes(user_codes, user_id, user_map.code_offset, train.n_users)
        item_first = _first_row_of_codes(item_codes, item_id, item_map.code_offset, train.n_items)
        if rows is not None:
            if not (
                len(user_codes) == len(train.user_idx)
                and np.array_equal(user_codes - user_map.code_offset, train.user_idx)
                and np.array_equal(item_codes - item_map.code_offset, train.item_idx)
            ):
                raise ValueError(
                    f"{nvt_dir / 'train'} does not hold the encoded train rows in order, so a "
                    "row cap cannot pick the same rows; rebuild with build_workflow or set "
                    "max_train_rows to None"
                )
            item_codes = item_codes[rows]
        frame = (table if rows is None else table.take(rows)).to_pandas()
        cardinality = schema_utils.categorical_cardinalities(schema)[item_id]
        counts = np.bincount(item_codes, minlength=cardinality)
        return cls(
            schema=schema,
            query_schema=query_schema,
            candidate_schema=candidate_schema,
            train_frame=frame,
            user_rows=table.take(user_first).select(query_schema.column_names).to_pandas(),
            item_rows=table.take(item_first).select(candidate_schema.column_names).to_pandas(),
            item_code_counts=counts[:cardinality].astype(np.float64),
        )

    def embeddings(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        """(user embeddings (n_users, d), item embeddings (n_items, d)), float32, idx order."""
        users = _encode(model.query_encoder, self.user_rows, self.query_schema)
        items = _encode(model.candidate_encoder, self.item_rows, self.candidate_schema)
        return users, items


def _encode(encoder: Any, rows: pd.DataFrame, schema: Any, batch_size: int = 4096) -> np.ndarray:
    """Run a tower over ``rows`` in order (Merlin loader without shuffling)."""
    import merlin.models.tf as mm
    from merlin.io import Dataset

    loader = mm.Loader(Dataset(rows, schema=schema, cpu=True), batch_size=batch_size, shuffle=False)
    parts = [np.asarray(encoder(features, training=False)) for features, _ in loader]
    out = np.concatenate(parts).astype(np.float32)
    if len(out) != len(rows):
        raise RuntimeError(f"tower produced {len(out)} embeddings for {len(rows)} rows")
    return out


def _first_row_of_codes(codes: np.ndarray, column: str, offset: int, n: int) -> np.ndarray:
    """Row index of the first train row of each code ``offset .. offset + n - 1``, in order."""
    present, first = np.unique(codes, return_index=True)
    wanted = np.arange(offset, offset + n, dtype=np.int64)
    missing = np.setdiff1d(wanted, present)
    if len(missing):
        raise ValueError(f"{len(missing)} {column} codes have no train row, e.g. {missing[:5]}")
    return first[np.searchsorted(present, wanted)]


def _one_column(schema: Any, tag: Any) -> str:
    names = schema.select_by_tag(tag).column_names
    if len(names) != 1:
        raise ValueError(f"the NVTabular schema must tag exactly one column {tag}, got {names}")
    return names[0]


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))
