"""Step decorators shared by the flows in ``flows/`` (reached there through a symlink).

``magicdir`` carries a directory between steps as an artifact; see ``custom_decorators.magic_dir``.
``gpu_on_batch`` sends a step to an AWS Batch GPU queue when the flow's compute ``Config`` says
the run is remote; see ``custom_decorators.remote``. ``stop_cleanly`` wraps a flow's entry point
so SIGINT and SIGTERM stop its tasks without orphans or leftover folders; see
``custom_decorators.interrupts``. ``task_datastore`` says where a task's artifacts live, from its
public metadata; see ``custom_decorators.datastore``.
"""

from custom_decorators.datastore import task_datastore
from custom_decorators.interrupts import stop_cleanly
from custom_decorators.magic_dir import (
    MagicDirError,
    archive_directory,
    artifact_name,
    extract_archive,
    magicdir,
    magicdir_path,
)
from custom_decorators.remote import (
    COMPUTE_DEFAULTS,
    RemoteComputeError,
    batch_attributes,
    gpu_on_batch,
)

__all__ = [
    "COMPUTE_DEFAULTS",
    "MagicDirError",
    "RemoteComputeError",
    "archive_directory",
    "artifact_name",
    "batch_attributes",
    "extract_archive",
    "gpu_on_batch",
    "magicdir",
    "magicdir_path",
    "stop_cleanly",
    "task_datastore",
]
