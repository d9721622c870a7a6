"""Plain functions behind the flow's steps: plan candidates, train and evaluate one, rank them.

The flow only wires these together, so everything here is testable without Metaflow.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reclab.encoded import load_train, load_window
from reclab.errors import CandidatesFailedError, InputError, parse_json_object
from reclab.evaluation import METRIC_NAMES, EvaluationResult, metric_key
from reclab.evidence import interval_overlaps, selection_caveats
from reclab.grids import grid_for, load_grids
from reclab.id_maps import IdMap
from reclab.models.base import ValidationWindow, evaluate_window
from reclab.models.registry import FAMILIES, make_model, parse_model_list
from reclab.popularity import interaction_counts

logger = logging.getLogger(__name__)


def plan_candidates(
    families: list[str],
    grid_name: str = "quick",
    grid_file: str | Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Expand families into (family, hyper-parameter set) candidates, split by CPU / GPU step.

    Args:
        families: Registered family names, in the order the user gave them.
        grid_name: ``"quick"`` or ``"full"``.
        grid_file: The grid JSON file; None for ``reclab/grids.json``.
        overrides: Per-family parameters set on every candidate of that family (the flow's
            ``--als-engine`` and ``--spark-master``); families not selected are ignored.

    Returns:
        (cpu_candidates, gpu_candidates); each candidate is a dict with ``candidate_id``,
        ``family`` and ``params``. Candidate ids are unique and stable across runs.

    Raises:
        InputError: If the grid file or grid name is invalid.
    """
    grids = load_grids(grid_file)
    cpu, gpu = [], []
    for family in families:
        for number, params in enumerate(grid_for(grids, family, grid_name)):
            params = {**params, **(overrides or {}).get(family, {})}
            if family == "recency_blend" and params.get("base_family") in (overrides or {}):
                # A blend's base takes its family's overrides (an ALS base: --als-engine).
                base = params["base_family"]
                params["base_params"] = {**params.get("base_params", {}), **overrides[base]}
            candidate = {"candidate_id": f"{family}-{number}", "family": family, "params": params}
            (gpu if FAMILIES[family].uses_gpu else cpu).append(candidate)
    return cpu, gpu


def plan_checked_candidates(
    families: list[str],
    grid_name: str = "quick",
    grid_file: str | Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    seed: int = 42,
) -> tuple[list[dict], list[dict]]:
    """:func:`plan_candidates`, then build every candidate once so bad parameters fail here.

    The flow calls it in ``start`` (to fail fast) and again in ``plan_candidates`` (so a resume
    from there reads a fixed grid file).

    Raises:
        InputError: If the grid file is invalid or a candidate's parameters are (a NaN, an
            infinite or out-of-range number, a wrong type), naming the candidate and the file.
    """
    cpu, gpu = plan_candidates(families, grid_name, grid_file, overrides)
    where = f"grid file {grid_file}" if grid_file else "the default grid file reclab/grids.json"
    for candidate in cpu + gpu:
        # Constructors only check their arguments: a bad value fails here, not in a branch.
        try:
            make_model(candidate["family"], dict(candidate["params"]), seed=seed)
        except (TypeError, ValueError) as error:
            raise InputError(
                f"candidate {candidate['candidate_id']} ({grid_name} grid of {where}) has "
                f"invalid parameters {candidate['params']}: {error}; fix the value in the grid "
                "file."
            ) from error
    return cpu, gpu


def validate_metric(validation_metric: str, k: int) -> None:
    """Check ``--validation-metric`` names a metric the evaluator reports at ``k``.

    Raises:
        InputError: If the metric name is unknown or its cutoff is not ``k``.
    """
    known = [metric_key(name, k) for name in METRIC_NAMES]
    if validation_metric not in known:
        raise InputError(
            f"--validation-metric {validation_metric!r} is not reported with --k {k}; "
            f"choose one of: {', '.join(known)}"
        )


