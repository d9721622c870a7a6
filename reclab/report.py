"""Metaflow card content for a training run: the leaderboard and the validation metric chart.

Card components are built here, not in the flow, so the flow stays a list of calls. Charts are
Vega-Lite specs rendered by the card's bundled JavaScript: the card works offline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def leaderboard_components(
    leaderboard: pd.DataFrame,
    validation_metric: str,
    split: dict,
    caveats: list[str] | tuple = (),
) -> list:
    """Components for the join step's card.

    Args:
        leaderboard: From :func:`reclab.training.build_leaderboard` (succeeded rows first).
        validation_metric: The metric candidates were ranked by, e.g. ``ndcg_at_10``.
        split: The split artifact (dates and window counts).
        caveats: What makes the winner less certain (:func:`reclab.evidence.selection_caveats`).

    Returns:
        Metaflow card components, in display order.
    """
    from metaflow.cards import Markdown, VegaChart

    succeeded = _succeeded(leaderboard)
    shown = [c for c in leaderboard.columns if not c.endswith(("_low", "_high"))]
    table = leaderboard[shown].copy()
    for name in table.columns:
        if pd.api.types.is_float_dtype(table[name]):
            table[name] = table[name].round(4)
    return [
        Markdown(_run_header(leaderboard, validation_metric, split, caveats)),
        VegaChart(_interval_chart(succeeded, validation_metric)),
        Markdown("## Leaderboard"),
        frame_table(table),
    ]


def _run_header(
    leaderboard: pd.DataFrame, validation_metric: str, split: dict, caveats: list[str] | tuple
) -> str:
    """The card's opening text: the winner, the split, the caveats, failures and samples."""
    succeeded = _succeeded(leaderboard)
    failed = leaderboard.drop(succeeded.index)
    best = succeeded.iloc[0]
    column = f"valid_{validation_metric}"
    test_value = best[f"test_{validation_metric}"]
    evaluable = split.get("evaluable_users", {})
    header = (
        f"# Training run\n\nBest: **{best['family']}** `{best['params']}` with validation "
        f"{validation_metric} = {best[column]:.4f} (test {test_value:.4f}).\n\n"
        f"Split ({split.get('method', '')}): train < {split.get('training_end_date')} <= "
        f"valid < {split.get('validation_end_date')} <= test"
        + (
            f"; evaluable users: {evaluable.get('valid')} in validation, "
            f"{evaluable.get('test')} in test."
            if evaluable
            else "."
        )
    )
    if caveats:
        header += (
            "\n\n**Caveats: the winner is chosen by the rule, but read it with care.**\n\n"
            + "\n".join(f"- {caveat}" for caveat in caveats)
        )
    if len(failed):
        header += (
            f"\n\n**{len(failed)} of {len(leaderboard)} candidates failed** (not ranked):\n\n"
            + "\n".join(
                f"- `{row['candidate_id']}` `{row['params']}`: {row['error_type']}: "
                f"{row['error']} (after {row['elapsed_seconds']:.1f} s)"
                for _, row in failed.iterrows()
            )
        )
    if "train_sample" in leaderboard:
        capped = leaderboard[leaderboard["train_sample"].fillna("").astype(str) != ""]
        # Deep families on a CPU train on a capped sample of rows: say so above the table.
        header += "".join(
            f"\n\n{row['candidate_id']} trained on a sample: {row['train_sample']}."
            for _, row in capped.iterrows()
        )
    return header


def _interval_chart(succeeded: pd.DataFrame, validation_metric: str) -> dict:
    """Vega-Lite bars of each candidate's validation metric with its bootstrap interval."""
    column = f"valid_{validation_metric}"
    chart_data = [
        {
            "candidate": f"{row['candidate_id']}",
            "value": _finite(row[column]),
            "low": _finite(row.get(f"{column}_low")),
            "high": _finite(row.get(f"{column}_high")),
        }
        for _, row in succeeded.iterrows()
    ]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": f"Validation {validation_metric} with bootstrap 95% interval",
        "width": 500,
        "data": {"values": chart_data},
        "encoding": {"y": {"field": "candidate", "type": "nominal", "sort": None}},
        "layer": [
            {
                "mark": "bar",
                "encoding": {"x": {"field": "value", "type": "quantitative", "title": column}},
            },
            {
                "mark": {"type": "rule", "color": "black"},
                "encoding": {
                    "x": {"field": "low", "type": "quantitative"},
                    "x2": {"field": "high"},
                },
            },
        ],
    }


def leaderboard_text(
    leaderboard: pd.DataFrame, validation_metric: str, caveats: list[str] | tuple = ()
) -> str:
    """The leaderboard's main columns as text, then one ``CAVEAT:`` line per caveat (the log).

    Args:
        leaderboard: From :func:`reclab.training.build_leaderboard`.
        validation_metric: The selection metric, e.g. ``ndcg_at_10``.
        caveats: What makes the winner less certain.
    """
    columns = [
        "candidate_id",
        "status",
        f"valid_{validation_metric}",
        f"test_{validation_metric}",
        "elapsed_seconds",
        "error_type",
    ]
    lines = [leaderboard[columns].to_string(index=False)]
    lines += [f"CAVEAT: {caveat}" for caveat in caveats]
    return "\n".join(lines)


