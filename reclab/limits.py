"""The flow's ``limits`` Config: how long one candidate may train before it is stopped.

A Metaflow ``Config`` (not a ``Parameter``) because ``@timeout`` takes its value when the flow is
built, before parameters exist. Set it on the command line, before the command::

    python flows/train.py --config-value limits '{"candidate_seconds": 600}' run

The value is frozen with the run: its resumes use the same limit (Metaflow refuses
``--config-value`` with ``resume``), so a candidate that needs more time needs a new run.
"""

from __future__ import annotations

import json
from typing import Any

from reclab.errors import InputError, parse_json_object

# Four hours: at 10M rows the slowest CPU candidate took 24 min (FINDINGS.md); a fit that hangs
# still ends, and a run at 25M rows is not cut short by default.
LIMITS_DEFAULTS: dict[str, int] = {"candidate_seconds": 4 * 3600}
# The default as the JSON text the parser reads (a dict default would skip the parser).
LIMITS_DEFAULT_TEXT = json.dumps(LIMITS_DEFAULTS)


def parse_limits(text: str | dict[str, Any]) -> dict[str, int]:
    """Read and check the ``limits`` Config.

    Args:
        text: JSON object text, e.g. ``'{"candidate_seconds": 600}'`` (or the object itself);
            missing keys take their defaults.

    Returns:
        ``{"candidate_seconds": <int >= 1>}``.

    Raises:
        InputError: If the text is not a JSON object, names an unknown key, or the limit is not
            a whole number of seconds >= 1.
    """
    value = parse_json_object(text, "--config-value limits", '{"candidate_seconds": 600}')
    unknown = sorted(set(value) - set(LIMITS_DEFAULTS))
    if unknown:
        raise InputError(
            f"--config-value limits: unknown key(s) {unknown}; known: {sorted(LIMITS_DEFAULTS)}"
        )
    limits = {**LIMITS_DEFAULTS, **value}
    seconds = limits["candidate_seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        raise InputError(
            "--config-value limits: candidate_seconds must be a whole number of seconds >= 1 "
            f"(the time one candidate may take), got {seconds!r}"
        )
    return limits
