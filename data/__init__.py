"""Data layer: named datasets, canonical interactions and their train/valid/test split.

Typical use, from a flow::

    source = resolve_source("movielens-100k")          # cheap: validate in `start`
    validate_split_params(row_sampling, training_end_date, validation_end_date)
    info = prepare_dataset(source, out_dir, row_sampling=10, seed=42)   # later step
"""

from data.hm import HmSource
from data.lastfm import LastFm360kSource
from data.movielens import MovieLens100kSource, MovieLensSource
from data.online_retail import OnlineRetailSource
from data.prepare import OUTPUT_FILES, prepare_dataset, validate_split_params
from data.registry import (
    DEFAULT_DATASET,
    KNOWN_DATASETS,
    NAMED_DATASETS,
    FileSource,
    Source,
    SyntheticSource,
    resolve_source,
)
from data.synthetic import generate_synthetic

__all__ = [
    "DEFAULT_DATASET",
    "KNOWN_DATASETS",
    "OUTPUT_FILES",
    "FileSource",
    "HmSource",
    "LastFm360kSource",
    "MovieLens100kSource",
    "MovieLensSource",
    "NAMED_DATASETS",
    "OnlineRetailSource",
    "Source",
    "SyntheticSource",
    "generate_synthetic",
    "prepare_dataset",
    "resolve_source",
    "validate_split_params",
]
