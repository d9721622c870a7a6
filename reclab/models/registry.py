"""Registry of model families: the flow's ``--models`` names map to classes here.

Each entry names its module and class, so a family's heavy imports (TensorFlow, torch, Spark)
happen only when that family is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from reclab.errors import InputError
from reclab.models.base import Recommender, parameter_names


@dataclass(frozen=True)
class FamilySpec:
    """How to build one family and which hyper-parameter sets it is trained with.

    Attributes:
        name: The family name used on the command line and in the leaderboard.
        target: ``"module:Class"`` of the :class:`Recommender` subclass.
        uses_gpu: True for deep families that train on a GPU step when one is available.
        reads_nvtabular: True for families that read ``build_workflow``'s NVTabular output
            (Merlin's tagged parquet with the features); without one in the run, the workflow
            encodes only the ids.
    """

    name: str
    target: str
    uses_gpu: bool = False
    reads_nvtabular: bool = False

    def load_class(self) -> type[Recommender]:
        module_name, class_name = self.target.split(":")
        return getattr(importlib.import_module(module_name), class_name)


FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        FamilySpec("popularity", "reclab.models.baselines:PopularityRecommender"),
        FamilySpec("random", "reclab.models.baselines:RandomRecommender"),
        FamilySpec("recent_popularity", "reclab.models.recency:RecencyPopularityRecommender"),
        FamilySpec("item_knn", "reclab.models.knn:ItemKNNRecommender"),
        FamilySpec("sar", "reclab.models.sar:SARRecommender"),
        FamilySpec("ease", "reclab.models.ease:EASERecommender"),
        FamilySpec("als", "reclab.models.als:ALSRecommender"),
        FamilySpec("recency_blend", "reclab.models.blend:RecencyBlendRecommender"),
        FamilySpec("ncf", "reclab.models.ncf:NCFRecommender", uses_gpu=True),
        FamilySpec(
            "two_tower",
            "reclab.models.two_tower:TwoTowerRecommender",
            uses_gpu=True,
            reads_nvtabular=True,
        ),
    )
}


def parse_model_list(models: str) -> list[str]:
    """Parse ``--models``: ``"all"`` or a comma-separated list of registered family names.

    Raises:
        InputError: If the list is empty or names an unknown family.
    """
    if models.strip().lower() == "all":
        return list(FAMILIES)
    names = [name.strip() for name in models.split(",") if name.strip()]
    if not names:
        raise InputError(f"--models is empty; use 'all' or some of: {', '.join(FAMILIES)}")
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:
        raise InputError(
            f"--models names unknown model famil{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(repr(n) for n in unknown)}; registered families are: "
            f"{', '.join(FAMILIES)}"
        )
    return list(dict.fromkeys(names))


def reads_nvtabular_output(families: list[str]) -> bool:
    """Whether any of ``families`` reads the NVTabular output (features included)."""
    return any(FAMILIES[family].reads_nvtabular for family in families)


def make_model(family: str, params: dict[str, Any], seed: int) -> Recommender:
    """Instantiate a family with its hyper-parameters; ``seed`` is passed to families taking one.

    Raises:
        ValueError: If a parameter is unknown to the family (the message lists the accepted
            ones) or out of range.
    """
    cls = FAMILIES[family].load_class()
    if "seed" in parameter_names(cls) and "seed" not in params:
        params = {**params, "seed": seed}
    return cls(**params)
