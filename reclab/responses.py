"""Response shaping for serving: a full score vector in, a JSON-ready ranked list out.

Every answer of :class:`reclab.serving.RecommendationService` goes through :func:`respond`: the
business rules remove and pin items (:func:`reclab.rules.apply_rules`), the remaining items are
ranked best first, forced items are placed at their positions, and each item gets its rank,
raw id, score, metadata and, when asked, the history items that explain it. The catalogue's
lookup tables are built once, when the service is made, so request threads only read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reclab.id_maps import IdMap
from reclab.plain import norm, plain
from reclab.rules import BusinessRules, ForcedItem, apply_rules

EXPLAIN_K = 3  # history items shown per recommended item


class ItemCatalogue:
    """The served items: their id map, their metadata, and the list-valued columns exploded.

    Args:
        item_map: Raw item id <-> item_idx.
        metadata: Item metadata indexed by raw item id, or None.
    """

    def __init__(self, item_map: IdMap, metadata: pd.DataFrame | None) -> None:
        self.item_map = item_map
        self.metadata = metadata
        # One row per (item position, casefolded value) of each list column (e.g. genres), built
        # here once so request threads never build or mutate a cache.
        self.list_values: dict[str, pd.Series] = {}
        if metadata is None:
            return
        metadata.index.get_indexer(item_map.raw_ids[:1])  # builds pandas' lookup table now
        for column in metadata.columns:
            values = metadata[column].reindex(pd.Index(item_map.raw_ids))
            is_list = values.map(lambda v: isinstance(v, list | tuple | np.ndarray))
            if is_list.any():
                lists = values.map(lambda v: v if isinstance(v, list | tuple | np.ndarray) else [])
                exploded = lists.reset_index(drop=True).explode().dropna()
                self.list_values[column] = exploded.map(norm)

    def column(self, column: str) -> pd.Series:
        """A metadata column in item_idx order (NaN for items without metadata)."""
        return self.metadata[column].reindex(pd.Index(self.item_map.raw_ids))

    def metadata_of(self, raw: Any) -> dict:
        """The item's metadata columns as plain values ({} when there is no metadata)."""
        if self.metadata is None or raw not in self.metadata.index:
            return {"title": None} if self.metadata is not None else {}
        return {str(c): plain(v) for c, v in self.metadata.loc[raw].items()}


@dataclass
class Scored:
    """One request's scores over the whole catalogue and who produced them.

    Attributes:
        scores: float64 (n_items,), writable; -inf or NaN where an item must not be shown.
        strategy: ``model``, ``fold_in``, ``cold_start_popularity`` or ``fallback_popularity``.
        served_by: The family (or ``popularity``) that produced the scores.
        tiebreak: Per-item tie-break key (raw-id rank for popularity); None ties by item_idx.
        explain_with: ``(model, history_idx, history_weights or None)`` to explain the items.
    """

    scores: np.ndarray
    strategy: str
    served_by: str
    tiebreak: np.ndarray | None = None
    explain_with: tuple | None = None


def respond(
    scored: Scored,
    k: int,
    rules: BusinessRules,
    warnings: list[str],
    catalogue: ItemCatalogue,
    popular_order: np.ndarray | None,
) -> dict:
    """Apply the rules to a full score vector, rank, pin forced items, build the items.

    Args:
        scored: The scores and who produced them.
        k: Items wanted.
        rules: Validated business rules.
        warnings: Warnings so far; this call appends its own.
        catalogue: The served items.
        popular_order: Items most popular first (for ``exclude_top_popular``), or None.

    Returns:
        ``strategy``, ``cold_start`` (None: the caller sets it), ``served_by``, ``k``,
        ``items``, ``rules_applied``, ``warnings``.
    """
    scores = np.where(np.isnan(scored.scores), -np.inf, scored.scores)
    available = int(np.isfinite(scores).sum())
    applied, forced = apply_rules(scores, rules, catalogue, popular_order, warnings)
    candidates = np.flatnonzero(np.isfinite(scores))
    # best first; ties by item index (the models' own rule) or raw id (popularity)
    key = candidates if scored.tiebreak is None else scored.tiebreak[candidates]
    organic = candidates[np.lexsort((key, -scores[candidates]))]
    entries = _place_forced(organic, list(forced), k, warnings)
    if not entries:
        if available and not rules.is_empty():
            warnings.append(
                f"the business rules removed all {available} candidate items "
                f"({'; '.join(applied)}): no items to recommend; relax the rules"
            )
        else:
            warnings.append("no items can be recommended here")
    elif len(entries) < k:
        warnings.append(f"only {len(entries)} of the {k} requested items could be found")
    return {
        "strategy": scored.strategy,
        "cold_start": None,  # placeholder keeps the documented key order; caller sets it
        "served_by": scored.served_by,
        "k": k,
        "items": _items(entries, scores, catalogue, scored.explain_with),
        "rules_applied": applied,
        "warnings": warnings,
    }


def _place_forced(
    organic: np.ndarray, forced: list[ForcedItem], k: int, warnings: list[str]
) -> list[int | ForcedItem]:
    """The first k entries: ranked item indices, with forced items at their positions."""
    entries: list[int | ForcedItem] = []
    n_organic = 0
    while len(entries) < k and (n_organic < len(organic) or forced):
        rank = len(entries) + 1
        if forced and (forced[0].position == rank or n_organic >= len(organic)):
            item = forced.pop(0)
            if item.position != rank:
                warnings.append(
                    f"forced item {plain(item.item_id)} moved from position "
                    f"{item.position} to {rank}: fewer items came before it"
                )
            entries.append(item)
        else:
            entries.append(int(organic[n_organic]))
            n_organic += 1
    for item in forced:
        warnings.append(
            f"forced item {plain(item.item_id)} at position {item.position} is beyond "
            f"k={k} and was not shown"
        )
    return entries


def _items(
    entries: list[int | ForcedItem],
    scores: np.ndarray,
    catalogue: ItemCatalogue,
    explain_with: tuple | None,
) -> list[dict]:
    """The response items: rank, raw id, score, metadata, forced and (explained) because."""
    organic_idx = np.array([e for e in entries if not isinstance(e, ForcedItem)], dtype=np.int64)
    raw_ids = iter(catalogue.item_map.to_raw(organic_idx))
    because = None
    if explain_with is not None:
        model, history, weights = explain_with
        if weights is None:
            weights = np.ones(len(history), dtype=np.float32)
        because = iter(model.explain(history, weights, organic_idx, EXPLAIN_K))
    items = []
    for rank, entry in enumerate(entries, start=1):
        forced = isinstance(entry, ForcedItem)
        raw = entry.item_id if forced else next(raw_ids)
        score = None if forced else float(scores[entry])
        item = {"rank": rank, "item_id": plain(raw), "score": score}
        item.update(catalogue.metadata_of(raw))
        item["forced"] = forced
        if because is not None and not forced:
            item["because"] = [_because(catalogue, h, w) for h, w in next(because)]
        items.append(item)
    return items


def _because(catalogue: ItemCatalogue, history_idx: int, weight: float) -> dict:
    raw = catalogue.item_map.raw_ids[history_idx]
    return {
        "item_id": plain(raw),
        "title": catalogue.metadata_of(raw).get("title"),
        "weight": float(weight),
    }
