"""The one interface every model family implements, and the train data it is fitted on.

Every family works in the encoded id space that ``build_workflow`` creates: users are
``0..n_users-1`` and items ``0..n_items-1`` (the train catalogue). Raw ids only appear at the
edges, through :class:`reclab.id_maps.IdMap`.
"""

from __future__ import annotations

import dataclasses
import pickle
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from reclab.models.capabilities import ItemSimilarity


@dataclass
class TrainData:
    """Train interactions in encoded ids.

    Attributes:
        user_idx: Encoded user of each interaction, int64, shape (n,).
        item_idx: Encoded item of each interaction, int64, shape (n,).
        weight: Interaction weight (rating, play count; 1.0 when the source has none).
        ts: Interaction time as epoch seconds (float64), or None when the source has none.
        n_users: Number of encoded users (rows of the user-item matrix).
        n_items: Number of encoded items (the train catalogue).
        item_ids: Raw item id of each encoded item, for families that need a raw-id tie-break.
        nvt_dir: The NVTabular output of ``build_workflow`` (``train/``, ``valid/``,
            ``workflow/``), for families that read Merlin's tagged parquet; None when absent.
            Its codes map to our indices by ``idx = code - IdMap.code_offset``.
    """

    user_idx: np.ndarray
    item_idx: np.ndarray
    weight: np.ndarray
    ts: np.ndarray | None
    n_users: int
    n_items: int
    item_ids: np.ndarray
    nvt_dir: str | None = None
    _matrix: sp.csr_matrix | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.user_idx)
        if (
            len(self.item_idx) != n
            or len(self.weight) != n
            or (self.ts is not None and len(self.ts) != n)
        ):
            raise ValueError("user_idx, item_idx, weight and ts must have the same length")
        encoded_indices(self.user_idx, self.n_users, "user_idx")
        encoded_indices(self.item_idx, self.n_items, "item_idx")
        if len(self.item_ids) != self.n_items:
            raise ValueError(f"item_ids has {len(self.item_ids)} entries for {self.n_items} items")

    @property
    def matrix(self) -> sp.csr_matrix:
        """User x item CSR matrix of summed weights (duplicates added up)."""
        if self._matrix is None:
            self._matrix = sp.csr_matrix(
                (self.weight.astype(np.float32), (self.user_idx, self.item_idx)),
                shape=(self.n_users, self.n_items),
            )
            self._matrix.sum_duplicates()
        return self._matrix

    @property
    def seen(self) -> sp.csr_matrix:
        """Binary user x item CSR matrix: which items each user has in train."""
        seen = self.matrix.copy()
        seen.data = np.ones_like(seen.data, dtype=np.bool_)
        return seen


def evaluate_window(
    train: TrainData,
    recommend: Any,
    window_user_idx: np.ndarray,
    window_item_idx: np.ndarray,
    ks: tuple[int, ...] = (10,),
    bootstrap_samples: int = 0,
    seed: int = 0,
    interval_ks: tuple[int, ...] | None = None,
) -> Any:
    """:func:`reclab.evaluation.evaluate` of ``recommend`` on a window against ``train``.

    Returns:
        The evaluator's result (metrics, counts, intervals; intervals at ``interval_ks``,
        every ``k`` when None).
    """
    from reclab.evaluation import evaluate

    return evaluate(
        recommend,
        train.user_idx,
        train.item_idx,
        window_user_idx,
        window_item_idx,
        n_users=train.n_users,
        n_items=train.n_items,
        ks=ks,
        bootstrap_samples=bootstrap_samples,
        seed=seed,
        interval_ks=interval_ks,
    )


@dataclass(frozen=True)
class ValidationWindow:
    """The validation window a family may early-stop on (NCF, two-tower): ``fit``'s second
    argument, kept apart from the train data it is judged against.

    Attributes:
        user_idx: Window users in encoded ids (cold users < 0).
        item_idx: Window items (items unseen in train >= n_items).
        metric: The run's selection metric (``--validation-metric``, e.g. ``ndcg_at_10``), so
            epochs are chosen the way the run chooses candidates.
    """

    user_idx: np.ndarray
    item_idx: np.ndarray
    metric: str = "ndcg_at_10"

    def score(self, recommend: Any, train: TrainData) -> float:
        """The selection metric of ``recommend`` on this window against ``train``, by the one
        evaluator.

        Returns:
            The metric's mean; NaN when no user of the window can be evaluated.
        """
        name, _, cutoff = self.metric.rpartition("_at_")
        if not name or not cutoff.isdigit():
            raise ValueError(f"validation metric {self.metric!r} is not '<name>_at_<k>'")
        result = evaluate_window(train, recommend, self.user_idx, self.item_idx, (int(cutoff),))
        return float(result.metrics[self.metric])


