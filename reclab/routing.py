"""Which of a run's bundles answers which kind of request, by the capability mixins.

The winner answers known users. A new user's history (fold-in) and "more like this" (item
similarity) go to the winner when its family can, else to the best family of the run that can,
in leaderboard order (``best_model_per_family``). A family can when its class inherits
:class:`reclab.models.capabilities.FoldIn`, :class:`~reclab.models.capabilities.ItemSimilarity`
or :class:`~reclab.models.capabilities.Explains`. The check is made on the class
(``issubclass``, the same test as ``isinstance`` on the model), so routing never deserialises a
model that will not be used; the routes are fixed when the router is made.

The winner served after a refit knows every item of the run, while the other families were
fitted on the train window only. Their answers are translated by raw item id
(:class:`InServedCatalogue`): items they never saw score ``-inf``, and history items they never
saw are left out of their fold-in.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from reclab.bundle import ModelBundle
from reclab.id_maps import IdMap
from reclab.models.capabilities import Explains, FoldIn, ItemSimilarity

logger = logging.getLogger(__name__)


class CapabilityRouter:
    """The bundles of one run, and which of them serves each capability.

    Args:
        best: The winner.
        per_family: Best candidate per family, best validation first (the winner's own family
            is the winner); a family that shares no item with the winner's catalogue is left
            out with a warning.

    Attributes:
        bundles: The winner, then the other families in leaderboard order.
        fold_in: The bundle that folds in new users, or None.
        similar: The bundle that finds similar items, or None.
    """

    def __init__(self, best: ModelBundle, per_family: dict[str, ModelBundle] | None) -> None:
        self.best = best
        self.bundles: list[ModelBundle] = [best]
        # Catalogues are compared once, here; a translation is built on first use, under a
        # lock, since one router serves many threads.
        self._same: set[int] = {id(best)}
        self._translated: dict[int, InServedCatalogue] = {}
        self._translating = threading.Lock()
        for family, bundle in (per_family or {}).items():
            if family == best.family:
                continue
            if np.array_equal(bundle.item_map.raw_ids, best.item_map.raw_ids):
                self._same.add(id(bundle))
            elif not np.isin(bundle.item_map.raw_ids, best.item_map.raw_ids).any():
                logger.warning("%s shares no item with the served catalogue; not used", family)
                continue
            self.bundles.append(bundle)
        self.fold_in = self._first(FoldIn)
        self.similar = self._first(ItemSimilarity)

    def same_catalogue(self, bundle: ModelBundle) -> bool:
        """Whether the bundle's items are the served catalogue, index for index."""
        return id(bundle) in self._same

    def knows(self, bundle: ModelBundle, item_idx: int) -> bool:
        """Whether the bundle's family was fitted with this served item."""
        return self.same_catalogue(bundle) or self.model(bundle).knows(item_idx)

    def model(self, bundle: ModelBundle):
        """The bundle's model, answering in the served catalogue's item indices."""
        if self.same_catalogue(bundle):
            return bundle.model
        key = id(bundle)
        with self._translating:
            if key not in self._translated:
                self._translated[key] = InServedCatalogue(bundle, self.best.item_map)
            return self._translated[key]

    def _first(self, capability: type) -> ModelBundle | None:
        return next((b for b in self.bundles if issubclass(b.model_class, capability)), None)

    @staticmethod
    def explains(bundle: ModelBundle | None) -> bool:
        """Whether the bundle's family can explain its scores."""
        return bundle is not None and issubclass(bundle.model_class, Explains)

    def families(self) -> str:
        """The families available, for messages."""
        return "families: " + ", ".join(bundle.family for bundle in self.bundles)


class InServedCatalogue:
    """A family's model asked and answering in another (the served) catalogue's item indices.

    Args:
        bundle: The family's bundle (its own item map).
        served: The served catalogue's item map.
    """

    def __init__(self, bundle: ModelBundle, served: IdMap) -> None:
        self._model = bundle.model
        self.family = bundle.family
        self.use_weights = getattr(self._model, "use_weights", True)
        self._to_model = bundle.item_map.to_idx(served.raw_ids)  # -1: unknown to the family
        self._known = np.flatnonzero(self._to_model >= 0)
        self._to_served = np.full(len(bundle.item_map), -1, dtype=np.int64)
        self._to_served[self._to_model[self._known]] = self._known
        self._n_served = len(served)

    def knows(self, item_idx: int) -> bool:
        """Whether the family was fitted with this served item."""
        return bool(self._to_model[item_idx] >= 0)

    def _spread(self, scores: np.ndarray) -> np.ndarray:
        out = np.full(self._n_served, -np.inf, dtype=np.float32)
        out[self._known] = scores[self._to_model[self._known]]
        return out

    def fold_in_scores(self, item_idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """:meth:`FoldIn.fold_in_scores` from the history items the family knows."""
        mapped = self._to_model[np.asarray(item_idx, dtype=np.int64)]
        keep = mapped >= 0
        kept_weights = None if weights is None else np.asarray(weights)[keep]
        return self._spread(self._model.fold_in_scores(mapped[keep], kept_weights))

    def item_similarity_scores(self, item_idx: int) -> np.ndarray:
        """:meth:`ItemSimilarity.item_similarity_scores` of an item the family knows."""
        return self._spread(self._model.item_similarity_scores(int(self._to_model[item_idx])))

    def explain(
        self,
        history_idx: np.ndarray,
        history_weights: np.ndarray,
        item_idx: np.ndarray,
        k: int = 3,
    ) -> list[list[tuple[int, float]]]:
        """:meth:`Explains.explain`; items the family does not know get no explanation."""
        history = self._to_model[np.asarray(history_idx, dtype=np.int64)]
        keep = history >= 0
        items = self._to_model[np.asarray(item_idx, dtype=np.int64)]
        known = items >= 0
        answers = self._model.explain(
            history[keep], np.asarray(history_weights)[keep], items[known], k
        )
        because = iter(answers)
        return [
            [(int(self._to_served[h]), w) for h, w in next(because)] if ok else [] for ok in known
        ]
