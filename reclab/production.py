"""From experiment to production: refit the winner on all data, and promote it by a run tag.

* **Refit.** The leaderboard chooses a recipe (family + hyper-parameters) on data it was not
  trained on. What is served should know everything the run knows: the recipe is fitted again
  on every interaction of the run (train + validation + test) with id maps over all of them
  (:func:`workflow_builder.build_all_data`). Deep families train for the epoch count their
  evaluated fit selected on validation, since nothing is left to early-stop on.
* **Promotion.** The run tagged ``production`` (in the same ``@project`` branch) is the one
  served by default. A run trains that run's recipe again as the ``incumbent`` candidate, on
  its own split, and moves the tag only when its winner is a challenger that beats the
  incumbent on the validation metric (or when there is no production run yet).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from reclab.bundle import ModelBundle
from reclab.encoded import load_train
from reclab.id_maps import IdMap
from reclab.models.registry import FAMILIES, make_model
from reclab.popularity import interaction_counts

logger = logging.getLogger(__name__)

PRODUCTION_TAG = "production"
# The branch of `--production` deployments (@project); serving prefers its production run.
PROD_BRANCH_TAG = "project_branch:prod"
INCUMBENT_ID = "incumbent"
# What a bundle was fitted on (ModelBundle.trained_on).
TRAIN_WINDOW = "train"
ALL_WINDOWS = "train+valid+test"
PROMOTION_POLICIES = ("challenger", "retrain", "never")


def refit_params(evaluated: ModelBundle) -> dict[str, Any]:
    """The winner's hyper-parameters for the refit: its own, with the selected epoch count.

    A family that early-stopped on validation (NCF, two-tower) kept the weights of its best
    epoch (``best_epoch``); the refit has no validation window, so it trains that many epochs.
    """
    params = dict(evaluated.params)
    best_epoch = getattr(evaluated.model, "best_epoch", None)
    if best_epoch:
        params["epochs"] = int(best_epoch)
    return params


def refit_for_serving(
    evaluated: ModelBundle,
    all_data_dir: str | Path,
    user_map: IdMap,
    item_map: IdMap,
    seed: int = 42,
) -> ModelBundle:
    """Fit the evaluated winner's recipe on every interaction of the run.

    Args:
        evaluated: The winner as evaluated (fitted on train only), with its metrics.
        all_data_dir: The directory :func:`workflow_builder.build_all_data` wrote.
        user_map: Raw user id <-> user_idx over all the data.
        item_map: Raw item id <-> item_idx over all the data.
        seed: The run's seed.

    Returns:
        The bundle to serve: ``trained_on`` is ``ALL_WINDOWS``; its ``metrics`` are the
        evaluated fit's (the recipe's held-out estimate: no data is held out from the refit).
    """
    all_data_dir = Path(all_data_dir)
    train = load_train(all_data_dir / "encoded", user_map, item_map)
    params = refit_params(evaluated)
    model = make_model(evaluated.family, dict(params), seed=seed)
    started = time.perf_counter()
    model.fit(train, None)
    logger.info(
        "refit %s %s on all %d interactions (%d users, %d items) in %.1f s",
        evaluated.family,
        params,
        len(train.user_idx),
        train.n_users,
        train.n_items,
        time.perf_counter() - started,
    )
    item_popularity = interaction_counts(train.item_idx, train.n_items)
    del train
    return ModelBundle(
        family=evaluated.family,
        params=params,
        model_payload=model.to_bytes(),
        user_map=user_map,
        item_map=item_map,
        item_metadata=evaluated.item_metadata,
        split=evaluated.split,
        metrics=dict(evaluated.metrics),
        item_popularity=item_popularity,
        trained_on=ALL_WINDOWS,
    )


@dataclass
class Incumbent:
    """The production run's recipe, to train again as a candidate.

    Attributes:
        run: The production run's pathspec, e.g. ``"TrainFlow/12"``.
        family: Its winner's family.
        params: Its winner's hyper-parameters (as evaluated, before any refit epoch count).
    """

    run: str
    family: str
    params: dict[str, Any]

    def candidate(self) -> dict[str, Any]:
        """The incumbent as a candidate of this run (``candidate_id`` ``incumbent``)."""
        return {"candidate_id": INCUMBENT_ID, "family": self.family, "params": dict(self.params)}


def production_runs(flow_name: str, branch_tag: str | None = None, exclude: str = "") -> list:
    """Successful runs tagged ``production`` (newest first), in every namespace.

    Args:
        flow_name: The flow's name.
        branch_tag: Also require this tag (``project_branch:<branch>`` under ``@project``, so
            user, test and production branches each have their own production run).
        exclude: A run pathspec to leave out (the run asking).
    """
    from metaflow import Flow, namespace
    from metaflow.exception import MetaflowNotFound

    namespace(None)
    tags = [PRODUCTION_TAG] + ([branch_tag] if branch_tag else [])
    try:
        runs = list(Flow(flow_name).runs(*tags))
    except MetaflowNotFound:
        return []
    runs = [run for run in runs if run.pathspec != exclude and run.successful]
    return sorted(runs, key=lambda run: run.created_at, reverse=True)


def find_incumbent(
    flow_name: str, branch_tag: str | None = None, exclude: str = ""
) -> Incumbent | None:
    """The newest production run's recipe, or None when no run is in production.

    A production run whose family is no longer registered is skipped with a warning.
    """
    for run in production_runs(flow_name, branch_tag, exclude):
        family, params = run.data.best_model_name, dict(run.data.best_params)
        if family not in FAMILIES:
            logger.warning("production run %s trained %r, no longer a family", run.pathspec, family)
            continue
        return Incumbent(run=run.pathspec, family=family, params=params)
    return None


@dataclass
class PromotionDecision:
    """Whether a run takes the ``production`` tag, and why (the ``promotion`` artifact).

    Attributes:
        promote: True when the run becomes the production run.
        reason: Why, or why not, in words.
        incumbent_run: The production run this run competed with, or None.
        winner: The winning candidate id.
        winner_metric: Its validation metric.
        incumbent_metric: The incumbent candidate's validation metric (NaN without one).
    """

    promote: bool
    reason: str
    incumbent_run: str | None = None
    winner: str = ""
    winner_metric: float = math.nan
    incumbent_metric: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for the artifact."""
        return asdict(self)


