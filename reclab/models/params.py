"""One check for every family's numeric hyper-parameters.

Grid files are JSON, and Python's JSON reader accepts ``NaN`` and ``Infinity``; a plain
``value < 0`` test lets both through (every comparison with NaN is false), so a NaN
regularization reached ALS's fit and a NaN shrinkage was silently ignored by item KNN. Every
family's constructor checks its numbers with :func:`check_number`, so a bad value fails in the
flow's ``start`` step (which builds every candidate once) with the parameter's name and range.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    allow_none: bool = False,
) -> int | float | None:
    """Check one numeric hyper-parameter and return it as an ``int`` or ``float``.

    Args:
        name: The parameter's name, for the message.
        value: The value given (from a grid file, a constructor call).
        low: Smallest allowed value, or None for no lower bound.
        high: Largest allowed value, or None for no upper bound.
        low_open: The lower bound itself is not allowed (``> low``).
        high_open: The upper bound itself is not allowed (``< high``).
        integer: The value must be a whole number (``64`` or ``64.0``); returned as ``int``.
        allow_none: ``None`` is allowed (and returned as ``None``).

    Returns:
        The value as ``int`` (``integer=True``) or ``float``; ``None`` where allowed.

    Raises:
        ValueError: If the value is not a number (booleans and strings are not numbers), is NaN
            or infinite, is not whole where ``integer`` is set, or lies outside the range.
    """
    if value is None and allow_none:
        return None
    kind = "whole number" if integer else "number"
    wanted = " ".join(
        part for part in (f"a finite {kind}", _range_text(low, high, low_open, high_open)) if part
    )
    if allow_none:
        wanted += " (or null)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    # Whole numbers stay ints (a float would round a 64-bit seed).
    number = int(value) if isinstance(value, numbers.Integral) else float(value)
    if isinstance(number, float) and (
        not math.isfinite(number) or (integer and not number.is_integer())
    ):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high:
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(number) if integer else number


def check_field(params: Any, name: str, *bounds: float | None, **options: Any) -> None:
    """Check one field of a family's frozen ``Params`` dataclass and store it normalised.

    Called from the dataclass's ``__post_init__``, so every family's parameters are checked
    once, at construction, and hold plain values afterwards: ``int`` for ``integer`` fields,
    ``float`` for the others (None where allowed).

    Args:
        params: The ``Params`` instance being built.
        name: The field's name.
        *bounds: ``low`` and ``high`` as for :func:`check_number`.
        **options: The other keyword arguments of :func:`check_number`.

    Raises:
        ValueError: As :func:`check_number`.
    """
    value = check_number(name, getattr(params, name), *bounds, **options)
    if value is not None and not options.get("integer"):
        value = float(value)
    object.__setattr__(params, name, value)


def set_field(params: Any, name: str, value: Any) -> None:
    """Store a normalised value in a frozen ``Params`` dataclass (from its ``__post_init__``)."""
    object.__setattr__(params, name, value)