@dataclass
class CandidateResult:
    """One trained and evaluated candidate.

    Attributes:
        candidate: The candidate dict (``candidate_id``, ``family``, ``params``).
        valid: Evaluation on the validation window.
        test: Evaluation on the test window (never used for selection).
        fit_seconds: Wall time of ``fit``.
        recommend_seconds: Wall time of ``recommend`` for every warm user of the validation
            and test windows, once each, lists of ``max(k, 50)`` items (the leaderboard metrics
            and the curves of both windows come from those lists).
        model_payload: The fitted model, serialised with ``to_bytes``.
        curves: NDCG and recall at every k in ``CURVE_KS`` per window (columns ``window``,
            ``k``, ``ndcg``, ``recall``), for the report.
        diagnostics: ``test_popular_share_at_<k>``: share of the test recommendations that are
            among the top 1% most popular train items (popularity bias); ``train_rows``,
            ``train_rows_used`` and ``train_sample`` (see :func:`train_rows_columns`).
        elapsed_seconds: Wall time of the whole candidate in its branch (load, fit, evaluate,
            serialise); NaN until the branch's outcome is recorded (:func:`branch_outcome`).
        item_popularity: Train interactions per encoded item (the popularity baseline's
            counts), so every bundle carries the cold-start ranking the run evaluated.
    """

    candidate: dict
    valid: EvaluationResult
    test: EvaluationResult
    fit_seconds: float
    recommend_seconds: float
    model_payload: bytes
    curves: pd.DataFrame | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    elapsed_seconds: float = float("nan")
    item_popularity: np.ndarray | None = None


@dataclass
class CandidateFailure:
    """A candidate whose branch raised or ran past the per-candidate time limit.

    Attributes:
        candidate: The candidate dict (``candidate_id``, ``family``, ``params``).
        error_type: The exception's class name, e.g. ``ValueError`` or ``TimeoutException``.
        error: The first line of the exception's message.
        elapsed_seconds: Wall time of the branch until it failed.
    """

    candidate: dict
    error_type: str
    error: str
    elapsed_seconds: float

    def describe(self) -> str:
        """``"als-1 (ValueError: ..., after 2.1 s)"``: the candidate, its error and time."""
        return (
            f"{self.candidate['candidate_id']} ({self.error_type}: {self.error}, after "
            f"{self.elapsed_seconds:.1f} s)"
        )


def branch_outcome(
    candidate: dict | None,
    result: CandidateResult | None,
    failure: Any,
    elapsed_seconds: float | None,
) -> CandidateResult | CandidateFailure | None:
    """What one training branch produced: a result, a failure, or nothing (the no-op branch).

    Args:
        candidate: The branch's candidate (``self.input``); None on the no-op branch.
        result: The branch's result artifact, None where the branch failed.
        failure: What ``@catch`` stored for a failed branch (a ``MetaflowExceptionWrapper``, with
            ``type`` = ``"module.Class"`` and ``exception`` = the message), else None.
        elapsed_seconds: Wall time the branch recorded, None if it recorded none.

    Returns:
        The result with its elapsed time, a :class:`CandidateFailure`, or None.
    """
    if candidate is None:
        return None
    elapsed = float("nan") if elapsed_seconds is None else float(elapsed_seconds)
    if failure is None and result is not None:
        result.elapsed_seconds = elapsed
        return result
    if failure is None:
        error_type, message = "MissingResult", "the branch finished without a result"
    else:
        error_type = str(getattr(failure, "type", type(failure).__name__)).rsplit(".", 1)[-1]
        text = str(getattr(failure, "exception", failure)).strip()
        message = text.splitlines()[0] if text else ""
    outcome = CandidateFailure(candidate, error_type, message[:500], elapsed)
    logger.warning("candidate failed: %s", outcome.describe())
    return outcome


def train_and_evaluate(
    candidate: dict,
    encoded_dir: str | Path,
    user_map: IdMap,
    item_map: IdMap,
    k: int = 10,
    seed: int = 42,
    bootstrap_samples: int = 1000,
    validation_metric: str = "ndcg_at_10",
) -> CandidateResult:
    """Fit one candidate on train and evaluate it on validation and on test.

    Test metrics are computed here too (in parallel with the other branches) but selection in
    :func:`select_best` reads only validation columns.

    Args:
        candidate: A dict from :func:`plan_candidates`.
        encoded_dir: The ``encoded/`` directory written by ``build_workflow``.
        user_map: Raw user id <-> user_idx.
        item_map: Raw item id <-> item_idx.
        k: Cutoff for the metrics.
        seed: Seed for the model and the bootstrap.
        bootstrap_samples: Bootstrap resamples for the intervals.
        validation_metric: The run's selection metric; deep families pick their epoch by it.

    Returns:
        The result, with the fitted model serialised.
    """
    train = load_train(encoded_dir, user_map, item_map)
    windows = {name: load_window(encoded_dir, name) for name in ("valid", "test")}
    # Deep families early-stop on validation (selection data); test stays unseen until the end.
    validation = ValidationWindow(
        windows["valid"].user_idx, windows["valid"].item_idx, metric=validation_metric
    )
    model = make_model(candidate["family"], dict(candidate["params"]), seed=seed)
    started = time.perf_counter()
    model.fit(train, validation)
    fit_seconds = time.perf_counter() - started
    logger.info(
        "%s: fitted on %d interactions in %.2f s",
        candidate["candidate_id"],
        len(train.user_idx),
        fit_seconds,
    )
    evaluated = evaluate_candidate(
        model, train, windows, k, bootstrap_samples, seed, candidate["candidate_id"]
    )
    train_rows = train_rows_columns(model, train)
    item_popularity = interaction_counts(train.item_idx, train.n_items)
    # At scale the serialised model is gigabytes (SAR's similarity): let the train data go
    # before it is built, and the model right after.
    del train, windows
    payload = model.to_bytes()
    del model
    return CandidateResult(
        candidate=candidate,
        valid=evaluated.results["valid"],
        test=evaluated.results["test"],
        fit_seconds=fit_seconds,
        recommend_seconds=evaluated.recommend_seconds,
        model_payload=payload,
        curves=evaluated.curves,
        diagnostics={f"test_popular_share_at_{k}": evaluated.popular_share, **train_rows},
        item_popularity=item_popularity,
    )


