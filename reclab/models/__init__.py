"""Model families behind one interface (:class:`reclab.models.base.Recommender`)."""

from reclab.models.base import Recommender, TrainData, top_k
from reclab.models.registry import FAMILIES, FamilySpec, make_model, parse_model_list

__all__ = [
    "FAMILIES",
    "FamilySpec",
    "Recommender",
    "TrainData",
    "make_model",
    "parse_model_list",
    "top_k",
]
