"""Errors for bad user input, so flows fail fast with a message that says how to fix it."""

from __future__ import annotations

import json
from typing import Any

try:
    # A MetaflowException is shown by Metaflow as its message, without a long traceback.
    from metaflow.exception import MetaflowException as _Base
except ImportError:  # reclab used without Metaflow
    _Base = Exception


class _MessageError(_Base):
    """An error shown as its message alone (Metaflow prints ``headline`` above it)."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.message = msg

    def __str__(self) -> str:
        return self.message


class InputError(_MessageError, ValueError):
    """Bad input from the user: a parameter, a file, a column or a dataset.

    The message always says what is wrong, where, and how to fix it.
    """

    headline = "Bad input"


class CandidatesFailedError(_MessageError):
    """Every candidate of a run failed: nothing can be chosen or shipped.

    The message names each candidate with its error and says how to resume after a fix.
    """

    headline = "Every candidate failed"


def parse_json_object(
    text: str | dict[str, Any], name: str, example: str, meaning: str = ""
) -> dict[str, Any]:
    """Read a JSON object given on the command line (or the object itself).

    Args:
        text: The JSON text, or an already parsed dict (returned as is).
        name: How the user gave it, for the messages, e.g. ``"--columns"``.
        example: A valid value to show, e.g. ``'{"user": 0, "item": 1}'``.
        meaning: What the object maps, e.g. ``"mapping roles to columns"``, for the message.

    Returns:
        The object.

    Raises:
        InputError: If the text is not valid JSON, or not a JSON object.
    """
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as error:
        raise InputError(
            f"{name} {text!r} is not valid JSON ({error}); expected e.g. '{example}'"
        ) from error
    if not isinstance(value, dict):
        raise InputError(
            f"{name} must be a JSON object{' ' + meaning if meaning else ''}, e.g. '{example}', "
            f"got {text!r}"
        )
    return value