def train_rows_columns(model: Any, train: Any) -> dict[str, Any]:
    """The leaderboard's statement of what a candidate trained on: ``train_rows`` (the train
    window), ``train_rows_used`` (fewer when a row cap applied, e.g. the deep families on a
    CPU) and ``train_sample`` (which rows, in words; empty when every row was used)."""
    used = getattr(model, "train_rows_used", None)
    return {
        "train_rows": len(train.user_idx),
        "train_rows_used": len(train.user_idx) if used is None else int(used),
        "train_sample": getattr(model, "train_sample", ""),
    }


CURVE_KS = tuple(range(1, 51))


@dataclass
class CandidateEvaluation:
    """What :func:`evaluate_candidate` measured for one fitted model.

    Attributes:
        results: ``"valid"`` and ``"test"``: metrics, bootstrap intervals and per-user values
            at the leaderboard's ``k``.
        curves: NDCG and recall at every k in ``CURVE_KS`` per window (columns ``window``,
            ``k``, ``ndcg``, ``recall``).
        recommend_seconds: Wall time of ``recommend`` for the warm users of both windows.
        popular_share: Share of the top-``k`` test recommendations among the top 1% train
            items by distinct users (popularity bias).
    """

    results: dict[str, EvaluationResult]
    curves: pd.DataFrame
    recommend_seconds: float
    popular_share: float


def evaluate_candidate(
    model: Any,
    train: Any,
    windows: dict,
    k: int,
    bootstrap_samples: int,
    seed: int,
    label: str = "",
) -> CandidateEvaluation:
    """Evaluate a fitted model once per window: the leaderboard metrics and the curves together.

    The model recommends ``max(k, 50)`` items once for every warm user of the windows (a user
    in both windows is scored once); one evaluator call per window then scores every cut-off
    1..50 (and ``k``) from those lists, with bootstrap intervals only at ``k``, the
    leaderboard's cut-off. The numbers equal separate calls at ``k`` (with the bootstrap) and at
    1..50 (without), since a deterministic model's top-``k`` is the head of its top-50 and the
    resampled users do not depend on the cut-offs.

    Args:
        model: A fitted family.
        train: Its :class:`reclab.models.base.TrainData`.
        windows: ``{"valid": Window, "test": Window}`` in encoded ids.
        k: The leaderboard's cut-off.
        bootstrap_samples: Bootstrap resamples of the intervals at ``k``.
        seed: Seed of the bootstrap.
        label: Names the candidate in the log lines.

    Returns:
        The per-window results at ``k``, the curves, the recommend time and popularity bias.
    """
    ks = tuple(sorted(set(CURVE_KS) | {k}))
    users = np.unique(np.concatenate([w.user_idx[w.user_idx >= 0] for w in windows.values()]))
    started = time.perf_counter()
    lists = TopLists(users, *recommend_in_batches(model, users, ks[-1], label))
    recommend_seconds = time.perf_counter() - started
    results, curves = {}, []
    for name, window in windows.items():
        started = time.perf_counter()
        # The test lists the evaluator reads are kept for the popularity bias.
        lists.recording = name == "test"
        full = evaluate_window(
            train,
            lists.recommend,
            window.user_idx,
            window.item_idx,
            ks=ks,
            bootstrap_samples=bootstrap_samples,
            seed=seed,
            interval_ks=(k,),
        )
        results[name] = full.at_cutoffs((k,))
        curves += curve_rows(name, full)
        _log_window(label, name, results[name], k, time.perf_counter() - started)
    return CandidateEvaluation(
        results=results,
        curves=pd.DataFrame(curves),
        recommend_seconds=recommend_seconds,
        popular_share=popular_share(train, [items[:, :k] for items in lists.recorded]),
    )


