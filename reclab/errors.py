"""Errors for bad user input, so flows fail fast with a message that says how to fix it."""

try:
    # A MetaflowException is shown by Metaflow as its message, without a long traceback.
    from metaflow.exception import MetaflowException as _Base
except ImportError:  # reclab used without Metaflow
    _Base = Exception


class InputError(_Base, ValueError):
    """Bad input from the user: a parameter, a file, a column or a dataset.

    The message always says what is wrong, where, and how to fix it.
    """

    headline = "Bad input"

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.message = msg

    def __str__(self) -> str:
        return self.message


class CandidatesFailedError(_Base):
    """Every candidate of a run failed: nothing can be chosen or shipped.

    The message names each candidate with its error and says how to resume after a fix.
    """

    headline = "Every candidate failed"

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.message = msg

    def __str__(self) -> str:
        return self.message
