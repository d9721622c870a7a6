"""``@gpu_on_batch``: send one step to an AWS Batch GPU queue when the run's ``Config`` says so.

A hard-coded ``@batch`` makes every run need AWS: Metaflow checks at start that the datastore
is S3 ("The @batch decorator requires --datastore=s3"), so even a local ``run`` fails. This
step mutator adds ``@batch(gpu=..., image=..., queue=...)`` only when a flow ``Config`` asks
for remote execution. The ``Config`` is frozen when the run (or the Step Functions
deployment) starts and is shipped in the code package, so every remote task sees the same
value and rebuilds the same decorators.

Usage (the keys of ``COMPUTE_DEFAULTS`` are the mutator's keyword arguments)::

    from metaflow import Config, FlowSpec, resources, step

    from custom_decorators import COMPUTE_DEFAULTS, gpu_on_batch

    class MyFlow(FlowSpec):
        compute = Config("compute", default_value=COMPUTE_DEFAULTS)

        @gpu_on_batch(**compute)
        @resources(gpu=1, memory=14336)
        @step
        def train_gpu(self):
            ...

and, to run the GPU step on AWS Batch::

    python flow.py --config-value compute '{"remote": true, "image": "<ecr image>",
        "queue": "<gpu job queue>"}' run --with batch

Semantics:

* ``remote`` false (the default): the step is left as it is; ``@resources`` is only a hint
  that ``--with batch``, ``--with kubernetes`` and ``step-functions create`` read.
* ``remote`` true: ``@batch`` is added to the step with ``gpu`` (default 1) and, where set,
  ``image``, ``queue``, ``cpu`` and ``memory``. It replaces a ``@batch`` attached by
  ``--with batch`` (whose arguments then do not apply to this step); Metaflow combines the
  ``@batch`` and ``@resources`` values by taking the larger of each. ``@retry(times=1)`` is
  added too (unless the step has a ``@retry``): a remote task can die of causes outside the
  code (a reclaimed spot instance, a lost container); a local one fails the same way twice.
* Unknown keys in the ``Config`` raise a ``TypeError`` when the flow starts, and wrong types
  a ``RemoteComputeError``, so a typo never silently runs the step on the wrong machine.
"""

from __future__ import annotations

import logging
from typing import Any

from metaflow import StepMutator
from metaflow.exception import MetaflowException
from metaflow.user_decorators.mutable_step import MutableStep

logger = logging.getLogger(__name__)

# The default value of the flow's compute Config: run everything where the run runs.
COMPUTE_DEFAULTS: dict[str, Any] = {"remote": False, "image": "", "queue": ""}
# Retries of a remote GPU task: one, for a lost instance; @catch records what still fails.
REMOTE_RETRIES = 1


class RemoteComputeError(MetaflowException):
    """A compute ``Config`` value that ``@gpu_on_batch`` cannot turn into ``@batch``."""

    headline = "@gpu_on_batch error"


def batch_attributes(
    gpu: int = 1,
    image: str = "",
    queue: str = "",
    cpu: int | None = None,
    memory: int | None = None,
) -> dict[str, Any]:
    """Return the ``@batch`` keyword arguments for a GPU step.

    Args:
        gpu: GPUs per task, at least 1.
        image: Docker image; empty means Metaflow's default (``METAFLOW_BATCH_CONTAINER_IMAGE``).
        queue: AWS Batch job queue; empty means ``METAFLOW_BATCH_JOB_QUEUE``.
        cpu: vCPUs per task, or ``None`` to leave it to ``@resources``.
        memory: Memory per task in MiB, or ``None`` to leave it to ``@resources``.

    Returns:
        The keyword arguments, without the unset ones, e.g. ``{"gpu": 1, "image": "x"}``.

    Raises:
        RemoteComputeError: If a value has the wrong type or ``gpu``, ``cpu`` or ``memory``
            is not a positive integer.
    """
    for name, value in (("image", image), ("queue", queue)):
        if not isinstance(value, str):
            raise RemoteComputeError(f"compute Config: {name} must be a string, got {value!r}.")
    for name, value, optional in (
        ("gpu", gpu, False),
        ("cpu", cpu, True),
        ("memory", memory, True),
    ):
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RemoteComputeError(
                f"compute Config: {name} must be a positive integer, got {value!r}."
            )
    attributes: dict[str, Any] = {"gpu": gpu}
    attributes.update(
        {
            name: value
            for name, value in (
                ("image", image),
                ("queue", queue),
                ("cpu", cpu),
                ("memory", memory),
            )
            if value
        }
    )
    return attributes


class gpu_on_batch(StepMutator):  # noqa: N801 -- decorators are lower case in Metaflow
    """Add ``@batch(gpu=1, image=..., queue=...)`` to a step when ``remote`` is true.

    Takes the compute ``Config`` unpacked as keyword arguments (``@gpu_on_batch(**compute)``);
    see the module docstring.
    """

    def init(
        self,
        remote: bool = False,
        image: str = "",
        queue: str = "",
        gpu: int = 1,
        cpu: int | None = None,
        memory: int | None = None,
    ) -> None:
        """Check the compute settings (Metaflow calls this once the Config is known).

        Args:
            remote: Whether the step runs on AWS Batch.
            image: Docker image for the step; empty means Metaflow's default.
            queue: AWS Batch job queue; empty means ``METAFLOW_BATCH_JOB_QUEUE``.
            gpu: GPUs per task.
            cpu: vCPUs per task, or ``None`` to leave it to ``@resources``.
            memory: Memory per task in MiB, or ``None`` to leave it to ``@resources``.

        Raises:
            RemoteComputeError: If ``remote`` is not a boolean or a value is invalid.
        """
        if not isinstance(remote, bool):
            raise RemoteComputeError(
                f"compute Config: remote must be true or false, got {remote!r}."
            )
        self.remote = remote
        self.attributes = batch_attributes(
            gpu=gpu, image=image, queue=queue, cpu=cpu, memory=memory
        )

    def mutate(self, mutable_step: MutableStep) -> None:
        """Add ``@batch`` to the step if the run is remote.

        Args:
            mutable_step: The step this mutator decorates.
        """
        if not self.remote:
            return
        logger.debug("@gpu_on_batch adds @batch(%s) and @retry(times=1)", self.attributes)
        mutable_step.add_decorator(
            "batch", deco_kwargs=dict(self.attributes), duplicates=MutableStep.OVERRIDE
        )
        mutable_step.add_decorator(
            "retry", deco_kwargs={"times": REMOTE_RETRIES}, duplicates=MutableStep.IGNORE
        )
