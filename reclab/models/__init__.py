"""Model families behind one interface (:class:`reclab.models.base.Recommender`)."""

from reclab.models.base import Recommender, TrainData, ValidationWindow, top_k
from reclab.models.registry import FAMILIES, FamilySpec, make_model, parse_model_list

__all__ = [
    "FAMILIES",
    "FamilySpec",
    "Recommender",
    "TrainData",
    "ValidationWindow",
    "make_model",
    "parse_model_list",
    "top_k",
]