@dataclass(frozen=True)
class NoParams:
    """The hyper-parameters of a family that has none."""


class FormatVersionError(ValueError):
    """A serialised model was written in a format this code does not read."""


def check_format_version(family: str, held: Any, reads: int) -> None:
    """Refuse a payload of another format version, saying which one it holds and which is read.

    Raises:
        FormatVersionError: If ``held`` is not ``reads``.
    """
    if held != reads:
        held_text = (
            "no format version (written before versions)"
            if held is None
            else f"format version {held}"
        )
        raise FormatVersionError(
            f"this {family} model payload holds {held_text}; this code reads "
            f"{family} format version {reads}: retrain the model (or load it with the reclab "
            "version that wrote it)"
        )


class Recommender(ABC):
    """A model family: the one interface the flow, the evaluator and serving use.

    The contract (tested for every family by ``tests/contract.py``):

    * ``Family(**params)`` checks the hyper-parameters once, as the family's ``Params`` frozen
      dataclass (``model.hparams``; ``model.params`` is the same as a dict). An unknown name
      raises a ``ValueError`` naming the family and the parameters it accepts.
    * ``fit(train, validation=None)`` learns from :class:`TrainData` and returns ``self``;
      families that early-stop read the :class:`ValidationWindow`, the others ignore it.
    * ``recommend(user_idx, k, exclude_seen=True)`` returns ``(item_idx, scores)``, both of
      shape ``(len(user_idx), k)``, best first, scores non-increasing along each row. Items the
      user has in train never appear when ``exclude_seen`` is true. Where fewer than ``k`` items
      can be recommended the row is padded with item ``-1`` and score ``-inf``.
    * ``scores(user_idx, exclude_seen=True)`` returns the dense scores over the catalogue.
    * ``to_bytes()`` / ``from_bytes()`` round-trip the fitted model exactly, with the family's
      ``format_version``; a payload of another version is refused (:class:`FormatVersionError`).

    A family implements ``_fit`` and one scoring hook, ``_scores_into``; the base class
    supplies the score buffer, the exclusion of seen items and the top-k selection in user
    batches. What a family can do beyond this (fold-in, item similarity, explanations) it
    declares by inheriting the mixins of :mod:`reclab.models.capabilities`.
    """

    family: ClassVar[str]
    Params: ClassVar[type] = NoParams
    format_version: ClassVar[int] = 1
    batch_size: ClassVar[int] = 2048

    def __init__(self, **params: Any) -> None:
        self.hparams = make_params(type(self), params)
        self.n_users = 0
        self.n_items = 0
        self._seen: sp.csr_matrix | None = None
        # Train rows the last fit learned from, and what was left out (families with a row cap
        # set both in _fit; the leaderboard states them).
        self.train_rows_used: int | None = None
        self.train_sample = ""

    @property
    def params(self) -> dict[str, Any]:
        """The hyper-parameters as a plain dict (for JSON, the leaderboard, ``cls(**params)``)."""
        return dataclasses.asdict(self.hparams)

    def fit(self, train: TrainData, validation: ValidationWindow | None = None) -> Recommender:
        """Fit on train interactions.

        Args:
            train: Train interactions in encoded ids.
            validation: The validation window, for families that early-stop on it.

        Returns:
            self, fitted.
        """
        self.n_users, self.n_items = train.n_users, train.n_items
        self._seen = train.seen
        self.train_rows_used, self.train_sample = len(train.user_idx), ""
        self._fit(train, validation)
        return self

    @abstractmethod
    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None: ...

    @abstractmethod
    def _scores_into(self, user_idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write the dense scores of a user batch into ``out`` and return it.

        Args:
            user_idx: Encoded users (checked), shape (n,).
            out: A writable float32 buffer (n, n_items) the base class reuses across batches.

        Returns:
            ``out``, holding the scores; higher is better.
        """

    def _checked_users(self, user_idx: Any, k: int | None = None) -> np.ndarray:
        """The users as int64 indices, after checking the model is fitted (and ``k``)."""
        if self._seen is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        if k is not None:
            check_list_length(k)
        return encoded_indices(user_idx, self.n_users, "user_idx")

    def recommend(
        self, user_idx: np.ndarray, k: int, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for each user.

        Args:
            user_idx: Encoded users, shape (n,).
            k: Number of items per user.
            exclude_seen: Leave out items the user has in train.

        Returns:
            (item_idx int64 (n, k), scores float32 (n, k)), best first; padding is -1 / -inf.

        Raises:
            ValueError: If the model is not fitted, k < 1, or a user is out of range.
        """
        user_idx = self._checked_users(user_idx, k)
        items = np.full((len(user_idx), k), -1, dtype=np.int64)
        scores = np.full((len(user_idx), k), -np.inf, dtype=np.float32)
        # One buffer for every batch: writing into it took half the time of a fresh
        # 2,048 x n_items matrix per batch.
        buffer = np.empty((min(self.batch_size, len(user_idx)), self.n_items), dtype=np.float32)
        for start in range(0, len(user_idx), self.batch_size):
            batch = user_idx[start : start + self.batch_size]
            batch_scores = self._masked_scores(batch, buffer[: len(batch)], exclude_seen)
            top_items, top_scores = top_k(batch_scores, k)
            items[start : start + len(batch)] = top_items
            scores[start : start + len(batch)] = top_scores
        return items, scores

    def scores(self, user_idx: np.ndarray, exclude_seen: bool = True) -> np.ndarray:
        """Dense scores of known users over the whole catalogue, for callers that rank or filter.

        Args:
            user_idx: Encoded users, shape (n,).
            exclude_seen: Set the users' train items to -inf.

        Returns:
            float32 array (n, n_items); higher is better, -inf where an item must not be shown.

        Raises:
            ValueError: If the model is not fitted or a user is out of range.
        """
        user_idx = self._checked_users(user_idx)
        out = np.empty((len(user_idx), self.n_items), dtype=np.float32)
        return self._masked_scores(user_idx, out, exclude_seen)

    def _masked_scores(
        self, user_idx: np.ndarray, out: np.ndarray, exclude_seen: bool
    ) -> np.ndarray:
        """The family's scores in ``out``, the users' train items at -inf when asked."""
        out = self._scores_into(user_idx, out)
        if exclude_seen:
            seen = self._seen[user_idx].tocoo()
            out[seen.row, seen.col] = -np.inf
        return out

    def user_history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """A known user's train items and the weights the family scores them with.

        Item-to-item families override this with what their scores actually use (SAR: the
        decayed affinity); the default is the binary train row.

        Args:
            user_idx: One encoded user.

        Returns:
            (item_idx int64, weight float32) of the user's train items.
        """
        row = self._seen[int(user_idx)]
        return row.indices.astype(np.int64), np.ones(len(row.indices), dtype=np.float32)

    def to_bytes(self) -> bytes:
        """Serialise the fitted model with its family and format version.

        One pickle of the model (a BytesIO buffer would double the peak memory).
        """
        envelope = {"family": self.family, "format": self.format_version, "model": self}
        return pickle.dumps(envelope, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, payload: bytes) -> Recommender:
        """Restore a model serialised with :meth:`to_bytes`.

        Raises:
            TypeError: If the payload holds another family's model.
            FormatVersionError: If it was written in another format version.
        """
        envelope = pickle.loads(payload)
        if isinstance(envelope, Recommender):  # stored by class path, before format versions
            envelope = {"family": envelope.family, "format": None, "model": envelope}
        if not isinstance(envelope, dict) or envelope.get("family") != cls.family:
            held = envelope.get("family") if isinstance(envelope, dict) else type(envelope)
            raise TypeError(f"payload holds a {held} model, not a {cls.__name__}")
        check_format_version(cls.family, envelope.get("format"), cls.format_version)
        return envelope["model"]


class PicklesThroughBytes:
    """For families holding framework objects (torch, Keras): a fitted model pickles as its
    :meth:`Recommender.to_bytes` payload, so pickles hold no framework object."""

    def __reduce_ex__(self, protocol: Any) -> Any:
        if getattr(self, "_seen", None) is None:  # not fitted: the plain object
            return super().__reduce_ex__(protocol)
        return (_restore_from_bytes, (type(self), self.to_bytes()))

    def _seen_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, indices) of the seen-items matrix as int64, for a payload."""
        seen = self._seen.tocsr()
        return seen.indptr.astype(np.int64), seen.indices.astype(np.int64)

    def _restore_seen(self, n_users: int, n_items: int, indptr: Any, indices: Any) -> None:
        """Set the catalogue sizes and the seen-items matrix from a payload's arrays."""
        self.n_users, self.n_items = int(n_users), int(n_items)
        indptr, indices = np.asarray(indptr), np.asarray(indices)
        self._seen = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.bool_), indices, indptr),
            shape=(self.n_users, self.n_items),
        )


