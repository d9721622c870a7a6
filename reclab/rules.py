"""Business rules applied to a ranked list after the model has scored it.

Product teams adjust what a model shows without retraining it: hide some items, hide the
blockbusters everyone has seen, pin a new release at a rank, or keep one genre. The rules are
plain JSON so the same dict works from Python, the CLI and the HTTP endpoint::

    {
        "exclude_items": [50, 181],
        "exclude_top_popular": 10,
        "include_items": [{"item_id": 1682, "position": 1}],
        "filters": {"item_genres": ["Sci-Fi", "Adventure"], "item_year": [1977]},
    }

:meth:`BusinessRules.from_dict` checks the structure without knowing the catalogue;
:func:`apply_rules` applies validated rules to one request's scores over the served catalogue
(:class:`reclab.responses.ItemCatalogue`), which is where unknown item ids and metadata columns
are found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from reclab.errors import InputError
from reclab.id_maps import coerce_id
from reclab.plain import norm, plain

if TYPE_CHECKING:
    from reclab.responses import ItemCatalogue

RULE_KEYS = ("exclude_items", "exclude_top_popular", "include_items", "filters")


@dataclass(frozen=True)
class ForcedItem:
    """An item pinned at a rank (1-based) whatever its score.

    Attributes:
        item_id: Raw item id; it may be new (not in the train catalogue).
        position: The rank it is shown at, from 1.
    """

    item_id: Any
    position: int


@dataclass(frozen=True)
class BusinessRules:
    """Validated business rules; see the module docstring for the JSON form.

    Attributes:
        exclude_items: Raw item ids never shown (unless also forced, which is refused).
        exclude_top_popular: Drop the N most popular train items (most train interactions, the
            popularity baseline's ranking); 0 keeps all.
        include_items: Items forced in at fixed ranks, sorted by position.
        filters: Metadata column -> allowed values; an item passes when its value (or, for
            list-valued columns such as genres, one of its values) is allowed, for every column.
    """

    exclude_items: tuple = ()
    exclude_top_popular: int = 0
    include_items: tuple[ForcedItem, ...] = ()
    filters: dict[str, tuple] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, rules: dict | BusinessRules | None) -> BusinessRules:
        """Validate a rules dict (as sent by a client) and build the rules.

        Args:
            rules: None (no rules), a dict with the keys of :data:`RULE_KEYS`, or rules
                already validated (returned as they are).

        Returns:
            The rules.

        Raises:
            InputError: On an unknown key, a wrong type, a negative count, a position below 1,
                duplicate forced items or positions, or an item both excluded and forced.
        """
        if rules is None:
            return cls()
        if isinstance(rules, BusinessRules):
            return rules
        if not isinstance(rules, dict):
            raise InputError(
                f"rules must be a JSON object (dict) with keys {', '.join(RULE_KEYS)}; "
                f"got {type(rules).__name__}"
            )
        unknown = sorted(str(key) for key in rules if key not in RULE_KEYS)
        if unknown:
            raise InputError(
                f"rules: unknown key(s) {', '.join(unknown)}; allowed keys are "
                f"{', '.join(RULE_KEYS)}"
            )
        exclude = rules.get("exclude_items") or []
        if not isinstance(exclude, list | tuple):
            raise InputError(
                "rules.exclude_items must be a list of raw item ids, e.g. [50, 181]; "
                f"got {type(exclude).__name__}"
            )
        for item in exclude:
            _check_id(item, "rules.exclude_items")
        top = rules.get("exclude_top_popular", 0)
        if top is None:
            top = 0
        if isinstance(top, bool) or not isinstance(top, Integral) or top < 0:
            raise InputError(
                f"rules.exclude_top_popular must be an integer >= 0 (how many of the most "
                f"popular items to drop); got {top!r}"
            )
        forced = tuple(sorted(_forced_items(rules.get("include_items")), key=lambda f: f.position))
        excluded = {str(item) for item in exclude}
        clash = [f.item_id for f in forced if str(f.item_id) in excluded]
        if clash:
            raise InputError(
                f"rules: item(s) {clash} are both in exclude_items and include_items; "
                "remove them from one of the two"
            )
        return cls(
            exclude_items=tuple(exclude),
            exclude_top_popular=int(top),
            include_items=forced,
            filters=_filters(rules.get("filters")),
        )

    def is_empty(self) -> bool:
        """True when no rule is set."""
        return not (
            self.exclude_items or self.exclude_top_popular or self.include_items or self.filters
        )


def _check_id(item: Any, where: str) -> None:
    """Raw ids are JSON ints or strings; anything else cannot be an id."""
    if isinstance(item, bool) or not isinstance(item, Integral | str):
        raise InputError(f"{where}: {item!r} is not an item id; use an integer or a string")


def _forced_items(value: Any) -> list[ForcedItem]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise InputError(
            'rules.include_items must be a list of {"item_id": <id>, "position": <rank >= 1>}; '
            f"got {type(value).__name__}"
        )
    out, positions, items = [], set(), set()
    for n, entry in enumerate(value):
        where = f"rules.include_items[{n}]"
        if not isinstance(entry, dict) or set(entry) != {"item_id", "position"}:
            raise InputError(
                f'{where} must be an object with exactly the keys "item_id" and "position", '
                f"got {entry!r}"
            )
        _check_id(entry["item_id"], f"{where}.item_id")
        position = entry["position"]
        if isinstance(position, bool) or not isinstance(position, Integral) or position < 1:
            raise InputError(f"{where}.position must be an integer >= 1 (a rank); got {position!r}")
        if int(position) in positions:
            raise InputError(f"{where}: position {position} is already taken by another item")
        if str(entry["item_id"]) in items:
            raise InputError(f"{where}: item {entry['item_id']!r} is forced twice")
        positions.add(int(position))
        items.add(str(entry["item_id"]))
        out.append(ForcedItem(item_id=entry["item_id"], position=int(position)))
    return out


def _filters(value: Any) -> dict[str, tuple]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(
            'rules.filters must be an object {"<metadata column>": [allowed values]}, e.g. '
            f'{{"item_genres": ["Comedy"]}}; got {type(value).__name__}'
        )
    out = {}
    for column, allowed in value.items():
        if not isinstance(column, str):
            raise InputError(f"rules.filters: column names must be strings, got {column!r}")
        if isinstance(allowed, str | int | float) and not isinstance(allowed, bool):
            allowed = [allowed]  # a single value is a one-value list
        if not isinstance(allowed, list | tuple) or not allowed:
            raise InputError(
                f"rules.filters.{column} must be a non-empty list of allowed values; "
                f"got {allowed!r}"
            )
        for v in allowed:
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                raise InputError(
                    f"rules.filters.{column}: {v!r} is not a string or a number; "
                    "filter values are compared with the metadata values"
                )
        out[column] = tuple(allowed)
    return out


def apply_rules(
    scores: np.ndarray,
    rules: BusinessRules,
    catalogue: ItemCatalogue,
    popular_order: np.ndarray | None,
    warnings: list[str],
) -> tuple[list[str], list[ForcedItem]]:
    """Set the items the rules remove to -inf, in place.

    Args:
        scores: float64 scores over the catalogue (item_idx order), written in place.
        rules: Validated rules.
        catalogue: The served items (id map and metadata).
        popular_order: Items most popular first, for ``exclude_top_popular``; None when the run
            has no popularity ranking.
        warnings: Appended to: ids not in the catalogue, filter values no item has.

    Returns:
        What was applied, in words, and the forced items with ids of the map's type.

    Raises:
        InputError: On an id of the wrong type, an unknown metadata column, a non-number for a
            numeric column, filters without metadata, or exclude_top_popular without a ranking.
    """
    item_map = catalogue.item_map
    applied, forced = [], []
    if rules.exclude_items:
        raws = [coerce_id(item, item_map, "item") for item in rules.exclude_items]
        idx = item_map.to_idx(raws)
        unknown = [raw for raw, i in zip(raws, idx, strict=True) if i < 0]
        if unknown:
            warnings.append(
                f"exclude_items: {plain(unknown)} are not in the catalogue (nothing to drop)"
            )
        scores[idx[idx >= 0]] = -np.inf
        applied.append(f"exclude_items: {len(raws)} item(s)")
    if rules.exclude_top_popular:
        if popular_order is None:
            raise InputError(
                "rules.exclude_top_popular needs the run's popularity ranking, which this run "
                "does not have; drop the rule or serve a run trained with the popularity family"
            )
        scores[popular_order[: rules.exclude_top_popular]] = -np.inf
        applied.append(f"exclude_top_popular: {rules.exclude_top_popular}")
    for column, allowed in rules.filters.items():
        scores[~filter_mask(catalogue, column, allowed, warnings)] = -np.inf
        applied.append(f"filter {column} in {plain(list(allowed))}")
    if rules.include_items:
        raws = [coerce_id(f.item_id, item_map, "item") for f in rules.include_items]
        forced = [
            ForcedItem(item_id=raw, position=f.position)
            for f, raw in zip(rules.include_items, raws, strict=True)
        ]
        idx = item_map.to_idx(raws)
        scores[idx[idx >= 0]] = -np.inf  # a forced item is shown once, at its position
        applied.append(
            "include_items: " + ", ".join(f"{plain(f.item_id)}@{f.position}" for f in forced)
        )
    return applied, forced


def filter_mask(
    catalogue: ItemCatalogue, column: str, allowed: tuple, warnings: list[str]
) -> np.ndarray:
    """Items (by idx) whose metadata value, or one of its list values, is allowed.

    Raises:
        InputError: Without metadata, on an unknown column, or a non-number for a numeric one.
    """
    metadata = catalogue.metadata
    if metadata is None:
        raise InputError("this model has no item metadata, so rules.filters cannot be used")
    if column not in metadata.columns:
        raise InputError(
            f"rules.filters: unknown metadata column {column!r}; available columns: "
            f"{', '.join(map(str, metadata.columns))}"
        )
    if column in catalogue.list_values:
        exploded = catalogue.list_values[column]  # item position -> casefolded value
        present = set(exploded)
        mask = np.zeros(len(catalogue.item_map), dtype=bool)
        mask[exploded.index[exploded.isin({norm(v) for v in allowed}).to_numpy()]] = True
        missing = [v for v in allowed if norm(v) not in present]
        examples = sorted(present)[:20]
    else:
        values = catalogue.column(column)
        mask, missing = _scalar_mask(values, column, allowed)
        examples = plain(metadata[column].dropna().unique()[:5].tolist())
    if missing:
        warnings.append(
            f"filter {column}: no item has the value(s) {plain(list(missing))}"
            + (f" (values look like {examples})" if examples else "")
        )
    return mask


def _scalar_mask(values: pd.Series, column: str, allowed: tuple) -> tuple[np.ndarray, list]:
    """Mask and missing values of a filter on a column holding one value per item."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = []
        for v in allowed:
            try:
                numbers.append(float(v))
            except (TypeError, ValueError):
                raise InputError(
                    f"rules.filters.{column}: {v!r} is not a number, but {column} is numeric"
                ) from None
        missing = [v for v, n in zip(allowed, numbers, strict=True) if not (values == n).any()]
        return values.isin(numbers).to_numpy(), missing
    normed = values.map(lambda v: norm(v) if isinstance(v, str) else v)
    missing = [v for v in allowed if not (normed == norm(v)).any()]
    return normed.isin({norm(v) for v in allowed}).to_numpy(), missing