def decide_promotion(
    leaderboard: pd.DataFrame,
    validation_metric: str,
    incumbent: Incumbent | None,
    policy: str = "challenger",
    refit: bool = True,
) -> PromotionDecision:
    """Decide whether the run's winner replaces the production run.

    Args:
        leaderboard: The run's leaderboard (best validation first; failed rows last).
        validation_metric: The selection metric.
        incumbent: The production run's recipe, None when no run is in production.
        policy: ``challenger``: promote a challenger that beats the incumbent; ``retrain``:
            also promote when the incumbent's recipe wins (it was refit on newer data);
            ``never``: an experiment, never promoted.
        refit: Whether the run refit its winner on all data (a run without a refit serves a
            model that never saw the validation and test windows, and is not promoted).

    Returns:
        The decision and its reason.
    """
    column = f"valid_{validation_metric}"
    succeeded = leaderboard[leaderboard["status"] == "ok"]
    winner = str(succeeded.iloc[0]["candidate_id"])
    winner_metric = float(succeeded.iloc[0][column])
    incumbent_rows = leaderboard[leaderboard["candidate_id"] == INCUMBENT_ID]
    incumbent_metric = float(incumbent_rows.iloc[0][column]) if len(incumbent_rows) else math.nan
    decision = PromotionDecision(
        promote=False,
        reason="",
        incumbent_run=incumbent.run if incumbent else None,
        winner=winner,
        winner_metric=winner_metric,
        incumbent_metric=incumbent_metric,
    )
    versus = f"{winner} {validation_metric} {winner_metric:.4f}"
    if policy == "never":
        decision.reason = "--promotion never: an experiment run is not promoted"
    elif not refit:
        decision.reason = (
            "--refit is off: the best model never saw the validation and test windows, so the "
            "run is not promoted"
        )
    elif incumbent is None:
        decision.promote = True
        decision.reason = f"no run was in production: the winner {versus} is promoted"
    elif incumbent_rows.empty or incumbent_rows.iloc[0]["status"] != "ok":
        decision.promote = True
        decision.reason = (
            f"the incumbent recipe of {incumbent.run} failed to train on this run's data: the "
            f"winner {versus} is promoted"
        )
    elif winner == INCUMBENT_ID and policy == "retrain":
        decision.promote = True
        decision.reason = (
            f"the incumbent recipe of {incumbent.run} won ({versus}); --promotion retrain "
            "promotes its refit on this run's newer data"
        )
    elif winner == INCUMBENT_ID:
        decision.reason = (
            f"the incumbent recipe of {incumbent.run} won ({versus}): no challenger beat it, "
            f"so {incumbent.run} stays in production (--promotion retrain would ship the "
            "incumbent refit on this run's data)"
        )
    elif winner_metric > incumbent_metric:
        decision.promote = True
        decision.reason = (
            f"the challenger {versus} beats the incumbent recipe of {incumbent.run} "
            f"({incumbent_metric:.4f}) on validation"
        )
    else:
        decision.reason = (
            f"the winner {versus} does not beat the incumbent recipe of {incumbent.run} "
            f"({incumbent_metric:.4f}); {incumbent.run} stays in production"
        )
    return decision