def _succeeded(leaderboard: pd.DataFrame) -> pd.DataFrame:
    """The rows of candidates that trained (a leaderboard without ``status`` is all of them)."""
    if "status" not in leaderboard:
        return leaderboard
    return leaderboard[leaderboard["status"] == "ok"]


def frame_table(frame: pd.DataFrame) -> Any:
    """A card table with every row and whole cells.

    Metaflow's ``Table.from_dataframe`` keeps the first 5 rows and cuts every text column at 30
    characters once one value is longer (hyper-parameters, titles); the report needs them whole.
    Non-finite numbers show as "-" (the card's JSON has no NaN).
    """
    from metaflow.cards import Table

    rows = [[_cell(value) for value in row] for row in frame.itertuples(index=False, name=None)]
    return Table(data=rows, headers=[str(name) for name in frame.columns])


def _cell(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        finite = _finite(value)
        return "-" if finite is None else finite
    return str(value)


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def _chart(title: str, data: list[dict], mark: Any, encoding: dict, width: int = 420) -> dict:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": title,
        "width": width,
        "height": 260,
        "data": {"values": data},
        "mark": mark,
        "encoding": encoding,
    }


def run_report_components(
    leaderboard: pd.DataFrame,
    metric_curves: pd.DataFrame,
    validation_metric: str,
    k: int,
    stories: list[dict] | None = None,
) -> list:
    """The rest of the run report: curves, quality against fit time, bias, sample users.

    Args:
        leaderboard: From :func:`reclab.training.build_leaderboard` (best first).
        metric_curves: From :func:`reclab.training.collect_metric_curves`.
        validation_metric: The selection metric, e.g. ``ndcg_at_10``.
        k: The leaderboard cutoff.
        stories: From :func:`sample_user_stories`.

    Returns:
        Metaflow card components, in display order.
    """
    leaderboard = _succeeded(leaderboard)
    return (
        _curve_components(leaderboard, metric_curves)
        + _fit_time_components(leaderboard, validation_metric)
        + _bias_components(leaderboard, k)
        + _story_components(stories or [])
    )


def _curve_components(leaderboard: pd.DataFrame, metric_curves: pd.DataFrame) -> list:
    """NDCG@K and Recall@K charts of each family's best candidate on the test window."""
    from metaflow.cards import Markdown, VegaChart

    best_per_family = leaderboard.drop_duplicates("family")[["candidate_id", "family"]]
    curves = metric_curves[
        metric_curves["candidate_id"].isin(best_per_family["candidate_id"])
        & (metric_curves["window"] == "test")
    ]
    if curves.empty:
        return []
    components: list = [
        Markdown(
            "## NDCG@K and Recall@K, K = 1..50 (test window)\n\nEach family's best "
            "candidate by validation; same evaluator and protocol as the leaderboard."
        )
    ]
    points = [
        {
            "family": row.family,
            "k": int(row.k),
            "ndcg": _finite(row.ndcg),
            "recall": _finite(row.recall),
        }
        for row in curves.itertuples()
    ]
    for metric in ("ndcg", "recall"):
        components.append(
            VegaChart(
                _chart(
                    f"Test {metric.upper() if metric == 'ndcg' else 'Recall'}@K per family",
                    points,
                    {"type": "line", "point": True},
                    {
                        "x": {"field": "k", "type": "quantitative", "title": "K"},
                        "y": {"field": metric, "type": "quantitative", "title": metric},
                        "color": {"field": "family", "type": "nominal"},
                    },
                )
            )
        )
    return components


def _fit_time_components(leaderboard: pd.DataFrame, validation_metric: str) -> list:
    """A scatter of each candidate's validation metric against its fit seconds."""
    from metaflow.cards import Markdown, VegaChart

    column = f"valid_{validation_metric}"
    scatter = [
        {
            "candidate": row["candidate_id"],
            "family": row["family"],
            "fit_seconds": _finite(row["fit_seconds"]),
            "value": _finite(row[column]),
        }
        for _, row in leaderboard.iterrows()
    ]
    spec = _chart(
        f"Validation {validation_metric} against fit seconds (log scale)",
        scatter,
        {"type": "point", "filled": True, "size": 80},
        {
            "x": {
                "field": "fit_seconds",
                "type": "quantitative",
                "scale": {"type": "log"},
                "title": "fit seconds",
            },
            "y": {"field": "value", "type": "quantitative", "title": column},
            "color": {"field": "family", "type": "nominal"},
            "tooltip": [{"field": "candidate"}, {"field": "value"}],
        },
    )
    return [Markdown("## Quality against fit time"), VegaChart(spec)]


