"""Serve the winner of a TrainFlow run over HTTP (the SageMaker container contract).

Examples::

    python flows/serve.py                          # production run (else latest), 127.0.0.1:8080
    python flows/serve.py --run-id 1712 --port 9000
    python flows/serve.py --host 0.0.0.0 --tag best_model:sar --threads 8   # in a container
    RECLAB_RUN_ID=1712 python flows/serve.py --host 0.0.0.0 serve          # as SageMaker runs it

Routes: ``GET /ping`` (200 once the model is loaded, 503 before or if loading failed),
``POST /invocations`` (JSON query, see docs/serving_http.md) and ``GET /info``. The server
listens at once and loads the model in the background; Metaflow's usual ``METAFLOW_*``
settings say where the datastore is. See docs/serving_http.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from reclab.http_server import (
    MAX_BODY_BYTES,
    MAX_USER_IDS,
    ModelState,
    create_app,
    serve,
    warm_up,
)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be at least 1")
    return number


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port {number} is not in 0..65535")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="serve.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["serve"],
        help="optional: SageMaker starts the image as `docker run IMAGE serve`; accepted, ignored",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind: the default answers this machine only; use 0.0.0.0 in a "
        "container (SageMaker calls the container on port 8080)",
    )
    parser.add_argument("--port", type=_port, default=8080, help="TCP port (0: any free port)")
    which = parser.add_mutually_exclusive_group()
    # environment defaults: a SageMaker model sets Environment, not the container's arguments
    which.add_argument(
        "--run-id",
        default=os.environ.get("RECLAB_RUN_ID") or None,
        help="TrainFlow run id ('123' or 'TrainFlow/123'; env RECLAB_RUN_ID); default: the "
        "production run (else the latest successful run)",
    )
    which.add_argument(
        "--tag",
        default=os.environ.get("RECLAB_RUN_TAG") or None,
        help="latest successful run with this tag, e.g. best_model:sar (env RECLAB_RUN_TAG)",
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=4, help="worker threads answering requests"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=MAX_BODY_BYTES,
        help="larger request bodies get 413",
    )
    parser.add_argument(
        "--max-user-ids",
        type=_positive_int,
        default=MAX_USER_IDS,
        help="longer user_ids lists get 413",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Bind, start loading the model in the background, serve until stopped."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    def load():
        # imported here: the socket listens before Metaflow and the models are imported
        from reclab.serving import RecommendationService

        service = RecommendationService.from_run(run_id=args.run_id, tag=args.tag)
        warm_up(service)
        return service

    default = "the production run (else the latest successful run)"
    which = args.run_id or (f"tag {args.tag}" if args.tag else default)
    state = ModelState(load)
    app = create_app(state, max_body_bytes=args.max_body_bytes, max_user_ids=args.max_user_ids)

    def start_loading(host: str, port: int) -> None:
        logging.getLogger("serve").info("loading the model (%s) in the background", which)
        state.load_in_background()

    try:
        serve(
            app,
            host=args.host,
            port=args.port,
            threads=args.threads,
            max_body_bytes=args.max_body_bytes,
            on_bound=start_loading,
        )
    except OSError as error:  # e.g. the port is taken
        print(
            f"serve.py: error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
