"""A parallel foreach over three items, joined with @magicdir's merge rule.

``--mode write``: each branch writes ``<item>.txt``, so the join sees three different archives
and restores them into ``branch_<i>/``. ``--mode read``: branches only read, so every archive
is the start's bytes and the join restores it once at the top level.
"""

import time
from pathlib import Path

from metaflow import FlowSpec, Parameter, step

from custom_decorators import magicdir, magicdir_path

ITEMS = ["x", "y", "z"]


def listing(root: Path) -> list[str]:
    """Return the sorted relative paths under ``root``."""
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*"))


class MagicdirForeachFlow(FlowSpec):
    """Foreach fan-out and join using @magicdir."""

    mode = Parameter("mode", default="write", help="'write' or 'read' in the branches")

    @magicdir(dir="data")
    @step
    def start(self):
        """Validate the mode and write the shared base file."""
        if self.mode not in ("write", "read"):
            raise ValueError(f"--mode must be 'write' or 'read', got {self.mode!r}")
        (magicdir_path("data") / "base.txt").write_text("base")
        self.items = ITEMS
        self.next(self.branch, foreach="items")

    @magicdir(dir="data")
    @step
    def branch(self):
        """Write this item's file (write mode), wait for siblings, then check isolation."""
        data = magicdir_path("data")
        self.item = self.input
        self.branch_start = time.time()
        expected = ["base.txt"]
        if self.mode == "write":
            (data / f"{self.input}.txt").write_text(self.input)
            expected.append(f"{self.input}.txt")
        # Overlap with the sibling branches, which run at the same time.
        time.sleep(2)
        self.branch_seen = listing(data)
        if self.branch_seen != sorted(expected):
            raise AssertionError(f"branch {self.input} sees {self.branch_seen}")
        self.branch_path = str(data)
        self.branch_end = time.time()
        self.next(self.join)

    @magicdir(dir="data")
    @step
    def join(self, inputs):
        """Record what the merge rule restored; merge_artifacts must not trip on it."""
        self.merge_artifacts(
            inputs, exclude=["branch_seen", "branch_path", "branch_start", "item", "branch_end"]
        )
        self.branch_paths = [inp.branch_path for inp in inputs]
        self.branch_inputs = [inp.input for inp in inputs]
        self.branch_times = [(inp.branch_start, inp.branch_end) for inp in inputs]
        self.join_seen = listing(magicdir_path("data"))
        self.next(self.end)

    @magicdir(dir="data")
    @step
    def end(self):
        """See the joined directory."""
        self.end_seen = listing(magicdir_path("data"))


if __name__ == "__main__":
    MagicdirForeachFlow()