def _bias_components(leaderboard: pd.DataFrame, k: int) -> list:
    """Coverage and popularity share of each family's best candidate (when measured)."""
    from metaflow.cards import Markdown

    share = f"test_popular_share_at_{k}"
    coverage = f"test_coverage_at_{k}"
    if share not in leaderboard or coverage not in leaderboard:
        return []
    bias = leaderboard.drop_duplicates("family")[
        ["family", "candidate_id", coverage, share, f"test_ndcg_at_{k}"]
    ].round(4)
    return [
        Markdown(
            "## Coverage and popularity bias (test, best candidate per family)\n\n"
            f"`{coverage}`: distinct recommended items / train items. `{share}`: share of "
            "the recommendations that are among the top 1% most popular train items."
        ),
        frame_table(bias),
    ]


def _story_components(stories: list[dict]) -> list:
    """Each sampled user: their recent history, the winner's list and what they watched."""
    from metaflow.cards import Markdown

    components: list = []
    for story in stories:
        components.append(
            Markdown(
                f"## User {story['user_id']}: {story['n_train_items']} train items, "
                f"{story['hits']} of the winner's top-{story['k']} watched in the test window"
            )
        )
        for title, frame in (
            ("Recent history (last train items)", story["history"]),
            (f"Winner's recommendations ({story['family']}), hits marked", story["recommended"]),
            ("Actually watched in the test window", story["actual"]),
        ):
            components.append(Markdown(f"**{title}**"))
            components.append(frame_table(frame))
    return components


def sample_user_stories(
    encoded_dir: str, bundle: Any, n_users: int = 3, k: int = 10, seed: int = 0
) -> list[dict]:
    """A few test-window users with their recent history, the winner's list and what they watched.

    Users are drawn (seeded) among those the evaluator scores on test: in train, with a test
    item they did not have in train.
    """
    from reclab.encoded import load_train, load_window

    train = load_train(encoded_dir, bundle.user_map, bundle.item_map)
    test = load_window(encoded_dir, "test")
    warm = test.user_idx >= 0
    seen = train.seen
    new_pair = np.zeros(len(test.user_idx), dtype=bool)
    in_catalogue = warm & (test.item_idx < train.n_items)
    new_pair[warm] = True
    new_pair[in_catalogue] = ~np.asarray(
        seen[test.user_idx[in_catalogue], test.item_idx[in_catalogue]]
    ).ravel().astype(bool)
    candidates = np.unique(test.user_idx[warm & new_pair])
    if not candidates.size:
        return []
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(candidates, size=min(n_users, candidates.size), replace=False))
    metadata = bundle.item_metadata
    titles = metadata["title"] if metadata is not None and "title" in metadata else None

    def title_of(raw_ids: np.ndarray) -> list:
        if titles is None:
            return [""] * len(raw_ids)
        return [titles.get(raw, "") for raw in raw_ids]

    items, scores = bundle.model.recommend(chosen, k, exclude_seen=True)
    stories = []
    for row, user in enumerate(chosen):
        mine = train.user_idx == user
        order = np.argsort(-(train.ts[mine] if train.ts is not None else np.arange(mine.sum())))
        last = train.item_idx[mine][order[:5]]
        history = pd.DataFrame({"item_id": bundle.item_map.to_raw(last), "title": ""})
        history["title"] = title_of(history["item_id"].to_numpy())
        if train.ts is not None:
            history["date"] = pd.to_datetime(train.ts[mine][order[:5]], unit="s").strftime(
                "%Y-%m-%d"
            )
        watched_idx = np.unique(test.item_idx[test.user_idx == user])
        known = watched_idx[watched_idx < train.n_items]
        actual_ids = bundle.item_map.to_raw(known)
        actual = pd.DataFrame({"item_id": actual_ids, "title": title_of(actual_ids)})
        unseen = int((watched_idx >= train.n_items).sum())
        if unseen:
            actual.loc[len(actual)] = ["(new)", f"{unseen} item(s) not in the train catalogue"]
        valid = items[row] >= 0
        rec_ids = bundle.item_map.to_raw(items[row][valid])
        hit = np.isin(items[row][valid], known)
        recommended = pd.DataFrame(
            {
                "rank": np.arange(1, valid.sum() + 1),
                "item_id": rec_ids,
                "title": title_of(rec_ids),
                "score": np.round(scores[row][valid].astype(float), 4),
                "hit": np.where(hit, "HIT", ""),
            }
        )
        stories.append(
            {
                "user_id": bundle.user_map.to_raw([user])[0],
                "family": bundle.family,
                "k": k,
                "n_train_items": int(mine.sum()),
                "hits": int(hit.sum()),
                "history": history.astype({"item_id": str}),
                "recommended": recommended.astype({"item_id": str}),
                "actual": actual.astype({"item_id": str}),
            }
        )
    return stories
