"""Where a run's artifacts live, read through Metaflow's public client, not its internals.

Metaflow records, for every task, the datastore its artifacts went to as task metadata
(``ds-type``: ``local``, ``s3``, ...; ``ds-root``: the root directory or URL). Reading it back
with the client (``current.task.metadata_dict``) follows ``--datastore`` and
``--datastore-root`` on the command line as well as the configuration, which
``metaflow_config.DEFAULT_DATASTORE`` alone would not.
"""

from __future__ import annotations

from typing import Any


def task_datastore(task: Any = None) -> tuple[str, str]:
    """The datastore type and root of a task (by default the running one).

    Args:
        task: A ``metaflow.Task``; None for ``current.task`` (inside a step).

    Returns:
        ``(ds_type, ds_root)``, e.g. ``("local", "/home/me/.metaflow")`` or
        ``("s3", "s3://bucket/metaflow")``.

    Raises:
        RuntimeError: If no task is given outside a running step, or the task has no datastore
            metadata.
    """
    if task is None:
        from metaflow import current

        task = current.task
        if task is None:
            raise RuntimeError("task_datastore() needs a running step or a metaflow.Task")
    metadata = task.metadata_dict
    if "ds-type" not in metadata or "ds-root" not in metadata:
        raise RuntimeError(f"task {task.pathspec} has no ds-type / ds-root metadata")
    return metadata["ds-type"], metadata["ds-root"]
