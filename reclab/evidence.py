"""When the evaluation is too thin to trust: few evaluable users, overlapping intervals.

The winner is always chosen by the rule (best validation metric); these caveats travel with it
(in the ``split`` artifact, the ``caveats`` artifact, the leaderboard and the card) so nobody
reads a tie between two users' worth of evidence as a result.
"""

from __future__ import annotations

import math

import pandas as pd

# Fewer evaluable users than this in a window and one user moves a mean metric by more than 3%.
THIN_WINDOW_USERS = 30
WINDOW_LABELS = {"valid": "validation", "test": "test"}


def thin_window_caveats(
    evaluable_users: dict[str, int], threshold: int = THIN_WINDOW_USERS
) -> list[str]:
    """A caveat for each evaluation window with fewer evaluable users than ``threshold``.

    Args:
        evaluable_users: ``{"valid": n, "test": m}`` (the ``split`` artifact's
            ``evaluable_users``).
        threshold: The smallest number of evaluable users that is not called thin.

    Returns:
        Plain sentences, one per thin window, in window order.
    """
    caveats = []
    for window, label in WINDOW_LABELS.items():
        users = evaluable_users.get(window)
        if users is not None and users < threshold:
            caveats.append(
                f"the {label} window has only {users} evaluable user{'s' if users != 1 else ''} "
                f"(fewer than {threshold}): each user weighs {100 / max(users, 1):.1f}% of its "
                "mean metrics, so differences between candidates are mostly noise"
            )
    return caveats


def interval_overlaps(leaderboard: pd.DataFrame, validation_metric: str) -> pd.Series:
    """Which candidates' validation intervals overlap the winner's (True for the winner).

    Args:
        leaderboard: Best first, with ``status`` and the ``valid_<metric>_low``/``_high``
            bootstrap bounds (NDCG and recall have them).
        validation_metric: The selection metric, e.g. ``ndcg_at_10``.

    Returns:
        A boolean Series aligned with the leaderboard; all False when the metric has no
        interval, nothing succeeded, or the intervals are NaN (no bootstrap).
    """
    low, high = f"valid_{validation_metric}_low", f"valid_{validation_metric}_high"
    succeeded = leaderboard["status"] == "ok"
    overlaps = pd.Series(False, index=leaderboard.index)
    if low not in leaderboard or not succeeded.any():
        return overlaps
    winner = leaderboard[succeeded].iloc[0]
    if not (math.isfinite(winner[low]) and math.isfinite(winner[high])):
        return overlaps
    return succeeded & (leaderboard[high] >= winner[low]) & (leaderboard[low] <= winner[high])


def selection_caveats(leaderboard: pd.DataFrame, validation_metric: str, split: dict) -> list[str]:
    """Everything that makes the winner less certain than its rank suggests.

    Args:
        leaderboard: From :func:`reclab.training.build_leaderboard`, with ``overlaps_best``.
        validation_metric: The selection metric.
        split: The split artifact (its ``caveats`` name thin windows).

    Returns:
        Plain sentences: the split's thin-window caveats, then one on overlapping intervals
        or on a metric without intervals.
    """
    caveats = list(split.get("caveats", []))
    succeeded = leaderboard[leaderboard["status"] == "ok"]
    if len(succeeded) < 2:
        return caveats
    low, high = f"valid_{validation_metric}_low", f"valid_{validation_metric}_high"
    winner = succeeded.iloc[0]
    if low not in succeeded or not math.isfinite(winner[low]):
        caveats.append(
            f"validation {validation_metric} has no bootstrap interval (NDCG and recall have "
            "them, with --bootstrap-samples > 0), so how clearly the winner leads is not measured"
        )
        return caveats
    rivals = succeeded.iloc[1:][succeeded["overlaps_best"].iloc[1:]]
    if len(rivals):
        runner_up = rivals.iloc[0]
        caveats.append(
            f"the winner {winner['candidate_id']}'s validation {validation_metric} 95% interval "
            f"[{winner[low]:.4f}, {winner[high]:.4f}] overlaps the intervals of {len(rivals)} "
            f"other candidate{'s' if len(rivals) != 1 else ''} (the closest, "
            f"{runner_up['candidate_id']}: [{runner_up[low]:.4f}, {runner_up[high]:.4f}]): this "
            "data does not separate them"
        )
    return caveats
