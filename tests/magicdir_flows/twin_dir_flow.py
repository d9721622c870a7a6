"""A flow declaring the same @magicdir name twice on one step: it must fail before any step runs."""

from metaflow import FlowSpec, step

from custom_decorators import magicdir


class MagicdirTwinDirFlow(FlowSpec):
    """Declares @magicdir(dir="data") twice on start."""

    @magicdir(dir="data")
    @magicdir(dir="data")
    @step
    def start(self):
        """Never runs."""
        self.next(self.end)

    @step
    def end(self):
        """Never runs."""


if __name__ == "__main__":
    MagicdirTwinDirFlow()
