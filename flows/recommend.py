"""Recommendations from the winner of a TrainFlow run, on the command line.

Examples::

    python flows/recommend.py user 196 --k 5
    python flows/recommend.py user 196 42 --json
    python flows/recommend.py new-user --items 50,172,181 --ratings 5,4,5 --explain
    python flows/recommend.py similar 50 --filter item_genres=Sci-Fi
    python flows/recommend.py info --run-id TrainFlow/1712
    python flows/recommend.py user 196 --family sar --explain

The run is the production run (tagged ``production``), else the latest successful TrainFlow
run, unless ``--run-id`` or ``--tag`` says otherwise;
Metaflow's usual ``METAFLOW_*`` settings say where the datastore is. Bad input prints one
message on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from reclab.errors import InputError


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _include(value: str) -> list[dict]:
    """``ITEM@POS,ITEM@POS`` -> include_items entries."""
    out = []
    for part in _csv(value):
        item, sep, position = part.rpartition("@")
        if not sep or not item:
            raise argparse.ArgumentTypeError(f"{part!r} is not ITEM@POSITION (e.g. 1682@1)")
        try:
            out.append({"item_id": item, "position": int(position)})
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"position {position!r} in {part!r} is not an integer"
            ) from None
    return out


def _filter(value: str) -> tuple[str, list[str]]:
    """``column=value[,value]`` -> (column, values)."""
    column, sep, values = value.partition("=")
    if not sep or not column.strip() or not _csv(values):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not column=value[,value] (e.g. item_genres=Comedy,Drama)"
        )
    return column.strip(), _csv(values)


def _ratings(value: str) -> list[float]:
    try:
        return [float(part) for part in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ratings {value!r} is not a list of numbers") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line: four subcommands sharing the run, k, rules and output options."""
    common = argparse.ArgumentParser(add_help=False)
    run = common.add_argument_group("run")
    run.add_argument("--run-id", help="TrainFlow run id ('123' or 'TrainFlow/123')")
    run.add_argument("--tag", help="latest successful run with this tag, e.g. best_model:sar")
    run.add_argument(
        "--family",
        help="serve this family's best candidate of the run instead of the winner (e.g. sar, "
        "for explanations)",
    )
    out = common.add_argument_group("output")
    out.add_argument("--k", type=int, default=10, help="number of items (default 10)")
    out.add_argument("--explain", action="store_true", help="show 'because you watched' items")
    out.add_argument("--json", action="store_true", help="print the JSON response")
    rules = common.add_argument_group("business rules")
    rules.add_argument("--exclude-items", type=_csv, help="raw item ids never shown: 1,2,3")
    rules.add_argument(
        "--exclude-top-popular", type=int, help="drop the N most popular train items"
    )
    rules.add_argument(
        "--include-items", type=_include, help="force items at ranks: ITEM@POS,ITEM@POS"
    )
    rules.add_argument(
        "--filter",
        type=_filter,
        action="append",
        dest="filters",
        help="keep items whose metadata column has one of the values: column=value[,value] "
        "(repeatable; list columns such as item_genres match by membership)",
    )
    parser = argparse.ArgumentParser(
        prog="recommend.py", description=__doc__.split("\n\n")[0], parents=[]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    user = sub.add_parser("user", parents=[common], help="top-k for known or unknown users")
    user.add_argument("user_ids", nargs="+", help="raw user ids")
    new = sub.add_parser("new-user", parents=[common], help="top-k for a history of items")
    new.add_argument("--items", type=_csv, required=True, help="raw item ids: 50,172,181")
    new.add_argument("--ratings", type=_ratings, help="one rating per item: 5,4,5")
    similar = sub.add_parser("similar", parents=[common], help="items similar to one item")
    similar.add_argument("item_id", help="raw item id")
    sub.add_parser("info", parents=[common], help="what is served and by which family")
    return parser


def rules_from_args(args: argparse.Namespace) -> dict | None:
    """The rules dict of the command line options (None when no rule is given)."""
    rules: dict = {}
    if args.exclude_items:
        rules["exclude_items"] = args.exclude_items
    if args.exclude_top_popular is not None:
        rules["exclude_top_popular"] = args.exclude_top_popular
    if args.include_items:
        rules["include_items"] = args.include_items
    if args.filters:
        filters: dict[str, list] = {}
        for column, values in args.filters:
            filters.setdefault(column, []).extend(values)
        rules["filters"] = filters
    return rules or None


def format_response(response: dict) -> str:
    """A readable table of one response: header, then rank, item id, score, title."""
    if "user_id" in response:
        who = "new user" if response["user_id"] is None else f"user {response['user_id']}"
    else:
        who = f"items similar to {response['item_id']}"
    lines = [
        f"{who}: {response['strategy']} by {response['served_by']}"
        + (" (cold start)" if response["cold_start"] else "")
    ]
    for rule in response["rules_applied"]:
        lines.append(f"  rule: {rule}")
    lines.append(f"{'rank':>4}  {'item_id':>8}  {'score':>10}  title")
    for item in response["items"]:
        score = "forced" if item["score"] is None else f"{item['score']:.4g}"
        lines.append(
            f"{item['rank']:>4}  {item['item_id']!s:>8}  {score:>10}  {item.get('title') or ''}"
        )
        for because in item.get("because", []):
            lines.append(
                f"{'':>26}because: {because['title']} ({because['item_id']}, "
                f"{because['weight']:.3g})"
            )
    for warning in response["warnings"]:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        from reclab.loading import load_run
        from reclab.serving import RecommendationService

        run = load_run(run_id=args.run_id, tag=args.tag)
        best = run.best
        if args.family is not None:
            families = run.per_family or {run.best.family: run.best}
            if args.family not in families:
                raise InputError(
                    f"--family {args.family!r}: run {run.pathspec} has no model of that family; "
                    f"choose one of {', '.join(families)}"
                )
            best = families[args.family]
        service = RecommendationService(best, run.per_family, run.pathspec)
        rules = rules_from_args(args)
        if args.command == "info":
            result = service.info()
        elif args.command == "user":
            result = service.recommend_many(
                args.user_ids, k=args.k, rules=rules, explain=args.explain
            )
        elif args.command == "new-user":
            result = service.recommend_for_items(
                args.items, ratings=args.ratings, k=args.k, rules=rules, explain=args.explain
            )
        else:
            result = service.similar_items(args.item_id, k=args.k, rules=rules)
    except InputError as error:
        print(f"recommend.py: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.command == "info":
        print(
            "\n".join(
                f"{key}: {json.dumps(value)}" for key, value in result.items() if key != "metrics"
            )
        )
    else:
        responses = result if isinstance(result, list) else [result]
        print("\n\n".join(format_response(response) for response in responses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
