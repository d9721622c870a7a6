"""Loading a TrainFlow run's bundles for serving, through the Metaflow client.

``TrainFlow`` versions the winner of a run (``best_model``) and the best candidate of every
family (``best_model_per_family``), each a :class:`reclab.bundle.ModelBundle`. :func:`load_run`
finds the run (by id, by tag, or by default the production run, else the latest successful one)
and returns them; a missing or unfinished run is an :class:`reclab.errors.InputError` that
says what to pick instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from reclab.bundle import ModelBundle
from reclab.errors import InputError


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
        run_id: ``"123"`` or ``"TrainFlow/123"``; None (and no tag) picks the production run
            (the newest successful run tagged ``production``, of the ``prod`` project branch
            when there is one), else the latest successful run.
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

    from reclab.production import PROD_BRANCH_TAG, production_runs

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
            # The production run (README: Going to production): the prod branch's first, then
            # any branch's (a user's local runs promote within their own branch), else the
            # latest successful run.
            run = next(
                (
                    runs[0]
                    for branch in (PROD_BRANCH_TAG, None)
                    if (runs := production_runs(flow_name, branch))
                ),
                None,
            )
            if run is None:
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
