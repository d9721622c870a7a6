"""start -> a -> end: each step adds to the carried directory and sees what came before.

``start`` carries two directories; ``a`` only declares ``data``, so ``models`` passes through
it untouched as a plain artifact.
"""

from pathlib import Path

from metaflow import FlowSpec, step

from custom_decorators import MagicDirError, magicdir, magicdir_path


def listing(root: Path) -> list[str]:
    """Return the sorted relative paths under ``root``."""
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*"))


class MagicdirLinearFlow(FlowSpec):
    """Linear chain using @magicdir."""

    @magicdir(dir="data")
    @magicdir(dir="models")
    @step
    def start(self):
        """Write one file per directory, one of them nested."""
        data = magicdir_path("data")
        (data / "nested").mkdir()
        (data / "nested" / "start.txt").write_text("start")
        (magicdir_path("models") / "model.bin").write_bytes(b"\x00\x01")
        self.paths = [str(data), str(magicdir_path("models"))]
        self.next(self.a)

    @magicdir(dir="data")
    @step
    def a(self):
        """See start's file, add one, and show that ``models`` is not available here."""
        data = magicdir_path("data")
        self.a_seen = listing(data)
        (data / "a.txt").write_text("a")
        try:
            magicdir_path("models")
        except MagicDirError as err:
            self.a_models_error = str(err)
        self.paths = self.paths + [str(data)]
        self.next(self.end)

    @magicdir(dir="data")
    @magicdir(dir="models")
    @step
    def end(self):
        """See everything written upstream."""
        self.end_seen = listing(magicdir_path("data"))
        self.end_models_seen = listing(magicdir_path("models"))
        self.end_a_text = (magicdir_path("data") / "a.txt").read_text()
        self.paths = self.paths + [str(magicdir_path("data")), str(magicdir_path("models"))]


if __name__ == "__main__":
    MagicdirLinearFlow()
