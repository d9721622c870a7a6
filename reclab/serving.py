"""Use the winner: recommendations on raw ids from a TrainFlow run, for Python, CLI and HTTP.

``TrainFlow`` versions the best model of a run (``best_model``) and the best candidate of every
family (``best_model_per_family``). :class:`RecommendationService` turns them into JSON-ready
answers:

* a known user gets the winner's top-k, their train items left out;
* an unknown user gets the popularity list (train interactions per item: the ranking of the
  run's ``popularity`` baseline) and ``cold_start: true``;
* a new user who names some items is folded in by the winner when it can, else by the best
  family on validation that can (the leaderboard order of ``best_model_per_family``), else gets
  the popularity list without those items and a warning;
* similar items and "because you watched" explanations come from the families that have them.

The parts: :mod:`reclab.loading` finds the run's bundles, :mod:`reclab.routing` picks the bundle
for each capability, :mod:`reclab.popularity` holds the popularity ranking, :mod:`reclab.rules`
applies the business rules and :mod:`reclab.responses` ranks and shapes the answer. Rules are
applied after scoring the whole catalogue, so filters still fill k when enough items pass.
Every response is plain Python (``json.dumps`` works), and every client mistake raises
:class:`reclab.errors.InputError` with a message saying how to fix it. Everything a request
reads is built when the service is made, so waitress's threads may share one service.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

from reclab.bundle import ModelBundle
from reclab.errors import InputError
from reclab.id_maps import IdMap, coerce_id
from reclab.loading import LoadedRun, load_run
from reclab.plain import plain
from reclab.popularity import run_popularity
from reclab.responses import ItemCatalogue, Scored, respond
from reclab.routing import CapabilityRouter
from reclab.rules import BusinessRules

__all__ = ["LoadedRun", "RecommendationService", "load_run"]

MAX_BATCH_USERS = 1000  # users per recommend_many call
MAX_HISTORY = 10_000  # items per recommend_for_items call
NO_POPULARITY = (
    "{run} has no popularity ranking for unknown users (no popularity candidate and bundles "
    "without item_popularity); serve a run trained with the popularity family"
)


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
        self._router = CapabilityRouter(best, per_family)
        self._catalogue = ItemCatalogue(best.item_map, best.item_metadata)
        self._user_map: IdMap = best.user_map
        self._model = best.model  # the winner answers every known user: deserialised now
        self._popularity = run_popularity(
            [b for b in self._router.bundles if self._router.same_catalogue(b)],
            best.item_map,
            run_pathspec,
        )

    @classmethod
    def from_run(
        cls, run_id: str | None = None, tag: str | None = None, flow_name: str = "TrainFlow"
    ) -> RecommendationService:
        """Serve the winner of a TrainFlow run (see :func:`load_run` for how it is picked).

        Args:
            run_id: ``"123"`` or ``"TrainFlow/123"``; None: the production run (tagged
                ``production``), else the latest successful run.
            tag: Latest successful run with this tag.
            flow_name: The flow name.

        Returns:
            The service.

        Raises:
            InputError: If no such run exists or it has no best_model.
        """
        loaded = load_run(run_id=run_id, tag=tag, flow_name=flow_name)
        return cls(loaded.best, loaded.per_family, loaded.pathspec)

    def info(self) -> dict:
        """What is served: the winner, its run and size, and which family serves what.

        Returns:
            ``family``, ``params``, ``run``, ``trained_on`` (``train+valid+test`` for a refit;
            ``metrics`` are then those of the evaluated fit), ``metrics``, ``n_users``, ``n_items``,
            ``families`` (the bundles available) and ``capabilities``: ``known_users`` (the
            winner), ``cold_start`` (``"popularity"``, None without a ranking), ``fold_in`` and
            ``similar_items`` (the serving family or None), ``explain_known_users`` /
            ``explain_fold_in`` (bool).
        """
        fold, similar = self._router.fold_in, self._router.similar
        return {
            "family": self.best.family,
            "params": plain(self.best.params),
            "run": self.run_pathspec,
            "trained_on": self.best.trained_on,
            "metrics": plain(self.best.metrics),
            "n_users": len(self._user_map),
            "n_items": len(self._catalogue.item_map),
            "families": [bundle.family for bundle in self._router.bundles],
            "capabilities": {
                "known_users": self.best.family,
                "cold_start": "popularity" if self._popularity is not None else None,
                "fold_in": fold.family if fold else None,
                "similar_items": similar.family if similar else None,
                "explain_known_users": self._router.explains(self.best),
                "explain_fold_in": self._router.explains(fold),
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
        k, rules = _check_k(k, self.MAX_K), BusinessRules.from_dict(rules)
        return self._recommend_one(coerce_id(user_id, self._user_map, "user"), k, rules, explain)

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
        k, rules = _check_k(k, self.MAX_K), BusinessRules.from_dict(rules)
        raws = [coerce_id(user_id, self._user_map, "user") for user_id in user_ids]
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
        k, rules = _check_k(k, self.MAX_K), BusinessRules.from_dict(rules)
        raws, history, weights, warnings = _history(items, ratings, self._catalogue.item_map)
        scored = self._fold_in(raws, history, weights, warnings)
        if explain:
            _explain_fold_in(self._router, scored, history, weights, warnings)
        return self._answer({"user_id": None}, scored, k, rules, warnings, cold=True)

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
        k, rules = _check_k(k, self.MAX_K), BusinessRules.from_dict(rules)
        raw, idx = _known_item(item_id, self._catalogue.item_map)
        warnings: list[str] = []
        bundle = self._router.similar
        if bundle is None:
            warnings.append(
                f"no family of this run has item similarity ({self._router.families()}): "
                "serving the popularity list"
            )
            scored = self._popular("fallback_popularity")
            scored.scores[idx] = -np.inf
        elif not self._router.knows(bundle, idx):
            warnings.append(
                f"item {plain(raw)!r} is newer than the data {bundle.family} (the family with "
                "item similarity) was fitted on: serving the popularity list"
            )
            scored = self._popular("fallback_popularity")
            scored.scores[idx] = -np.inf
        else:
            scores = self._router.model(bundle).item_similarity_scores(idx).astype(np.float64)
            scored = Scored(scores, "model", bundle.family)
        return self._answer({"item_id": plain(raw)}, scored, k, rules, warnings, cold=False)

    def _recommend_one(self, raw: Any, k: int, rules: BusinessRules, explain: bool) -> dict:
        idx = int(self._user_map.to_idx([raw])[0])
        warnings: list[str] = []
        if idx >= 0:
            scores = self._model.scores(np.array([idx]))[0].astype(np.float64)
            scored = Scored(scores, "model", self.best.family)
            if explain and self._router.explains(self.best):
                history, weights = self._model.user_history(idx)
                scored.explain_with = (self._model, history, weights)
            elif explain:
                warnings.append(f"explanations are not available for {scored.served_by}")
        else:
            scored = self._popular("cold_start_popularity")
            if explain:
                warnings.append("explanations are not available for the cold-start list")
        head = {"user_id": plain(raw)}
        return self._answer(head, scored, k, rules, warnings, cold=idx < 0)

    def _fold_in(
        self, raws: list, history: np.ndarray, weights: np.ndarray, warnings: list[str]
    ) -> Scored:
        """A new user's scores: the fold-in family's, else popularity without the history."""
        if not raws:
            return self._popular("cold_start_popularity")
        if not len(history):
            warnings.append("none of the given items is known: serving the popularity list")
            scored = self._popular("fallback_popularity")
        elif (bundle := self._router.fold_in) is None:
            warnings.append(
                f"no family of this run can fold in a new user ({self._router.families()}): "
                "serving the popularity list without the given items"
            )
            scored = self._popular("fallback_popularity")
        else:
            scores = self._router.model(bundle).fold_in_scores(history, weights)
            scores = scores.astype(np.float64)
            scored = Scored(scores, "fold_in", bundle.family)
        scored.scores[history] = -np.inf
        return scored

    def _popular(self, strategy: str) -> Scored:
        """The popularity list as scores (train interactions per item, ties by raw id)."""
        if self._popularity is None:
            raise InputError(NO_POPULARITY.format(run=self.run_pathspec or "this run"))
        ranking = self._popularity
        return Scored(ranking.counts.copy(), strategy, "popularity", tiebreak=ranking.tiebreak)

    def _answer(
        self, head: dict, scored: Scored, k: int, rules: BusinessRules, warnings: list, cold: bool
    ) -> dict:
        order = None if self._popularity is None else self._popularity.order
        response = {**head, **respond(scored, k, rules, warnings, self._catalogue, order)}
        response["cold_start"] = cold
        return response


def _explain_fold_in(
    router: CapabilityRouter,
    scored: Scored,
    history: np.ndarray,
    weights: np.ndarray,
    warnings: list[str],
) -> None:
    """Let the fold-in family explain its items, or warn that the serving family cannot."""
    bundle = router.fold_in if scored.strategy == "fold_in" else None
    if not router.explains(bundle):
        warnings.append(f"explanations are not available for {scored.served_by}")
        return
    model = router.model(bundle)
    # SAR without use_weights scores every history item as 1; explain it the same way
    used = weights if getattr(model, "use_weights", True) else None
    scored.explain_with = (model, history, used)


def _known_item(item_id: Any, item_map: IdMap) -> tuple[Any, int]:
    """The raw id (of the map's type) and item_idx of an item that must be in the catalogue."""
    raw = coerce_id(item_id, item_map, "item")
    idx = int(item_map.to_idx([raw])[0])
    if idx < 0:
        raise InputError(
            f"item {raw!r} is not in the model's catalogue ({len(item_map)} items, e.g. "
            f"{plain(item_map.raw_ids[:3].tolist())}); similar items need a known item"
        )
    return raw, idx


def _check_k(k: Any, max_k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= k <= max_k:
        raise InputError(f"k must be an integer from 1 to {max_k}; got {k!r}")
    return int(k)


def _history(
    items: Any, ratings: Any, item_map: IdMap
) -> tuple[list, np.ndarray, np.ndarray, list[str]]:
    """A new user's history: the raw ids given, the known items (distinct), their weights.

    Unknown ids are left out with a warning; a repeated item adds up its ratings, as repeated
    interactions do in train.

    Returns:
        (raw ids of the map's type, known item_idx, summed weight per known item, warnings).

    Raises:
        InputError: If items is not a list or too long, or ratings are not one positive
            number per item.
    """
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
    raws = [coerce_id(item, item_map, "item") for item in items]
    weights = np.asarray(ratings if ratings is not None else [1.0] * len(raws), dtype=float)
    idx = item_map.to_idx(raws) if raws else np.empty(0, dtype=np.int64)
    unknown = [raw for raw, i in zip(raws, idx, strict=True) if i < 0]
    warnings = []
    if unknown:
        warnings.append(
            f"item id(s) {plain(unknown)} are not in the model's catalogue and were ignored"
        )
    known = idx >= 0
    history, inverse = np.unique(idx[known], return_inverse=True)
    history_weights = np.bincount(inverse, weights=weights[known], minlength=len(history))
    return raws, history, history_weights, warnings
