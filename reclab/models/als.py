"""Implicit-feedback matrix factorisation (ALS), with two engines behind one family.

Alternating least squares for implicit feedback (Hu, Koren & Volinsky 2008) learns user factors
``X`` and item factors ``Y`` minimising ``sum_ui c_ui (p_ui - x_u . y_i)^2 + reg * (|X|^2 +
|Y|^2)``, where ``p_ui`` is 1 for observed pairs and 0 otherwise and ``c_ui`` is the confidence
in that preference (1 for unobserved pairs). A user's score for an item is ``x_u . y_i``.

Two engines fit the same model:

* ``"implicit"`` (default): the ``implicit`` library's conjugate-gradient ALS, multi-threaded C++
  on one machine, or CUDA when ``implicit`` was built with it. This is the fast path: FINDINGS.md
  measured it 16-19x faster than Spark on the same machine, plus about 8 s Spark start-up.
* ``"spark"``: ``pyspark.ml.recommendation.ALS(implicitPrefs=True)``, the path that scales past
  one machine (``spark_master`` may be a cluster URL).

Confidence. ``weighting`` turns the summed train weights ``r_ui`` into ``w_ui``: ``"linear"``
keeps ``r``, ``"none"`` uses 1, ``"bm25"`` / ``"tfidf"`` apply ``implicit``'s
``bm25_weight`` / ``tfidf_weight`` to the item x user matrix (items are the "documents", users
the "terms", as in ``implicit``'s own examples). Both engines then use the same confidence
``c_ui = 1 + alpha * w_ui``: the ``implicit`` engine is handed that matrix directly (the
library takes confidences as given), Spark is handed ``w_ui`` as the rating and applies
``1 + alpha * |w_ui|`` itself. What still differs between the engines:

* Regularisation: ``implicit`` uses ``reg * I`` for every user and item; Spark scales it by the
  number of observed pairs of that user or item (``reg * n_u * I``, "ALS-WR"), so the same
  ``regularization`` value is much stronger in Spark for active users and popular items;
  ``spark_reg_param`` sets Spark's value separately, so one grid point can serve both engines.
* Solver: ``implicit`` runs 3 conjugate-gradient steps per solve (warm-started), Spark an exact
  Cholesky solve; random initialisations differ, so factors are not equal across engines.

Both engines end with ``user_factors`` (n_users, factors) and ``item_factors`` (n_items,
factors) as NumPy float32 arrays on the model: pickling needs no framework object, and scoring
is ``user_factors[batch] @ item_factors.T``. No Spark session is kept on the model; the session
is left running for reuse by later fits in the same process (:func:`spark_session`).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

# The single-node engine's library is imported with the module (as torch is by NCF), so a first
# fit pays no import; pyspark, needed by one engine only and slow to import, stays lazy.
import implicit.gpu
import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.nearest_neighbours import bm25_weight, tfidf_weight
from threadpoolctl import ThreadpoolController

from reclab.models.base import DotProductRecommender, TrainData, ValidationWindow
from reclab.models.capabilities import FoldIn
from reclab.models.params import check_field
from reclab.models.recency import check_recency_half_life, recency_weighted_matrix

logger = logging.getLogger(__name__)

# One scan of the loaded BLAS libraries per process, not one per fit (threadpool_limits rescans).
_THREADPOOLS = ThreadpoolController()

# Spark ALS truncates its lineage every this many sweeps (only when a checkpoint directory is set).
SPARK_CHECKPOINT_INTERVAL = 5
# Thread stack for the Spark JVM (its default is 1 MB): headroom for deep task deserialisation.
SPARK_THREAD_STACK = "-Xss16m"

ENGINES = ("implicit", "spark")
WEIGHTINGS = ("bm25", "tfidf", "linear", "none")


@dataclass(frozen=True)
class ALSParams:
    """Hyper-parameters of :class:`ALSRecommender`.

    Attributes:
        engine: ``"implicit"`` (single node, fast) or ``"spark"`` (pyspark.ml ALS).
        factors: Number of latent factors (Spark's ``rank``).
        regularization: L2 penalty (Spark's ``regParam``; Spark scales it per user/item by the
            number of observed pairs, see the module docstring).
        alpha: Confidence slope: ``c_ui = 1 + alpha * w_ui`` for both engines.
        weighting: How train weights become ``w_ui``: ``"bm25"``, ``"tfidf"``, ``"linear"``
            (the summed weight itself) or ``"none"`` (1 for every observed pair).
        iterations: ALS sweeps (Spark's ``maxIter``).
        seed: Seeds the random factor initialisation (``random_state`` / Spark ``seed``).
        bm25_k1: BM25 term-frequency saturation ``K1`` (only for ``weighting="bm25"``).
        bm25_b: BM25 length normalisation ``B`` in [0, 1] (only for ``weighting="bm25"``).
        num_threads: Threads for the ``implicit`` engine; 0 means all cores.
        use_gpu: ``implicit`` engine on CUDA: None picks it when ``implicit`` has CUDA support
            and a GPU is present; True requires it; False forces the CPU.
        spark_master: Spark master for the ``spark`` engine: ``"local[*]"`` or a cluster URL.
        spark_driver_memory: ``spark.driver.memory`` when this process starts the session.
        spark_reg_param: Spark's ``regParam`` for the ``spark`` engine; None uses
            ``regularization``. Spark scales the penalty by each user's and item's pair count,
            so a value tuned for ``implicit`` is far too strong there (ML-100k, 16 factors:
            ``regularization`` 10 gives validation NDCG@10 0.127 with ``implicit`` but 0.002
            as Spark's ``regParam``; ``regParam`` 0.01 gives 0.127). Grid points meant for
            both engines set both.
        recency_half_life_days: Scales each train interaction by ``2 ** (-age / half_life)``
            (age in days before the last train timestamp) before ``weighting``, for both
            engines: summed weights are summed after scaling, and with ``weighting="none"`` a
            pair's 1 becomes its latest interaction's weight. 0 turns it off; without
            timestamps it is ignored (a warning). A folded-in history counts as of now.

    """

    engine: str = "implicit"
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 1.0
    weighting: str = "bm25"
    iterations: int = 15
    seed: int = 0
    bm25_k1: float = 100.0
    bm25_b: float = 0.8
    num_threads: int = 0
    use_gpu: bool | None = None
    spark_master: str = "local[*]"
    spark_driver_memory: str = "4g"
    spark_reg_param: float | None = None
    recency_half_life_days: float = 0.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        check_field(self, "factors", 1, integer=True)
        check_field(self, "regularization", 0)
        check_field(self, "alpha", 0)
        check_field(self, "spark_reg_param", 0, allow_none=True)
        check_field(self, "iterations", 1, integer=True)
        check_field(self, "bm25_k1", 0)
        check_field(self, "bm25_b", 0, 1)
        check_field(self, "num_threads", 0, integer=True)
        check_field(self, "seed", 0, integer=True)
        check_recency_half_life(self)

    def spark_regularization(self) -> float:
        """Spark's ``regParam``: ``spark_reg_param``, else ``regularization``."""
        return self.regularization if self.spark_reg_param is None else self.spark_reg_param


class ALSRecommender(DotProductRecommender, FoldIn):
    """Implicit-feedback ALS; scores are dot products of learned user and item factors.

    Hyper-parameters: :class:`ALSParams`; a value out of range or an unknown engine or
    weighting raises a ``ValueError``.
    """

    family = "als"
    Params = ALSParams
    format_version = 2  # 2: recency_half_life_days

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.user_factors: np.ndarray | None = None
        self.item_factors: np.ndarray | None = None
        self.fit_seconds: float | None = None
        self.item_weight_sums: np.ndarray | None = None  # BM25 item lengths, for fold-in

    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None:
        params = self.hparams
        start = time.perf_counter()
        matrix, weighting = train.matrix, params.weighting
        decayed = recency_weighted_matrix(
            train, params.recency_half_life_days, self.family, params.weighting != "none"
        )
        if decayed is not None:
            # "none" keeps one value per pair: the recency weight of its latest interaction.
            matrix, weighting = decayed, "linear" if weighting == "none" else weighting
        # A folded-in user's BM25 weights need the train item lengths (summed weights per item).
        self.item_weight_sums = np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel()
        weights = preference_weights(matrix, weighting, params.bm25_k1, params.bm25_b)
        logger.info(
            "als[%s]: %d users x %d items, %d observed pairs (%d train rows), weighting=%s",
            params.engine,
            train.n_users,
            train.n_items,
            weights.nnz,
            len(train.user_idx),
            params.weighting,
        )
        if params.engine == "implicit":
            user_factors, item_factors = self._fit_implicit(weights)
        else:
            user_factors, item_factors = self._fit_spark(weights)
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.fit_seconds = time.perf_counter() - start
        logger.info("als[%s]: fitted in %.2f s", params.engine, self.fit_seconds)

    def _vectors(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        return self.user_factors, self.item_factors

    def fold_in_user_factor(
        self, item_idx: np.ndarray, weights: np.ndarray | None = None
    ) -> np.ndarray:
        """Solve a new user's factor from the fixed item factors (one ALS half-step).

        The exact least-squares solution of the ALS objective for one user, as ``implicit``'s
        ``recalculate_user`` computes it: ``x = (Y^T C Y + reg I)^-1 Y^T C p`` with
        ``Y^T C Y = Y^T Y + Y_h^T (C_h - 1) Y_h`` over the history items ``h``, ``p_h = 1`` and
        ``c_h = 1 + alpha * |w_h|``. ``w_h`` follows the model's ``weighting`` (BM25 uses the
        train item lengths); the Spark engine's regularisation is scaled by the history length,
        as Spark's ALS-WR does. Works for both engines: only the NumPy item factors are used.

        Args:
            item_idx: Encoded items of the history (distinct).
            weights: Optional rating per item; None means 1.

        Returns:
            float32 array (factors,).
        """
        if self.item_factors is None:
            raise ValueError("ALSRecommender is not fitted: call fit() first")
        params = self.hparams
        item_idx = np.asarray(item_idx, dtype=np.int64)
        raw = (
            np.ones(len(item_idx), dtype=np.float64)
            if weights is None
            else np.asarray(weights, dtype=np.float64)
        )
        w = self._fold_in_weights(item_idx, raw)
        confidence = 1.0 + params.alpha * np.abs(w)
        Y = self.item_factors.astype(np.float64)
        Yh = Y[item_idx]
        if params.engine == "spark":
            reg = params.spark_regularization() * len(item_idx)
        else:
            reg = params.regularization
        A = Y.T @ Y + (Yh.T * (confidence - 1.0)) @ Yh + reg * np.eye(Y.shape[1])
        b = Yh.T @ confidence
        return np.linalg.solve(A, b).astype(np.float32)

    def _fold_in_weights(self, item_idx: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """``w_h`` of a new user's items under the model's ``weighting`` (as preference_weights)."""
        params = self.hparams
        if params.weighting == "none":
            return np.ones_like(raw)
        if params.weighting == "linear":
            return raw
        idf = np.log(self.n_items) - np.log1p(len(item_idx))
        if params.weighting == "tfidf":
            return np.sqrt(raw) * idf
        k1, b, lengths = params.bm25_k1, params.bm25_b, self.item_weight_sums
        length_norm = (1.0 - b) + b * lengths[item_idx] / lengths.mean()
        return raw * (k1 + 1.0) / (k1 * length_norm + raw) * idf

    def fold_in_scores(self, item_idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Scores ``x @ Y^T`` of a new user whose factor ``x`` is solved from their items.

        Args:
            item_idx: Encoded items of the history (distinct).
            weights: Optional rating per item; None means 1.

        Returns:
            float32 array (n_items,).
        """
        return (self.item_factors @ self.fold_in_user_factor(item_idx, weights)).astype(np.float32)

    def _fit_implicit(self, weights: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        params = self.hparams
        gpu = _implicit_gpu_available() if params.use_gpu is None else bool(params.use_gpu)
        if gpu and not _implicit_gpu_available():
            raise ValueError("use_gpu=True but implicit has no CUDA support or sees no GPU")
        confidence = confidence_matrix(weights, params.alpha, copy=False)  # weights is ours
        # implicit parallelises with its own threads; a multi-threaded BLAS underneath it only
        # oversubscribes the cores (implicit warns about OpenBLAS threads), so pin BLAS to 1.
        with _THREADPOOLS.limit(limits=1, user_api="blas"):
            if gpu:
                model = implicit.gpu.als.AlternatingLeastSquares(
                    factors=params.factors,
                    regularization=params.regularization,
                    alpha=1.0,  # the confidence matrix already holds 1 + alpha * w
                    iterations=params.iterations,
                    random_state=params.seed,
                )
            else:
                model = AlternatingLeastSquares(
                    factors=params.factors,
                    regularization=params.regularization,
                    alpha=1.0,  # the confidence matrix already holds 1 + alpha * w
                    iterations=params.iterations,
                    num_threads=params.num_threads,
                    random_state=params.seed,
                )
            model.fit(confidence, show_progress=False)
        if gpu:
            model = model.to_cpu()
        return np.asarray(model.user_factors), np.asarray(model.item_factors)

    def _fit_spark(self, weights: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        from pyspark.ml.recommendation import ALS

        params = self.hparams
        spark = spark_session(params.spark_master, params.spark_driver_memory)
        _ensure_checkpoint_dir(spark)
        with tempfile.TemporaryDirectory(prefix="reclab-als-") as staging:
            frame = spark_ratings_frame(spark, weights, staging)
            als = ALS(
                rank=params.factors,
                maxIter=params.iterations,
                regParam=params.spark_regularization(),
                implicitPrefs=True,
                alpha=params.alpha,  # Spark applies c = 1 + alpha * |rating| itself
                userCol="user",
                itemCol="item",
                ratingCol="rating",
                seed=params.seed,
                # Each sweep lengthens the factor RDDs' lineage, and deserialising a long one
                # overflowed a 1 MB thread stack at 15 sweeps in CI: cut it every few sweeps.
                checkpointInterval=SPARK_CHECKPOINT_INTERVAL,
            )
            start = time.perf_counter()
            model = als.fit(frame)
            user_factors = _collect_factors(model.userFactors, weights.shape[0], params.factors)
            item_factors = _collect_factors(model.itemFactors, weights.shape[1], params.factors)
        logger.info(
            "als[spark]: %d ratings fitted on %s in %.2f s",
            weights.nnz,
            spark.sparkContext.master,
            time.perf_counter() - start,
        )
        return user_factors, item_factors


def spark_ratings_frame(spark: Any, weights: sp.csr_matrix, staging_dir: str) -> Any:
    """The observed pairs as a Spark DataFrame ``(user int, item int, rating float)``.

    Our encoded ids are contiguous ints already, so they are Spark's ids as they are. PySpark's
    Arrow/pandas hand-over needs pandas >= 2.2 and pyarrow >= 18, newer than this environment
    has, so for a local master the pairs are written to Parquet with pyarrow under
    ``staging_dir`` and read back by Spark (fast for tens of millions of rows). A cluster master
    cannot read the driver's temporary directory, so there the rows are shipped from the driver
    (``createDataFrame`` on tuples: correct, but slow beyond a few million rows; at that scale
    the interactions should be read by Spark from shared storage instead).

    Args:
        spark: The Spark session.
        weights: User x item preference weights.
        staging_dir: A directory for the Parquet file (local masters only); it must outlive the
            use of the returned DataFrame.

    Returns:
        A ``pyspark.sql.DataFrame``.
    """
    from pyspark.sql.types import FloatType, IntegerType, StructField, StructType

    coo = weights.tocoo()
    users = coo.row.astype(np.int32)
    items = coo.col.astype(np.int32)
    ratings = coo.data.astype(np.float32)
    if spark.sparkContext.master.startswith("local"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = os.path.join(staging_dir, "ratings.parquet")
        table = pa.table({"user": users, "item": items, "rating": ratings})
        pq.write_table(table, path)
        return spark.read.parquet(path)
    schema = StructType(
        [
            StructField("user", IntegerType(), False),
            StructField("item", IntegerType(), False),
            StructField("rating", FloatType(), False),
        ]
    )
    rows = list(zip(users.tolist(), items.tolist(), ratings.tolist(), strict=True))
    return spark.createDataFrame(rows, schema=schema)


def preference_weights(
    matrix: sp.csr_matrix, weighting: str, bm25_k1: float = 100.0, bm25_b: float = 0.8
) -> sp.csr_matrix:
    """Turn summed train weights into the preference weights ``w_ui`` ALS is fitted on.

    BM25 and TF-IDF treat each item as a document whose terms are its users (the orientation of
    ``implicit``'s examples): the length normalisation runs over an item's users and the IDF
    over a user's items, ``idf_u = log(n_items) - log(1 + n_items_of_u)``.

    Args:
        matrix: User x item CSR matrix of summed train weights.
        weighting: ``"bm25"``, ``"tfidf"``, ``"linear"`` (unchanged) or ``"none"`` (all ones).
        bm25_k1: BM25 ``K1``.
        bm25_b: BM25 ``B``.

    Returns:
        A new user x item float32 CSR matrix with the same non-zero pattern.

    Raises:
        ValueError: If ``weighting`` is unknown.
    """
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sum_duplicates()
    if weighting == "linear":
        return matrix.copy()  # never the caller's matrix: confidence_matrix may overwrite it
    if weighting == "none":
        ones = matrix.copy()
        ones.data = np.ones_like(ones.data)
        return ones
    if weighting in ("bm25", "tfidf"):
        item_users = matrix.T  # a CSC view: the weighting functions convert to COO themselves
        if weighting == "bm25":
            weighted = bm25_weight(item_users, K1=bm25_k1, B=bm25_b)
        else:
            weighted = tfidf_weight(item_users)
        return sp.csr_matrix(weighted.T, dtype=np.float32)
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


def confidence_matrix(weights: sp.csr_matrix, alpha: float, copy: bool = True) -> sp.csr_matrix:
    """Confidence ``c_ui = 1 + alpha * w_ui`` on the observed pairs (what Spark computes).

    Args:
        weights: User x item preference weights from :func:`preference_weights`.
        alpha: Confidence slope.
        copy: False overwrites ``weights`` (when the caller owns it) instead of copying it.

    Returns:
        User x item float32 CSR matrix of confidences, same non-zero pattern.
    """
    confidence = sp.csr_matrix(weights, dtype=np.float32, copy=copy)
    confidence.data = (1.0 + alpha * np.abs(confidence.data)).astype(np.float32)
    return confidence


def spark_session(master: str = "local[*]", driver_memory: str = "4g") -> Any:
    """The process's Spark session, started on first use and then reused.

    Spark allows one session per process: when one is already running (started here or by the
    caller) it is returned as it is, and a different ``master`` is only logged.

    Args:
        master: Spark master, ``"local[*]"`` or a cluster URL.
        driver_memory: ``spark.driver.memory`` for a session started here.

    Returns:
        A ``pyspark.sql.SparkSession`` with its log level at WARN.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        if active.sparkContext.master != master:
            logger.warning(
                "reusing the running Spark session on %s (asked for %s)",
                active.sparkContext.master,
                master,
            )
        return active
    logging.getLogger("py4j").setLevel(logging.WARNING)
    start = time.perf_counter()
    spark = (
        SparkSession.builder.master(master)
        .appName("reclab-als")
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.driver.extraJavaOptions", SPARK_THREAD_STACK)
        .config("spark.executor.extraJavaOptions", SPARK_THREAD_STACK)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    logger.info("started Spark on %s in %.1f s", master, time.perf_counter() - start)
    return spark


def _ensure_checkpoint_dir(spark: Any) -> None:
    """Give the session a checkpoint directory unless it has one, so ALS can cut its lineage.

    A local master gets a temporary directory removed when the process exits; a cluster needs
    a directory every executor can reach, so there ``spark.checkpoint.dir`` (or an earlier
    ``setCheckpointDir``) is the user's to set, and without one Spark ALS keeps its whole lineage.
    """
    context = spark.sparkContext
    if context.getCheckpointDir() is not None:
        return
    if not context.master.startswith("local"):
        logger.warning(
            "Spark session on %s has no checkpoint directory: ALS lineage grows with every "
            "sweep (set spark.checkpoint.dir to a shared path, e.g. on HDFS or S3)",
            context.master,
        )
        return
    directory = tempfile.mkdtemp(prefix="reclab-spark-checkpoints-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    context.setCheckpointDir(directory)


def _collect_factors(factors_frame: Any, n: int, rank: int) -> np.ndarray:
    """Spark's ``(id, features)`` factor frame as a dense (n, rank) float32 array.

    Ids Spark never saw (no observed pair) keep a zero vector, so they score 0 everywhere.
    """
    rows = factors_frame.collect()
    out = np.zeros((n, rank), dtype=np.float32)
    if rows:
        ids = np.fromiter((row["id"] for row in rows), dtype=np.int64, count=len(rows))
        out[ids] = np.asarray([row["features"] for row in rows], dtype=np.float32)
    return out


def _implicit_gpu_available() -> bool:
    """True when ``implicit`` was built with CUDA, ``rmm`` is installed and a GPU is visible."""
    return bool(implicit.gpu.HAS_CUDA)
