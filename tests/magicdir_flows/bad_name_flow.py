"""A flow whose @magicdir name escapes its directory: it must fail before any step runs."""

from metaflow import FlowSpec, step

from custom_decorators import magicdir


class MagicdirBadNameFlow(FlowSpec):
    """Declares @magicdir(dir="../escape")."""

    @magicdir(dir="../escape")
    @step
    def start(self):
        """Never runs."""
        self.next(self.end)

    @step
    def end(self):
        """Never runs."""


if __name__ == "__main__":
    MagicdirBadNameFlow()
