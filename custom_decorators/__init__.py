"""Step decorators shared by the flows in ``flows/`` (reached there through a symlink).

``magicdir`` carries a directory between steps as an artifact; see ``custom_decorators.magic_dir``.
"""

from custom_decorators.magic_dir import (
    MagicDirError,
    archive_directory,
    artifact_name,
    extract_archive,
    magicdir,
    magicdir_path,
)

__all__ = [
    "MagicDirError",
    "archive_directory",
    "artifact_name",
    "extract_archive",
    "magicdir",
    "magicdir_path",
]