@dataclass
class TopLists:
    """Every user's top list, computed once, served to the evaluator like ``recommend``.

    Attributes:
        users: Sorted user indices with a list.
        items: Their lists, ``(len(users), K)`` item indices.
        scores: The scores of those items.
        recording: Keep what :meth:`recommend` serves in ``recorded``.
        recorded: The item lists served while ``recording``.
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    recording: bool = False
    recorded: list[np.ndarray] = field(default_factory=list)

    def recommend(self, user_idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` items and scores of the users' lists (``k`` <= K)."""
        rows = np.searchsorted(self.users, user_idx)
        items, scores = self.items[rows, :k], self.scores[rows, :k]
        if self.recording:
            self.recorded.append(items)
        return items, scores


def curve_rows(window: str, evaluated: EvaluationResult) -> list[dict[str, Any]]:
    """NDCG and recall at every k of ``CURVE_KS``: one row each, for the report's curves."""
    return [
        {
            "window": window,
            "k": kk,
            "ndcg": evaluated.metrics[metric_key("ndcg", kk)],
            "recall": evaluated.metrics[metric_key("recall", kk)],
        }
        for kk in CURVE_KS
    ]


def _log_window(label: str, window: str, result: EvaluationResult, k: int, seconds: float) -> None:
    logger.info(
        "%s: %s ndcg@%d=%.4f recall@%d=%.4f over %d users (evaluated in %.1f s)",
        label,
        window,
        k,
        result.metrics[metric_key("ndcg", k)],
        k,
        result.metrics[metric_key("recall", k)],
        result.counts["evaluated_users"],
        seconds,
    )


RECOMMEND_BATCH = 4096


