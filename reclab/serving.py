"""Use the winner: recommendations on raw ids from a TrainFlow run, for Python, CLI and HTTP.

``TrainFlow`` versions the best model of a run (``best_model``) and the best candidate of every
family (``best_model_per_family``). :class:`RecommendationService` turns them into JSON-ready
answers:

* a known user gets the winner's top-k, their train items left out;
* an unknown user gets the popularity list (distinct train users per item) and
  ``cold_start: true``;
* a new user who names some items is folded in by the winner when it can, else by the best
  family on validation that can (the leaderboard order of ``best_model_per_family``), else gets
  the popularity list without those items and a warning;
* similar items and "because you watched" explanations come from the families that have them.

Business rules (:mod:`reclab.rules`) are applied after scoring the whole catalogue, so filters
still fill k when enough items pass. Every response is plain Python (``json.dumps`` works),
and every client mistake raises :class:`reclab.errors.InputError` with a message saying how to
fix it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from reclab.bundle import ModelBundle
from reclab.errors import InputError
from reclab.id_maps import IdMap
from reclab.models.base import Recommender
from reclab.models.capabilities import Explains, FoldIn, ItemSimilarity
from reclab.rules import BusinessRules, ForcedItem

logger = logging.getLogger(__name__)

EXPLAIN_K = 3  # history items shown per recommended item
MAX_BATCH_USERS = 1000  # users per recommend_many call
MAX_HISTORY = 10_000  # items per recommend_for_items call


@dataclass
class LoadedRun:
    """What serving needs from one TrainFlow run.

    Attributes:
        best: The winner (``best_model`` artifact).
        per_family: Best candidate per family, best validation first (None for runs that
            predate the artifact).
        pathspec: The run, e.g. ``"TrainFlow/1712"``.
    """

    best: ModelBundle
    per_family: dict[str, ModelBundle] | None
    pathspec: str


def load_run(
    run_id: str | None = None, tag: str | None = None, flow_name: str = "TrainFlow"
) -> LoadedRun:
    """Load the winner of a TrainFlow run from the Metaflow client in one call.

    Runs of every user are visible (the client's namespace is set to global), since the
    service usually runs as another user than the one who trained.

    Args:
        run_id: ``"123"`` or ``"TrainFlow/123"``; None picks the latest successful run.
        tag: Pick the latest successful run with this tag (e.g. ``"best_model:sar"``).
        flow_name: The flow whose runs are searched.

    Returns:
        The winner, the per-family bests and the run's pathspec.

    Raises:
        InputError: If both run_id and tag are given, no such (successful) run exists, or the
            run has no ``best_model`` artifact.
    """
    from metaflow import Flow, Run, namespace
    from metaflow.exception import MetaflowNotFound

    namespace(None)
    if run_id is not None and tag is not None:
        raise InputError("give either a run id or a tag, not both")
    try:
        if run_id is not None:
            run_id = str(run_id).strip()
            if "/" in run_id:
                flow_part, _, id_part = run_id.partition("/")
                if flow_part != flow_name or not id_part or "/" in id_part:
                    raise InputError(
                        f"run id {run_id!r} is not a run of {flow_name}; use '<id>' or "
                        f"'{flow_name}/<id>'"
                    )
                run_id = id_part
            run = Run(f"{flow_name}/{run_id}")
            if not run.successful:
                raise InputError(
                    f"run {run.pathspec} did not finish successfully; pick a successful run "
                    f"(or leave the run id out for the latest successful one)"
                )
        elif tag is not None:
            run = next((r for r in Flow(flow_name).runs(str(tag)) if r.successful), None)
            if run is None:
                raise InputError(
                    f"no successful {flow_name} run has the tag {tag!r}; tags look like "
                    "'best_model:sar' (see `info` of a run or the Metaflow UI)"
                )
        else:
            run = Flow(flow_name).latest_successful_run
            if run is None:
                raise InputError(
                    f"{flow_name} has no successful run in this Metaflow datastore; train first "
                    "(python flows/train.py run) or check METAFLOW_DATASTORE_SYSROOT_LOCAL"
                )
    except MetaflowNotFound as error:
        what = f"run {flow_name}/{run_id}" if run_id is not None else f"flow {flow_name}"
        raise InputError(
            f"{what} was not found in the Metaflow datastore ({error}); check the id and the "
            "METAFLOW_* settings"
        ) from None
    if "best_model" not in run.data:
        raise InputError(
            f"run {run.pathspec} has no best_model artifact (it is not a finished training run); "
            "pick another run"
        )
    per_family = run.data.best_model_per_family if "best_model_per_family" in run.data else None
    return LoadedRun(best=run.data.best_model, per_family=per_family, pathspec=run.pathspec)


class RecommendationService:
    """Recommendations, fold-in, similar items and explanations on raw ids, as JSON-ready dicts.

    Args:
        best: The winner of a run.
        per_family: Best candidate per family in leaderboard order (best validation first);
            the families that can fold in a new user or find similar items when the winner
            cannot. None serves the winner only.
        run_pathspec: The run the bundles come from, reported by :meth:`info`.
    """

    MAX_K: int = 100

    def __init__(
        self,
        best: ModelBundle,
        per_family: dict[str, ModelBundle] | None = None,
        run_pathspec: str | None = None,
    ) -> None:
        self.best = best
        self.run_pathspec = run_pathspec
        self._item_map: IdMap = best.item_map
        self._user_map: IdMap = best.user_map
        self._model: Recommender = best.model
        self._metadata: pd.DataFrame | None = best.item_metadata
        self._n_items = len(self._item_map)
        # Candidates for fold-in and similar items: the winner first, then the leaderboard order.
        self._bundles: list[ModelBundle] = [best]
        for family, bundle in (per_family or {}).items():
            if family == best.family:
                continue
            if not np.array_equal(bundle.item_map.raw_ids, self._item_map.raw_ids):
                logger.warning("%s was trained on another item catalogue; not used", family)
                continue
            self._bundles.append(bundle)
        seen = self._model._seen.tocsr()
        # Popularity = distinct train users per item; ties go to the smaller raw item id.
        self._popularity = np.bincount(seen.indices, minlength=self._n_items).astype(np.float64)
        self._raw_rank = np.empty(self._n_items, dtype=np.int64)
        self._raw_rank[np.argsort(self._item_map.raw_ids, kind="stable")] = np.arange(self._n_items)
        self._popular_order = np.lexsort((self._raw_rank, -self._popularity))
        self._list_columns: dict[str, list[set]] = {}

    @classmethod
    def from_run(
        cls, run_id: str | None = None, tag: str | None = None, flow_name: str = "TrainFlow"
    ) -> RecommendationService:
        """Serve the winner of a TrainFlow run (see :func:`load_run` for how it is picked).

        Args:
            run_id: ``"123"`` or ``"TrainFlow/123"``; None: the latest successful run.
            tag: Latest successful run with this tag.
            flow_name: The flow name.

        Returns:
            The service.

        Raises:
            InputError: If no such run exists or it has no best_model.
        """
        loaded = load_run(run_id=run_id, tag=tag, flow_name=flow_name)
        return cls(loaded.best, loaded.per_family, loaded.pathspec)

    # ------------------------------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------------------------------

    def info(self) -> dict:
        """What is served: the winner, its run and size, and which family serves what.

        Returns:
            ``family``, ``params``, ``run``, ``metrics``, ``n_users``, ``n_items``,
            ``families`` (the bundles available) and ``capabilities``: ``known_users`` (the
            winner), ``cold_start`` (``"popularity"``), ``fold_in`` and ``similar_items``
            (the serving family or None), ``explain_known_users`` / ``explain_fold_in`` (bool).
        """
        fold = self._capable(FoldIn)
        similar = self._capable(ItemSimilarity)
        return {
            "family": self.best.family,
            "params": _plain(self.best.params),
            "run": self.run_pathspec,
            "metrics": _plain(self.best.metrics),
            "n_users": len(self._user_map),
            "n_items": self._n_items,
            "families": [bundle.family for bundle in self._bundles],
            "capabilities": {
                "known_users": self.best.family,
                "cold_start": "popularity",
                "fold_in": fold.family if fold else None,
                "similar_items": similar.family if similar else None,
                "explain_known_users": isinstance(self._model, Explains),
                "explain_fold_in": bool(fold and isinstance(fold.model, Explains)),
            },
        }

    def recommend(
        self, user_id: Any, k: int = 10, rules: Any = None, explain: bool = False
    ) -> dict:
        """Top-k items for one raw user id.

        A known user gets the winner's scores (train items left out); an unknown user gets the
        popularity list with ``cold_start: true``.

        Args:
            user_id: Raw user id (int or string; coerced to the id map's type).
            k: Number of items, 1..MAX_K.
            rules: None, a rules dict or :class:`BusinessRules`.
            explain: Add "because" items (history items that contributed most) where the
                serving family supports it; otherwise a warning.

        Returns:
            The response dict (see the module docstring and docs/serving.md).

        Raises:
            InputError: On a bad id, k or rules.
        """
        k = self._check_k(k)
        rules = BusinessRules.from_dict(rules)
        raw = _coerce_id(user_id, self._user_map, "user")
        return self._recommend_one(raw, k, rules, explain)

    def recommend_many(
        self, user_ids: list, k: int = 10, rules: Any = None, explain: bool = False
    ) -> list[dict]:
        """:meth:`recommend` for several users; every input is checked before any scoring.

        Args:
            user_ids: Raw user ids (at most 1000).
            k: Number of items per user, 1..MAX_K.
            rules: Rules applied to every user.
            explain: As in :meth:`recommend`.

        Returns:
            One response dict per user, in the given order.

        Raises:
            InputError: If user_ids is not a list, is too long, or has a bad id; bad k or rules.
        """
        if not isinstance(user_ids, list | tuple):
            raise InputError(f"user_ids must be a list of raw user ids; got {type(user_ids)}")
        if len(user_ids) > MAX_BATCH_USERS:
            raise InputError(
                f"at most {MAX_BATCH_USERS} users per call, got {len(user_ids)}; split the list"
            )
        k = self._check_k(k)
        rules = BusinessRules.from_dict(rules)
        raws = [_coerce_id(user_id, self._user_map, "user") for user_id in user_ids]
        return [self._recommend_one(raw, k, rules, explain) for raw in raws]

    def recommend_for_items(
        self,
        items: list,
        ratings: list | None = None,
        k: int = 10,
        rules: Any = None,
        explain: bool = False,
    ) -> dict:
        """Top-k items for a new user described by the items they liked (fold-in).

        Unknown item ids are ignored with a warning; duplicates add up their ratings. The
        given items are never recommended back.

        Args:
            items: Raw item ids of the user's history (at most 10,000).
            ratings: Optional positive weight (rating) per item, same length as items.
            k: Number of items, 1..MAX_K.
            rules: None, a rules dict or :class:`BusinessRules`.
            explain: Add "because" items where the fold-in family supports it.

        Returns:
            The response dict with ``user_id: None``; ``strategy`` is ``"fold_in"``,
            ``"cold_start_popularity"`` (empty history) or ``"fallback_popularity"`` (no
            known item, or no family can fold in).

        Raises:
            InputError: On a bad item id, ratings, k or rules.
        """
        k = self._check_k(k)
        rules = BusinessRules.from_dict(rules)
        if not isinstance(items, list | tuple):
            raise InputError(f"items must be a list of raw item ids; got {type(items).__name__}")
        if len(items) > MAX_HISTORY:
            raise InputError(f"at most {MAX_HISTORY} items per history, got {len(items)}")
        if ratings is not None:
            if not isinstance(ratings, list | tuple) or len(ratings) != len(items):
                raise InputError(
                    f"ratings must be a list with one number per item ({len(items)} items); "
                    f"got {ratings!r}"
                )
            for rating in ratings:
                if (
                    isinstance(rating, bool)
                    or not isinstance(rating, Real)
                    or not math.isfinite(rating)
                    or rating <= 0
                ):
                    raise InputError(
                        f"ratings must be positive numbers (e.g. 1-5 stars); got {rating!r}"
                    )
        raws = [_coerce_id(item, self._item_map, "item") for item in items]
        weights = np.asarray(ratings if ratings is not None else [1.0] * len(raws), dtype=float)
        idx = self._item_map.to_idx(raws) if raws else np.empty(0, dtype=np.int64)
        warnings: list[str] = []
        unknown = [raw for raw, i in zip(raws, idx, strict=True) if i < 0]
        if unknown:
            warnings.append(
                f"item id(s) {_plain(unknown)} are not in the model's catalogue and were ignored"
            )
        known = idx >= 0
        # duplicates add up, as repeated interactions do in train
        history, inverse = np.unique(idx[known], return_inverse=True)
        history_weights = np.bincount(inverse, weights=weights[known], minlength=len(history))
        response: dict[str, Any] = {"user_id": None}
        if not raws:
            scores, tiebreak = self._popularity.copy(), self._raw_rank
            strategy, served_by, model = "cold_start_popularity", "popularity", None
        elif not len(history):
            warnings.append("none of the given items is known: serving the popularity list")
            scores, tiebreak = self._popularity.copy(), self._raw_rank
            strategy, served_by, model = "fallback_popularity", "popularity", None
        else:
            bundle = self._capable(FoldIn)
            if bundle is None:
                warnings.append(
                    f"no family of this run can fold in a new user ({self._families()}): "
                    "serving the popularity list without the given items"
                )
                scores, tiebreak = self._popularity.copy(), self._raw_rank
                strategy, served_by, model = "fallback_popularity", "popularity", None
            else:
                model = bundle.model
                scores = model.fold_in_scores(history, history_weights).astype(np.float64)
                tiebreak, strategy, served_by = None, "fold_in", bundle.family
            scores[history] = -np.inf
        explain_with = None
        if explain:
            if model is not None and isinstance(model, Explains):
                # SAR without use_weights scores every history item as 1; explain it the same way
                used = history_weights if model.params.get("use_weights", True) else None
                explain_with = (model, history, used)
            else:
                warnings.append(f"explanations are not available for {served_by}")
        response.update(
            self._respond(scores, k, rules, warnings, strategy, served_by, tiebreak, explain_with)
        )
        response["cold_start"] = True  # the user is not in the training data
        return response

    def similar_items(self, item_id: Any, k: int = 10, rules: Any = None) -> dict:
        """The k items most similar to one item, by the winner or the best family that can.

        Args:
            item_id: Raw item id in the model's catalogue.
            k: Number of items, 1..MAX_K.
            rules: None, a rules dict or :class:`BusinessRules`.

        Returns:
            The response dict with the query's ``item_id``; ``strategy`` is ``"model"``, or
            ``"fallback_popularity"`` (with a warning) when no family has item similarity.

        Raises:
            InputError: On an unknown or malformed item id, bad k or rules.
        """
        k = self._check_k(k)
        rules = BusinessRules.from_dict(rules)
        raw = _coerce_id(item_id, self._item_map, "item")
        idx = int(self._item_map.to_idx([raw])[0])
        if idx < 0:
            raise InputError(
                f"item {raw!r} is not in the model's catalogue ({self._n_items} items, e.g. "
                f"{_plain(self._item_map.raw_ids[:3].tolist())}); similar items need a known item"
            )
        warnings: list[str] = []
        bundle = self._capable(ItemSimilarity)
        if bundle is None:
            warnings.append(
                f"no family of this run has item similarity ({self._families()}): "
                "serving the popularity list"
            )
            scores, tiebreak = self._popularity.copy(), self._raw_rank
            scores[idx] = -np.inf
            strategy, served_by = "fallback_popularity", "popularity"
        else:
            scores = bundle.model.item_similarity_scores(idx).astype(np.float64)
            tiebreak, strategy, served_by = None, "model", bundle.family
        response: dict[str, Any] = {"item_id": _plain(raw)}
        response.update(self._respond(scores, k, rules, warnings, strategy, served_by, tiebreak))
        response["cold_start"] = False
        return response

    # ------------------------------------------------------------------------------------------
    # Internals
    # ------------------------------------------------------------------------------------------

    def _recommend_one(self, raw: Any, k: int, rules: BusinessRules, explain: bool) -> dict:
        idx = int(self._user_map.to_idx([raw])[0])
        warnings: list[str] = []
        explain_with = None
        if idx >= 0:
            scores = self._model.scores(np.array([idx]))[0].astype(np.float64)
            tiebreak, strategy, served_by = None, "model", self.best.family
            if explain and isinstance(self._model, Explains):
                history, weights = self._model.user_history(idx)
                explain_with = (self._model, history, weights)
            elif explain:
                warnings.append(f"explanations are not available for {served_by}")
        else:
            scores, tiebreak = self._popularity.copy(), self._raw_rank
            strategy, served_by = "cold_start_popularity", "popularity"
            if explain:
                warnings.append("explanations are not available for the cold-start list")
        response: dict[str, Any] = {"user_id": _plain(raw)}
        response.update(
            self._respond(scores, k, rules, warnings, strategy, served_by, tiebreak, explain_with)
        )
        response["cold_start"] = idx < 0
        return response

    def _respond(
        self,
        scores: np.ndarray,
        k: int,
        rules: BusinessRules,
        warnings: list[str],
        strategy: str,
        served_by: str,
        tiebreak: np.ndarray | None,
        explain_with: tuple | None = None,
    ) -> dict:
        """Apply the rules to a full score vector, rank, pin forced items, build the items."""
        scores = np.where(np.isnan(scores), -np.inf, scores)
        available = int(np.isfinite(scores).sum())
        applied, forced = self._apply_rules(scores, rules, warnings)
        candidates = np.flatnonzero(np.isfinite(scores))
        # best first; ties by item index (the models' own rule) or raw id (popularity)
        key = candidates if tiebreak is None else tiebreak[candidates]
        organic = candidates[np.lexsort((key, -scores[candidates]))]
        entries: list[dict] = []
        n_organic = 0
        while len(entries) < k and (n_organic < len(organic) or forced):
            rank = len(entries) + 1
            if forced and (forced[0].position == rank or n_organic >= len(organic)):
                item = forced.pop(0)
                if item.position != rank:
                    warnings.append(
                        f"forced item {_plain(item.item_id)} moved from position "
                        f"{item.position} to {rank}: fewer items came before it"
                    )
                entries.append({"raw": item.item_id, "idx": None, "score": None, "forced": True})
            else:
                i = int(organic[n_organic])
                n_organic += 1
                entries.append({"raw": None, "idx": i, "score": float(scores[i]), "forced": False})
        for item in forced:
            warnings.append(
                f"forced item {_plain(item.item_id)} at position {item.position} is beyond "
                f"k={k} and was not shown"
            )
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
        organic_idx = np.array([e["idx"] for e in entries if not e["forced"]], dtype=np.int64)
        organic_raw = self._item_map.to_raw(organic_idx)
        because = None
        if explain_with is not None:
            model, history, weights = explain_with
            if weights is None:
                weights = np.ones(len(history), dtype=np.float32)
            because = iter(model.explain(history, weights, organic_idx, EXPLAIN_K))
        raw_iter = iter(organic_raw)
        items = []
        for rank, entry in enumerate(entries, start=1):
            raw = entry["raw"] if entry["forced"] else next(raw_iter)
            item = {"rank": rank, "item_id": _plain(raw), "score": entry["score"]}
            item.update(self._metadata_of(raw))
            item["forced"] = entry["forced"]
            if because is not None and not entry["forced"]:
                item["because"] = [
                    {
                        "item_id": _plain(self._item_map.raw_ids[h]),
                        "title": self._metadata_of(self._item_map.raw_ids[h]).get("title"),
                        "weight": float(w),
                    }
                    for h, w in next(because)
                ]
            items.append(item)
        return {
            "strategy": strategy,
            "cold_start": None,  # placeholder keeps the documented key order; caller sets it
            "served_by": served_by,
            "k": k,
            "items": items,
            "rules_applied": applied,
            "warnings": warnings,
        }

    def _apply_rules(
        self, scores: np.ndarray, rules: BusinessRules, warnings: list[str]
    ) -> tuple[list[str], list[ForcedItem]]:
        """Set items the rules remove to -inf in place.

        Returns:
            What was applied, in words, and the forced items with ids of the map's type.
        """
        applied, forced = [], []
        if rules.exclude_items:
            raws = [_coerce_id(item, self._item_map, "item") for item in rules.exclude_items]
            idx = self._item_map.to_idx(raws)
            unknown = [raw for raw, i in zip(raws, idx, strict=True) if i < 0]
            if unknown:
                warnings.append(
                    f"exclude_items: {_plain(unknown)} are not in the catalogue (nothing to drop)"
                )
            scores[idx[idx >= 0]] = -np.inf
            applied.append(f"exclude_items: {len(raws)} item(s)")
        if rules.exclude_top_popular:
            scores[self._popular_order[: rules.exclude_top_popular]] = -np.inf
            applied.append(f"exclude_top_popular: {rules.exclude_top_popular}")
        for column, allowed in rules.filters.items():
            scores[~self._filter_mask(column, allowed, warnings)] = -np.inf
            applied.append(f"filter {column} in {_plain(list(allowed))}")
        if rules.include_items:
            raws = [_coerce_id(f.item_id, self._item_map, "item") for f in rules.include_items]
            forced = [
                ForcedItem(item_id=raw, position=f.position)
                for f, raw in zip(rules.include_items, raws, strict=True)
            ]
            idx = self._item_map.to_idx(raws)
            scores[idx[idx >= 0]] = -np.inf  # a forced item is shown once, at its position
            applied.append(
                "include_items: " + ", ".join(f"{_plain(f.item_id)}@{f.position}" for f in forced)
            )
        return applied, forced

    def _filter_mask(self, column: str, allowed: tuple, warnings: list[str]) -> np.ndarray:
        """Items (by idx) whose metadata value, or one of its list values, is allowed."""
        if self._metadata is None:
            raise InputError("this model has no item metadata, so rules.filters cannot be used")
        if column not in self._metadata.columns:
            raise InputError(
                f"rules.filters: unknown metadata column {column!r}; available columns: "
                f"{', '.join(map(str, self._metadata.columns))}"
            )
        values = self._metadata[column].reindex(pd.Index(self._item_map.raw_ids))
        if column not in self._list_columns and _is_list_column(values):
            self._list_columns[column] = [
                {_norm(v) for v in value} if isinstance(value, list | tuple | np.ndarray) else set()
                for value in values
            ]
        if column in self._list_columns:
            wanted = {_norm(v) for v in allowed}
            mask = np.array([bool(s & wanted) for s in self._list_columns[column]])
            present = set().union(*self._list_columns[column])
            missing = [v for v in allowed if _norm(v) not in present]
        elif pd.api.types.is_numeric_dtype(values.dtype):
            numbers = []
            for v in allowed:
                try:
                    numbers.append(float(v))
                except (TypeError, ValueError):
                    raise InputError(
                        f"rules.filters.{column}: {v!r} is not a number, but {column} is numeric"
                    ) from None
            mask = values.isin(numbers).to_numpy()
            missing = [v for v, n in zip(allowed, numbers, strict=True) if not (values == n).any()]
        else:
            normed = values.map(lambda v: _norm(v) if isinstance(v, str) else v)
            mask = normed.isin({_norm(v) for v in allowed}).to_numpy()
            missing = [v for v in allowed if not (normed == _norm(v)).any()]
        if missing:
            examples = self._examples(column)
            warnings.append(
                f"filter {column}: no item has the value(s) {_plain(list(missing))}"
                + (f" (values look like {examples})" if examples else "")
            )
        return mask

    def _examples(self, column: str) -> list:
        if column in self._list_columns:
            return sorted(set().union(*self._list_columns[column]))[:20]
        return _plain(self._metadata[column].dropna().unique()[:5].tolist())

    def _metadata_of(self, raw: Any) -> dict:
        """The item's metadata columns as plain values ({} when unknown)."""
        if self._metadata is None or raw not in self._metadata.index:
            return {"title": None} if self._metadata is not None else {}
        return {str(c): _plain(v) for c, v in self._metadata.loc[raw].items()}

    def _capable(self, capability: type) -> ModelBundle | None:
        """The first bundle (winner, then leaderboard order) whose family has the capability."""
        from reclab.models.registry import FAMILIES

        for bundle in self._bundles:
            # the class answers without deserialising the model
            if issubclass(FAMILIES[bundle.family].load_class(), capability):
                return bundle
        return None

    def _families(self) -> str:
        return "families: " + ", ".join(bundle.family for bundle in self._bundles)

    def _check_k(self, k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= k <= self.MAX_K:
            raise InputError(f"k must be an integer from 1 to {self.MAX_K}; got {k!r}")
        return int(k)


def _coerce_id(value: Any, id_map: IdMap, what: str) -> Any:
    """A raw id from JSON or the command line, converted to the id map's type.

    Raises:
        InputError: If the value cannot be an id of this map (e.g. "abc" for integer ids).
    """
    kind = id_map.raw_ids.dtype.kind
    if isinstance(value, bool) or value is None:
        raise InputError(f"{what} id {value!r} is not an id; use an integer or a string")
    if kind in "iu":
        if isinstance(value, Integral):
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise InputError(
            f"{what} id {value!r} is not an integer; this model's {what} ids are integers "
            f"(e.g. {_plain(id_map.raw_ids[:3].tolist())})"
        )
    if isinstance(value, Integral | str):
        return str(value)
    raise InputError(f"{what} id {value!r} is not an id; use an integer or a string")


def _is_list_column(values: pd.Series) -> bool:
    return values.map(lambda v: isinstance(v, list | tuple | np.ndarray)).any()


def _norm(value: Any) -> Any:
    """Strings compare case-insensitively ("sci-fi" matches "Sci-Fi")."""
    return value.casefold() if isinstance(value, str) else value


def _plain(value: Any) -> Any:
    """Plain Python for json.dumps: numpy scalars and arrays, NaN -> None, dicts and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray | pd.Index):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