def _restore_from_bytes(cls: type[Recommender], payload: bytes) -> Recommender:
    """Unpickle helper of :class:`PicklesThroughBytes`."""
    return cls.from_bytes(payload)


def make_params(cls: type[Recommender], params: dict[str, Any]) -> Any:
    """``cls.Params(**params)``, with an unknown name reported with the family's parameters.

    Raises:
        ValueError: Naming the family, the unknown parameter(s) and the accepted ones; or the
            family's own message for a value out of range.
    """
    accepted = parameter_names(cls)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"{cls.family}: unknown parameter(s) {unknown}; {cls.family} accepts "
            f"{sorted(accepted) or 'none'}"
        )
    return cls.Params(**params)


def parameter_names(cls: type[Recommender]) -> list[str]:
    """The hyper-parameter names a family accepts (the fields of its ``Params``)."""
    return [f.name for f in dataclasses.fields(cls.Params)]


class DotProductRecommender(Recommender, ItemSimilarity):
    """A family whose score is a dot product of a user vector and an item vector (ALS factors,
    two-tower embeddings); items are similar by the cosine of their vectors."""

    @abstractmethod
    def _vectors(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(user vectors (n_users, d), item vectors (n_items, d)); None before fit."""

    def _fitted_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        users, items = self._vectors()
        if users is None or items is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        return users, items

    def _scores_into(self, user_idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        users, items = self._fitted_vectors()
        return dot_product_scores(users[user_idx], items, out)

    def item_similarity_scores(self, item_idx: int) -> np.ndarray:
        """Cosine similarity of the item's vector with every item's vector.

        Raises:
            ValueError: If the model is not fitted or the item is out of range.
        """
        items = self._vectors()[1]
        if items is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        return cosine_similarity_scores(items, checked_item(item_idx, len(items)))


class GlobalRankingRecommender(Recommender):
    """A family whose scores are one value per item for every user (``item_scores``).

    ``recommend`` ranks the catalogue once and walks it per user, skipping the user's train
    items (:func:`reclab.models.ranking.top_k_global_ranking`), instead of masking and ranking
    a copy of the score row per user; the lists are the same.
    """

    item_scores: np.ndarray

    def _rank_items(self, counts: np.ndarray, item_ids: np.ndarray) -> None:
        """Keep ``counts`` and scores that rank them, ties to the smaller raw item id."""
        # Fold the raw-id tie-break into a strict order so the score itself is the ranking.
        order = np.lexsort((item_ids, -counts))
        rank = np.empty(len(counts), dtype=np.int64)
        rank[order] = np.arange(len(counts))
        self.item_counts = counts
        self.item_scores = (len(counts) - rank).astype(np.float32)

    def _scores_into(self, user_idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        out[:] = self.item_scores
        return out

    def recommend(
        self, user_idx: np.ndarray, k: int, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for each user; see :class:`Recommender`."""
        from reclab.models.ranking import top_k_global_ranking

        user_idx = self._checked_users(user_idx, k)
        seen = (
            self._seen[user_idx]
            if exclude_seen
            else sp.csr_matrix((len(user_idx), self.n_items), dtype=np.bool_)
        )
        return top_k_global_ranking(self.item_scores, seen, k)


def encoded_indices(values: Any, n: int, name: str) -> np.ndarray:
    """``values`` as an int64 array of encoded indices, each checked to lie in ``[0, n)``.

    Raises:
        ValueError: Naming ``name`` and the valid range, if an index is out of range.
    """
    indices = np.asarray(values, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"{name} must lie in [0, {n})")
    return indices


def checked_item(item_idx: Any, n_items: int) -> int:
    """One encoded item as an ``int``, checked to lie in ``[0, n_items)``."""
    return int(encoded_indices([item_idx], n_items, "item_idx")[0])


def check_list_length(k: int) -> None:
    """Refuse a list length ``k`` below 1."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a dense score matrix, best first; -inf entries become padding.

    Ties are broken by the smaller item index, so results are deterministic. NaN counts as -inf.

    Args:
        scores: float array (n, n_items); -inf marks items that must not be recommended.
        k: Number of items per row.

    Returns:
        (item_idx int64 (n, k), scores float32 (n, k)); item -1 where fewer than k are allowed.
    """
    n, n_items = scores.shape
    kk = min(k, n_items)
    if kk < n_items:
        candidates, candidate_scores = _top_k_plus_one(scores, kk)
        if np.isnan(candidate_scores).any():
            scores = np.where(np.isnan(scores), -np.inf, scores)
            candidates, candidate_scores = _top_k_plus_one(scores, kk)
        # The k+1 best are sorted by score: unless the k-th and the (k+1)-th are tied, the first
        # k are exactly the items scoring at least the k-th score. Rows with a tie across that
        # boundary get a full sort, so the smaller index always wins.
        tied_rows = np.nonzero(
            (candidate_scores[:, kk - 1] == candidate_scores[:, kk])
            & np.isfinite(candidate_scores[:, kk - 1])
        )[0]
        candidates, candidate_scores = candidates[:, :kk], candidate_scores[:, :kk]
        if tied_rows.size:
            index_key = np.broadcast_to(np.arange(n_items), (tied_rows.size, n_items))
            full_order = np.lexsort((index_key, -scores[tied_rows]), axis=1)[:, :kk]
            candidates[tied_rows] = full_order
            candidate_scores[tied_rows] = np.take_along_axis(scores[tied_rows], full_order, axis=1)
    else:
        scores = np.where(np.isnan(scores), -np.inf, scores)
        candidates = np.tile(np.arange(n_items), (n, 1))
        candidate_scores = scores
    # lexsort's last key is the primary one: score descending, then item index ascending
    order = np.lexsort((candidates, -candidate_scores), axis=1)
    top_items = np.take_along_axis(candidates, order, axis=1).astype(np.int64)
    top_scores = np.take_along_axis(candidate_scores, order, axis=1).astype(np.float32)
    top_items[~np.isfinite(top_scores)] = -1
    top_scores[~np.isfinite(top_scores)] = -np.inf
    items = np.full((n, k), -1, dtype=np.int64)
    out_scores = np.full((n, k), -np.inf, dtype=np.float32)
    items[:, :kk] = top_items
    out_scores[:, :kk] = top_scores
    return items, out_scores


# Above this many scores per call, torch's multithreaded top-k is 10-30x faster than NumPy's
# argpartition (0.07 s vs 0.9 s for 2,048 users x 20,000 items), which dominated recommend time.
_TORCH_TOP_K_MIN_SIZE = 1_000_000


def _top_k_plus_one(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k + 1 best columns of each row and their scores, sorted by score (ties in any order).

    Needs k < n_items. A NaN in a row shows up among its returned scores unless the row has
    k + 1 scores that are not NaN (NumPy sorts NaN last; torch takes NaN for the largest).
    """
    if scores.size >= _TORCH_TOP_K_MIN_SIZE:
        try:
            import torch
        except ImportError:  # torch is in the pinned stack; NumPy is the slower fallback
            torch = None
        if torch is not None:
            top = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k + 1, dim=1)
            return top.indices.numpy().astype(np.int64), top.values.numpy()
    candidates = np.argpartition(-scores, (k - 1, k), axis=1)[:, : k + 1]
    values = np.take_along_axis(scores, candidates, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(values, order, axis=1)


def dot_product_scores(
    user_vectors: np.ndarray, item_vectors: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """``user_vectors @ item_vectors.T`` written into the float32 buffer ``out``.

    Writing into a reused buffer took half the time of allocating a fresh product per batch
    (0.77 s vs 1.62 s for 65,000 users x 20,000 items x 64 factors).
    """
    return np.matmul(user_vectors, item_vectors.T, out=out)


def cosine_similarity_scores(vectors: np.ndarray, item_idx: int) -> np.ndarray:
    """Cosine of one item's vector (factors, embedding) with every item's; the item itself -inf.

    Args:
        vectors: Item vectors, shape (n_items, d).
        item_idx: One encoded item.

    Returns:
        float32 array (n_items,); items with a zero vector score -inf (no direction to compare).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    query = vectors[item_idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (vectors @ query) / (norms * norms[item_idx])
    out = np.where(norms > 0, out, -np.inf).astype(np.float32)
    if norms[item_idx] == 0:
        out[:] = -np.inf
    out[item_idx] = -np.inf
    return out
