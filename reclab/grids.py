"""Hyper-parameter grids: which candidates each family is trained with.

The grids live in one JSON file (default: ``reclab/grids.json``, shipped in the code package;
``--grid-file`` points the flow at another). ``--grid quick`` (the default) keeps runs short;
``--grid full`` searches wider. Each entry maps by name onto the family's ``Params`` dataclass
(:mod:`reclab.models.base`); grids are checked against those fields before anything is trained,
so a typo in a parameter name fails in ``start``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reclab.errors import InputError
from reclab.models.base import parameter_names
from reclab.models.registry import FAMILIES

DEFAULT_GRID_FILE = Path(__file__).resolve().parent / "grids.json"
GRID_NAMES = ("quick", "full")


def load_grids(grid_file: str | Path | None = None) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Read and validate a grid file.

    Args:
        grid_file: Path of the JSON file; None for the default one.

    Returns:
        ``{family: {"quick": [params, ...], "full": [...]}}``.

    Raises:
        InputError: If the file is missing, not JSON, or names unknown families, grids or
            parameters (the message names the family's accepted parameters).
    """
    path = Path(grid_file) if grid_file else DEFAULT_GRID_FILE
    if not path.is_file():
        raise InputError(f"grid file {path} does not exist; pass --grid-file with a JSON file")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"grid file {path} is not valid JSON: {error}") from error
    if not isinstance(raw, dict):
        raise InputError(f"grid file {path} must hold a JSON object of families")
    grids = {}
    for family, by_name in raw.items():
        if family.startswith("_"):
            continue
        where = f"grid file {path}, family {family!r}"
        if family not in FAMILIES:
            raise InputError(f"{where}: unknown family; registered: {', '.join(FAMILIES)}")
        if not isinstance(by_name, dict) or set(by_name) - set(GRID_NAMES):
            raise InputError(f"{where}: expected an object with keys {GRID_NAMES}")
        accepted = set(parameter_names(FAMILIES[family].load_class()))
        for grid_name, candidates in by_name.items():
            if not isinstance(candidates, list) or not candidates:
                raise InputError(f"{where}, grid {grid_name!r}: expected a non-empty list")
            for params in candidates:
                if not isinstance(params, dict):
                    raise InputError(f"{where}, grid {grid_name!r}: {params!r} is not an object")
                unknown = sorted(set(params) - accepted)
                if unknown:
                    raise InputError(
                        f"{where}, grid {grid_name!r}: unknown parameter(s) {unknown}; "
                        f"{family} accepts {sorted(accepted) or 'none'}"
                    )
        grids[family] = by_name
    return grids


def grid_for(grids: dict, family: str, grid_name: str) -> list[dict[str, Any]]:
    """The candidates of one family in one grid (a family missing from the file: defaults)."""
    if grid_name not in GRID_NAMES:
        raise InputError(f"--grid must be one of {', '.join(GRID_NAMES)}, got {grid_name!r}")
    by_name = grids.get(family, {})
    return by_name.get(grid_name) or by_name.get("quick") or [{}]
