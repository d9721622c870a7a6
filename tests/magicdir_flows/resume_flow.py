"""start -> middle -> end, where middle fails while MAGICDIR_TEST_FAIL=1, to test resume."""

import os
from pathlib import Path

from metaflow import FlowSpec, step

from custom_decorators import magicdir, magicdir_path


def listing(root: Path) -> list[str]:
    """Return the sorted relative paths under ``root``."""
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*"))


class MagicdirResumeFlow(FlowSpec):
    """A flow that fails in ``middle`` on the first run and succeeds on resume."""

    @magicdir(dir="data")
    @step
    def start(self):
        """Write the file the resumed step must still see."""
        (magicdir_path("data") / "start.txt").write_text("start")
        self.next(self.middle)

    @magicdir(dir="data")
    @step
    def middle(self):
        """Add a file, then fail if asked to."""
        data = magicdir_path("data")
        self.middle_seen = listing(data)
        self.middle_path = str(data)
        (data / "middle.txt").write_text("middle")
        if os.environ.get("MAGICDIR_TEST_FAIL") == "1":
            raise RuntimeError("planned failure for the resume test")
        self.next(self.end)

    @magicdir(dir="data")
    @step
    def end(self):
        """See both files."""
        self.end_seen = listing(magicdir_path("data"))


if __name__ == "__main__":
    MagicdirResumeFlow()
