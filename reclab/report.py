"""Metaflow card content for a training run: the leaderboard and the validation metric chart.

Card components are built here, not in the flow, so the flow stays a list of calls. Charts are
Vega-Lite specs rendered by the card's bundled JavaScript: the card works offline.
"""

from __future__ import annotations

import pandas as pd


def leaderboard_components(leaderboard: pd.DataFrame, validation_metric: str, split: dict) -> list:
    """Components for the join step's card.

    Args:
        leaderboard: From :func:`reclab.training.build_leaderboard`.
        validation_metric: The metric candidates were ranked by, e.g. ``ndcg_at_10``.
        split: The split artifact (dates and window counts).

    Returns:
        Metaflow card components, in display order.
    """
    from metaflow.cards import Markdown, Table, VegaChart

    best = leaderboard.iloc[0]
    column = f"valid_{validation_metric}"
    test_value = best[f"test_{validation_metric}"]
    header = (
        f"# Training run\n\nBest: **{best['family']}** `{best['params']}` with validation "
        f"{validation_metric} = {best[column]:.4f} (test {test_value:.4f}).\n\n"
        f"Split ({split.get('method', '')}): train < {split.get('training_end_date')} <= "
        f"valid < {split.get('validation_end_date')} <= test."
    )
    shown = [c for c in leaderboard.columns if not c.endswith(("_low", "_high"))]
    table = leaderboard[shown].copy()
    for name in table.columns:
        if pd.api.types.is_float_dtype(table[name]):
            table[name] = table[name].round(4)
    chart_data = [
        {
            "candidate": f"{row['candidate_id']}",
            "value": _finite(row[column]),
            "low": _finite(row.get(f"{column}_low")),
            "high": _finite(row.get(f"{column}_high")),
        }
        for _, row in leaderboard.iterrows()
    ]
    spec = {
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
    return [
        Markdown(header),
        VegaChart(spec),
        Markdown("## Leaderboard"),
        Table.from_dataframe(table),
    ]


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None
