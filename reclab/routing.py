"""Which of a run's bundles answers which kind of request, by the capability mixins.

The winner answers known users. A new user's history (fold-in) and "more like this" (item
similarity) go to the winner when its family can, else to the best family of the run that can,
in leaderboard order (``best_model_per_family``). A family can when its class inherits
:class:`reclab.models.capabilities.FoldIn`, :class:`~reclab.models.capabilities.ItemSimilarity`
or :class:`~reclab.models.capabilities.Explains`. The check is made on the class
(``issubclass``, the same test as ``isinstance`` on the model), so routing never deserialises a
model that will not be used; the routes are fixed when the router is made.
"""

from __future__ import annotations

import logging

import numpy as np

from reclab.bundle import ModelBundle
from reclab.models.capabilities import Explains, FoldIn, ItemSimilarity

logger = logging.getLogger(__name__)


class CapabilityRouter:
    """The bundles of one run, and which of them serves each capability.

    Args:
        best: The winner.
        per_family: Best candidate per family, best validation first; families trained on
            another item catalogue than the winner's are left out with a warning.

    Attributes:
        bundles: The winner, then the other families in leaderboard order.
        fold_in: The bundle that folds in new users, or None.
        similar: The bundle that finds similar items, or None.
    """

    def __init__(self, best: ModelBundle, per_family: dict[str, ModelBundle] | None) -> None:
        self.best = best
        self.bundles: list[ModelBundle] = [best]
        for family, bundle in (per_family or {}).items():
            if family == best.family:
                continue
            if not np.array_equal(bundle.item_map.raw_ids, best.item_map.raw_ids):
                logger.warning("%s was trained on another item catalogue; not used", family)
                continue
            self.bundles.append(bundle)
        self.fold_in = self._first(FoldIn)
        self.similar = self._first(ItemSimilarity)

    def _first(self, capability: type) -> ModelBundle | None:
        return next((b for b in self.bundles if issubclass(b.model_class, capability)), None)

    @staticmethod
    def explains(bundle: ModelBundle | None) -> bool:
        """Whether the bundle's family can explain its scores."""
        return bundle is not None and issubclass(bundle.model_class, Explains)

    def families(self) -> str:
        """The families available, for messages."""
        return "families: " + ", ".join(bundle.family for bundle in self.bundles)