def recommend_in_batches(
    model: Any, users: np.ndarray, k: int, label: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """``model.recommend(users, k)`` in batches of ``RECOMMEND_BATCH`` users, logging progress.

    Returns:
        (item_idx int64 (n, k), scores float32 (n, k)), as ``recommend`` returns them.
    """
    items = np.full((len(users), k), -1, dtype=np.int64)
    scores = np.full((len(users), k), -np.inf, dtype=np.float32)
    started = last_log = time.perf_counter()
    for first in range(0, len(users), RECOMMEND_BATCH):
        batch = users[first : first + RECOMMEND_BATCH]
        batch_items, batch_scores = model.recommend(batch, k, exclude_seen=True)
        items[first : first + len(batch)] = batch_items
        scores[first : first + len(batch)] = batch_scores
        done = first + len(batch)
        if time.perf_counter() - last_log > 30 or done == len(users):
            last_log = time.perf_counter()
            seconds = last_log - started
            logger.info(
                "%s: recommended %d items for %d / %d users in %.1f s (%.0f users/s)",
                label,
                k,
                done,
                len(users),
                seconds,
                done / max(seconds, 1e-9),
            )
    return items, scores


def popular_share(train: Any, lists: list[np.ndarray]) -> float:
    """Share of the listed items that are among the top 1% train items by distinct users.

    Args:
        train: The train data (``seen``, ``n_items``).
        lists: Recommendation lists (item indices, ``-1`` padding).

    Returns:
        The share, NaN when nothing was listed.
    """
    users_per_item = np.bincount(
        train.seen.indices, minlength=train.n_items
    )  # distinct users per item
    n_popular = max(1, int(np.ceil(0.01 * train.n_items)))
    popular = np.zeros(train.n_items, dtype=bool)
    popular[np.argsort(-users_per_item, kind="stable")[:n_popular]] = True
    listed = np.concatenate(lists).ravel() if lists else np.empty(0, dtype=np.int64)
    listed = listed[listed >= 0]
    return float(popular[listed].mean()) if listed.size else float("nan")


def params_label(params: dict[str, Any]) -> str:
    """Stable, readable form of a hyper-parameter set for the leaderboard."""
    return json.dumps(params, sort_keys=True, default=str)


def build_leaderboard(
    results: list[CandidateResult],
    validation_metric: str,
    failures: list[CandidateFailure] | tuple = (),
) -> pd.DataFrame:
    """One row per candidate: those that succeeded best validation metric first, then failures.

    Columns: ``candidate_id``, ``family``, ``params``, ``status`` (``ok`` or ``failed``),
    ``error_type`` and ``error`` (empty where ``ok``), ``valid_<metric>_at_<k>`` and
    ``test_<metric>_at_<k>`` for every metric (plus ``_low``/``_high`` bootstrap bounds for ndcg
    and recall; NaN on failed rows), ``overlaps_best`` (the validation interval overlaps the
    winner's), the diagnostics (popularity share; ``train_rows``, ``train_rows_used`` and
    ``train_sample``: what each candidate trained on), ``fit_seconds``,
    ``recommend_seconds``, ``elapsed_seconds`` (the candidate's time in its branch: load,
    fit, evaluate; also for failures), and the window/user counts.

    Raises:
        ValueError: If there is no candidate at all, or results lack the validation metric.
    """
    if not results and not failures:
        raise ValueError("no candidate was trained")
    rows = []
    for order, result in enumerate(results):
        row = {
            "candidate_id": result.candidate["candidate_id"],
            "family": result.candidate["family"],
            "params": params_label(result.candidate["params"]),
            "status": "ok",
            "error_type": "",
            "error": "",
            **result.valid.as_row("valid"),
            **result.test.as_row("test"),
            **result.diagnostics,
            "fit_seconds": result.fit_seconds,
            "recommend_seconds": result.recommend_seconds,
            "elapsed_seconds": result.elapsed_seconds,
            "valid_evaluated_users": result.valid.counts["evaluated_users"],
            "test_evaluated_users": result.test.counts["evaluated_users"],
            "_order": order,
        }
        rows.append(row)
    for order, failure in enumerate(failures, start=len(rows)):
        rows.append(
            {
                "candidate_id": failure.candidate["candidate_id"],
                "family": failure.candidate["family"],
                "params": params_label(failure.candidate["params"]),
                "status": "failed",
                "error_type": failure.error_type,
                "error": failure.error,
                "elapsed_seconds": failure.elapsed_seconds,
                "_order": order,
            }
        )
    board = pd.DataFrame(rows)
    column = f"valid_{validation_metric}"
    if results and column not in board:
        raise ValueError(f"leaderboard has no column {column!r}")
    if column not in board:
        board[column] = float("nan")
    # Failures last; ties keep the candidate order, so the same seed gives the same leaderboard.
    board["_failed"] = board["status"] != "ok"
    board = board.sort_values(
        ["_failed", column, "_order"], ascending=[True, False, True], na_position="last"
    )
    board = board.drop(columns=["_order", "_failed"]).reset_index(drop=True)
    board.insert(6, "overlaps_best", interval_overlaps(board, validation_metric))
    return board


def keep_family_best_payloads(
    results: Iterable[CandidateResult | None], validation_metric: str
) -> list[CandidateResult]:
    """The candidates' results with only each family's best model payload kept.

    The join bundles the best candidate of each family (the first of its family on the
    leaderboard) and nothing else, so the other payloads (SAR's is the whole item similarity,
    gigabytes at scale) need not travel further. Results are consumed one at a time, so with
    a lazy iterable (a join's inputs) at most one payload per family, plus the one being read,
    is in memory. The order rule is the leaderboard's: the higher validation metric wins, NaN
    loses, and a tie keeps the earlier candidate.

    Args:
        results: Candidate results in candidate order; None (an empty fan-out) is skipped.
        validation_metric: The metric that picks the best, e.g. ``ndcg_at_10``.

    Returns:
        The results in the same order; a non-best candidate's ``model_payload`` is ``b""``.
    """
    kept: list[CandidateResult] = []
    best_of: dict[str, int] = {}  # family -> position in kept of its best so far
    for result in results:
        if result is None:
            continue
        family = result.candidate["family"]
        value = result.valid.metrics.get(validation_metric, float("nan"))
        current = best_of.get(family)
        if current is None:
            best_of[family] = len(kept)
        else:
            best_value = kept[current].valid.metrics.get(validation_metric, float("nan"))
            if not math.isnan(value) and (math.isnan(best_value) or value > best_value):
                kept[current] = replace(kept[current], model_payload=b"")
                best_of[family] = len(kept)
            else:
                result = replace(result, model_payload=b"")
        kept.append(result)
    return kept


def select_best(leaderboard: pd.DataFrame, validation_metric: str) -> str:
    """The succeeded candidate with the best validation metric (the leaderboard's first ok row).

    Raises:
        ValueError: If no candidate succeeded, or none has a finite validation metric (nothing
            could be evaluated).
    """
    succeeded = leaderboard[leaderboard["status"] == "ok"]
    if succeeded.empty:
        raise ValueError("no candidate succeeded, so none can be chosen")
    value = succeeded.iloc[0][f"valid_{validation_metric}"]
    if not math.isfinite(value):
        raise ValueError(
            f"no candidate has a finite validation {validation_metric}: the validation window "
            "has no evaluable users (users seen in train with a new item in the window)"
        )
    return str(succeeded.iloc[0]["candidate_id"])


def all_failed_message(failures: list[CandidateFailure], resume_hint: str = "") -> str:
    """The one message of a run whose candidates all failed: each failure, then what to do."""
    lines = [
        f"all {len(failures)} candidates failed:"
        if len(failures) > 1
        else "the only candidate failed:"
    ]
    lines += [f"  - {failure.describe()}" for failure in failures]
    lines.append(
        "Fix the grid file (--grid-file) or the family parameters"
        + (f", then {resume_hint}" if resume_hint else "")
        + ". A TimeoutException means the candidate ran past the per-candidate time limit "
        "(the flow's limits Config); a new run can raise it."
    )
    return "\n".join(lines)


def gather_branches(
    inputs: Any, validation_metric: str
) -> tuple[list[CandidateResult], list[CandidateFailure]]:
    """The results and failures of a fan-out's training branches (a join step's ``inputs``).

    Each input carries ``input`` (its candidate, None on the no-op branch) and, depending on how
    it ended, ``result``, ``failure`` (set by ``@catch``) and ``elapsed_seconds``. Branches are
    read one at a time and only each family's best model payload is kept
    (:func:`keep_family_best_payloads`), so memory holds one payload per family, not one per
    candidate.
    """
    failures: list[CandidateFailure] = []

    def results() -> Iterator[CandidateResult]:
        for branch in inputs:
            outcome = branch_outcome(
                branch.input,
                getattr(branch, "result", None),
                getattr(branch, "failure", None),
                getattr(branch, "elapsed_seconds", None),
            )
            if isinstance(outcome, CandidateResult):
                yield outcome
            elif isinstance(outcome, CandidateFailure):
                failures.append(outcome)

    return keep_family_best_payloads(results(), validation_metric), failures


# Per-branch artifacts that differ between the training branches; collect_branches gathers them.
BRANCH_ARTIFACTS = ["result", "failure", "elapsed_seconds", "_catch_exception"]


def train_branch(branch: Any, encoded_dir: str | Path) -> None:
    """Fit and evaluate a foreach branch's candidate: the one call of both train steps.

    Reads ``input`` (the candidate; None on the no-op branch of an empty fan-out), ``user_map``,
    ``item_map``, ``k``, ``seed``, ``bootstrap_samples`` and ``validation_metric`` from
    ``branch`` (the flow in its train step), and sets ``branch.result`` (a
    :class:`CandidateResult`, None on the no-op branch) and ``branch.elapsed_seconds``. The
    time is set also when the candidate raises, so ``@catch`` keeps it for the failed
    leaderboard row.

    Args:
        branch: Holds the artifacts above; gets ``result`` and ``elapsed_seconds``.
        encoded_dir: The ``encoded/`` directory written by ``build_workflow``.
    """
    started = time.perf_counter()
    try:
        if branch.input is None:
            logger.info("no candidate on this fan-out: nothing to train")
            branch.result = None
            return
        branch.result = train_and_evaluate(
            branch.input,
            encoded_dir,
            branch.user_map,
            branch.item_map,
            k=branch.k,
            seed=branch.seed,
            bootstrap_samples=branch.bootstrap_samples,
            validation_metric=branch.validation_metric,
        )
    finally:
        branch.elapsed_seconds = time.perf_counter() - started


def collect_branches(join: Any, inputs: Any) -> None:
    """Gather a fan-out's branches: the one call of both collect steps.

    Sets ``join.results`` and ``join.failures`` (:func:`gather_branches`, by
    ``join.validation_metric``) and merges the artifacts the branches share into ``join``
    (those of ``BRANCH_ARTIFACTS`` differ per branch and are left out).

    Args:
        join: The flow in its collect step (a join step: ``merge_artifacts`` is called on it).
        inputs: The join step's ``inputs``.
    """
    # One branch's result in memory at a time; only what the join bundles is kept.
    join.results, join.failures = gather_branches(inputs, join.validation_metric)
    join.merge_artifacts(inputs, exclude=BRANCH_ARTIFACTS)


def synthetic_flow_params(
    n_interactions: int, n_users: int = 0, n_items: int = 0, seed: int = 42
) -> dict[str, int]:
    """The flow's synthetic dataset: MovieLens-shaped, distinct (user, item) pairs.

    Args:
        n_interactions: Rows (``--synthetic-interactions``).
        n_users: Users (``--synthetic-users``); 0 scales with the rows.
        n_items: Items (``--synthetic-items``); 0 scales with the rows.
        seed: Generator seed (the run's ``--seed``).

    Returns:
        Generator parameters for :func:`data.resolve_source`.
    """
    from data.synthetic import scaled_shape

    users, items = scaled_shape(n_interactions, n_users or None, n_items or None)
    return {
        "n_interactions": n_interactions,
        "n_users": users,
        "n_items": items,
        "seed": seed,
        "distinct_pairs": 1,
    }


@dataclass(frozen=True)
class RunParameters:
    """The flow's parameters that ``start`` validates, named as the flow names them.

    Attributes mirror the flow's parameters (``--data-dir`` is ``data_dir``); see the flow's
    help texts. The defaults are the flow's, for the optional ones.
    """

    dataset: str
    data_dir: str
    interactions_file: str
    columns: str
    synthetic_interactions: int
    row_sampling: float
    training_end_date: str
    validation_end_date: str
    models: str
    grid: str
    grid_file: str
    k: int
    validation_metric: str
    bootstrap_samples: int
    seed: int
    batch_k: int = 10
    synthetic_users: int = 0
    synthetic_items: int = 0
    als_engine: str = "implicit"
    spark_master: str = "local[*]"
    promotion: str = "challenger"

    @classmethod
    def from_flow(cls, flow: Any) -> RunParameters:
        """Read every field from the flow (in a step) by its parameter's name."""
        return cls(**{param.name: getattr(flow, param.name) for param in fields(cls)})

    @property
    def family_overrides(self) -> dict[str, dict[str, Any]]:
        """Parameters set on every candidate of a family: ``--als-engine``, ``--spark-master``."""
        return {"als": {"engine": self.als_engine, "spark_master": self.spark_master}}


@dataclass
class CheckedParameters:
    """The flow's parameters after validation, with what ``start`` derives from them."""

    source: Any
    families: list[str]
    cpu_candidates: list[dict]
    gpu_candidates: list[dict]


COLUMNS_EXAMPLE = '{"user": "customer", "item": "sku", "timestamp": "ts"}'


def validate_run_parameters(params: RunParameters) -> CheckedParameters:
    """Check every flow parameter cheaply, so bad input fails before any expensive work.

    Raises:
        InputError: Naming the parameter, what is wrong and how to fix it.
    """
    from data import resolve_source, validate_split_params

    _check_values(params)
    families = parse_model_list(params.models)
    validate_metric(params.validation_metric, params.k)
    validate_split_params(
        params.row_sampling, params.training_end_date or None, params.validation_end_date or None
    )
    column_map = None
    if params.columns.strip():
        column_map = parse_json_object(
            params.columns,
            "--columns",
            COLUMNS_EXAMPLE,
            meaning="mapping roles to column names or 0-based positions",
        )
    source = resolve_source(
        params.dataset,
        data_dir=params.data_dir or None,
        interactions_file=params.interactions_file or None,
        columns=column_map,
        synthetic=(
            synthetic_flow_params(
                params.synthetic_interactions,
                params.synthetic_users,
                params.synthetic_items,
                params.seed,
            )
            if params.dataset == "synthetic"
            else None
        ),
    )
    cpu, gpu = plan_checked_candidates(
        families, params.grid, params.grid_file or None, params.family_overrides, params.seed
    )
    return CheckedParameters(
        source=source, families=families, cpu_candidates=cpu, gpu_candidates=gpu
    )


def _check_values(params: RunParameters) -> None:
    """The numeric parameters' ranges and --promotion (:func:`validate_run_parameters`)."""
    for name, value, low in (
        ("k", params.k, 1),
        ("bootstrap-samples", params.bootstrap_samples, 0),
        ("seed", params.seed, 0),
        ("synthetic-interactions", params.synthetic_interactions, 1),
    ):
        if value < low:
            raise InputError(f"--{name} must be >= {low}, got {value}")
    from reclab.production import PROMOTION_POLICIES

    if params.promotion not in PROMOTION_POLICIES:
        raise InputError(
            f"--promotion must be one of {', '.join(PROMOTION_POLICIES)}, got {params.promotion!r}"
        )
    if not 1 <= params.batch_k <= 1000:
        raise InputError(
            f"--batch-k must be in 1..1000 (items per user cached), got {params.batch_k}"
        )
    for name, value in (("users", params.synthetic_users), ("items", params.synthetic_items)):
        if value < 0:
            raise InputError(
                f"--synthetic-{name} must be >= 0 (0 scales with --synthetic-interactions), "
                f"got {value}"
            )


@dataclass
class RunSummary:
    """What the join step versions."""

    leaderboard: pd.DataFrame
    best_model_name: str
    best_params: dict[str, Any]
    best_model: Any
    valid_metrics: dict[str, float]
    test_metrics: dict[str, float]
    best_model_per_family: dict[str, Any]
    metric_curves: pd.DataFrame
    caveats: list[str] = field(default_factory=list)


def summarise_run(
    results: list[CandidateResult],
    validation_metric: str,
    user_map: IdMap,
    item_map: IdMap,
    item_metadata: pd.DataFrame | None,
    split: dict,
    failures: list[CandidateFailure] | tuple = (),
    resume_hint: str = "",
) -> RunSummary:
    """Build the leaderboard, pick the best candidate on validation and bundle it for serving.

    Failed candidates are leaderboard rows (``status`` ``failed``) and never chosen. The caveats
    (thin windows, overlapping intervals) are logged and returned with the winner.

    Args:
        results: The candidates that succeeded.
        validation_metric: The selection metric, e.g. ``ndcg_at_10``.
        user_map: Raw user id <-> user_idx.
        item_map: Raw item id <-> item_idx.
        item_metadata: Item titles and features for the bundles, or None.
        split: The split artifact.
        failures: The candidates that failed.
        resume_hint: What to run after fixing them, for the all-failed message.

    Raises:
        CandidatesFailedError: If every candidate failed (one message naming each failure).
        ValueError: If nothing was trained or no candidate could be evaluated.
    """
    from reclab.bundle import ModelBundle

    if failures and not results:
        raise CandidatesFailedError(all_failed_message(list(failures), resume_hint))
    leaderboard = build_leaderboard(results, validation_metric, failures)
    best_id = select_best(leaderboard, validation_metric)
    caveats = selection_caveats(leaderboard, validation_metric, split)
    for caveat in caveats:
        logger.warning("CAVEAT on the winner %s: %s", best_id, caveat)

    def bundle_of(result: CandidateResult) -> ModelBundle:
        return ModelBundle(
            family=result.candidate["family"],
            params=dict(result.candidate["params"]),
            model_payload=result.model_payload,
            user_map=user_map,
            item_map=item_map,
            item_metadata=item_metadata,
            split=split,
            metrics={**result.valid.as_row("valid"), **result.test.as_row("test")},
            item_popularity=result.item_popularity,
        )

    by_id = {r.candidate["candidate_id"]: r for r in results}
    best = by_id[best_id]
    # The leaderboard is sorted best first, so the first row of a family is its best candidate;
    # serving uses these where the winner lacks a capability (similar items, fold-in).
    best_model_per_family = {}
    succeeded = leaderboard[leaderboard["status"] == "ok"]
    for candidate_id, family in zip(succeeded["candidate_id"], succeeded["family"], strict=True):
        if family not in best_model_per_family:
            best_model_per_family[family] = bundle_of(by_id[candidate_id])
    return RunSummary(
        leaderboard=leaderboard,
        best_model_name=best.candidate["family"],
        best_params=dict(best.candidate["params"]),
        best_model=best_model_per_family[best.candidate["family"]],
        valid_metrics=dict(best.valid.metrics),
        test_metrics=dict(best.test.metrics),
        best_model_per_family=best_model_per_family,
        metric_curves=collect_metric_curves(results),
        caveats=caveats,
    )


def collect_metric_curves(results: list[CandidateResult]) -> pd.DataFrame:
    """Every candidate's curves in one tidy frame: candidate_id, family, window, k, ndcg, recall."""
    frames = [
        result.curves.assign(
            candidate_id=result.candidate["candidate_id"], family=result.candidate["family"]
        )
        for result in results
        if result.curves is not None
    ]
    columns = ["candidate_id", "family", "window", "k", "ndcg", "recall"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]
