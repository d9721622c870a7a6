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

:meth:`BusinessRules.from_dict` only checks the structure; which item ids and metadata columns
exist is checked by :class:`reclab.serving.RecommendationService`, which knows the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

from reclab.errors import InputError

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
        exclude_top_popular: Drop the N most popular train items (distinct users); 0 keeps all.
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