def move_production_tag(run: Any, previous: list) -> None:
    """Tag ``run`` ``production`` and take the tag off the ``previous`` production runs.

    The new tag is added first, so at every moment some run is in production.
    """
    run.add_tag(PRODUCTION_TAG)
    for old in previous:
        if old.pathspec != run.pathspec:
            old.remove_tag(PRODUCTION_TAG)
            logger.info("%s is no longer in production", old.pathspec)
    logger.info("%s is in production", run.pathspec)


def project_branch_tag() -> str | None:
    """``project_branch:<branch>`` of the running flow under ``@project``, else None."""
    from metaflow import current

    branch = getattr(current, "branch_name", None)
    return f"project_branch:{branch}" if branch else None


def checked_incumbent(incumbent: Incumbent | None, seed: int = 42) -> Incumbent | None:
    """The incumbent, or None when this version no longer accepts its parameters (warned:
    the run then competes with no incumbent, and its promotion reason says so)."""
    if incumbent is None:
        return None
    try:
        make_model(incumbent.family, dict(incumbent.params), seed=seed)
    except (TypeError, ValueError) as error:
        logger.warning(
            "incumbent recipe of %s is no longer valid (%s); left out", incumbent.run, error
        )
        return None
    logger.info("incumbent: %s %s from %s", incumbent.family, incumbent.params, incumbent.run)
    return incumbent


def with_incumbent(
    incumbent: Incumbent | None, cpu: list[dict], gpu: list[dict]
) -> tuple[list[dict], list[dict]]:
    """The planned candidates with the incumbent first on its fan-out (so a tie keeps it)."""
    if incumbent is None:
        return cpu, gpu
    if FAMILIES[incumbent.family].uses_gpu:
        return cpu, [incumbent.candidate(), *gpu]
    return [incumbent.candidate(), *cpu], gpu


def promote_run(flow_name: str, run_id: str, branch_tag: str | None = None) -> None:
    """Move the ``production`` tag to the run ``flow_name/run_id`` (see
    :func:`move_production_tag`), off the branch's previous production runs."""
    from metaflow import Run

    pathspec = f"{flow_name}/{run_id}"
    previous = production_runs(flow_name, branch_tag, exclude=pathspec)  # sets namespace(None)
    move_production_tag(Run(pathspec), previous)


def served_model_note(refit: bool, decision: dict[str, Any]) -> str:
    """The card's words on which model the metrics describe, which is served, and promotion."""
    if refit:
        served = (
            "The metrics above describe each candidate fitted on the **train window** and "
            "judged on the later windows. The served model (`best_model`, and the batch "
            "scores) is the winner's recipe **refit on train + validation + test**: it knows "
            "every user and item of the run and has no held-out metric of its own. The fit the "
            "metrics describe is kept as `evaluated_model`."
        )
    else:
        served = (
            "`--refit false`: the served model (`best_model`) is the evaluated fit, trained on "
            "the train window only; the metrics above describe it."
        )
    verdict = "Promoted when the run finishes" if decision["promote"] else "Not promoted"
    return f"## Served model\n\n{served}\n\n**{verdict}**: {decision['reason']}."


def without_refit(decision: dict[str, Any], failure: Any) -> dict[str, Any]:
    """The decision for a run whose refit failed: it serves the evaluated fit and is not
    promoted; ``failure`` is what ``@catch`` stored (its ``exception`` is the message)."""
    message = str(getattr(failure, "exception", failure)).strip().splitlines()
    reason = (
        f"the refit on all the data failed ({message[0] if message else 'no message'}): "
        "best_model is the evaluated fit, and the run is not promoted"
    )
    return {**decision, "promote": False, "reason": reason}
