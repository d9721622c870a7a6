"""Plain Python values for JSON answers and messages, and how filter values compare."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def plain(value: Any) -> Any:
    """Plain Python for json.dumps: numpy scalars and arrays, NaN -> None, dicts and lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray | pd.Index):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def norm(value: Any) -> Any:
    """Strings compare case-insensitively ("sci-fi" matches "Sci-Fi")."""
    return value.casefold() if isinstance(value, str) else value
