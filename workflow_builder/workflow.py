"""Build, fit and apply the NVTabular workflow, and derive the id maps from its category files.

Layout written under ``out_dir``::

    nvt/train/, nvt/valid/, nvt/test/   NVTabular output (Categorify codes, Merlin schema tags)
    nvt/workflow/                       the fitted workflow, with categories/unique.*.parquet
    encoded/{train,valid,test}.parquet  user_idx, item_idx, weight, ts (epoch s) for our families

The workflow is fitted on train only, so ids first seen in validation or test go to NVTabular's
out-of-vocabulary code. ``encoded/`` keeps, for the evaluator, each unseen item and each cold
user distinct (see :meth:`reclab.id_maps.IdMap.to_idx_distinct_unknown`).

Scale. NVTabular on CPU works on pandas partitions, and per-row feature columns (strings,
genre lists) are Python objects there: at 10M rows with the synthetic features the fit took
218 s and the transform about 190 s. So:

* datasets are read in partitions of ``PART_SIZE`` (with one partition per file, Merlin's
  dtype sampling alone read the whole file: 7 s of a 9 s fit at 10M rows);
* ``with_features=False`` (no family of the run reads the NVTabular output: every CPU family
  works on ``encoded/``) fits Categorify on the two id columns only (read with pyarrow, with
  the weight the workflow passes through), and writes no ``nvt/<window>`` parquet; the id
  category files, and so the id maps, are the same as with features.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reclab.id_maps import IdMap

logger = logging.getLogger(__name__)

WINDOWS = ("train", "valid", "test")
USER_ID, ITEM_ID = "user_id", "item_id"
# Merlin dataset partitions: bounded memory per task, and sampling dtypes reads one of them.
PART_SIZE = "256MB"


@dataclass
class BuiltWorkflow:
    """What ``build_workflow`` produced.

    Attributes:
        user_map: Raw user id <-> user_idx.
        item_map: Raw item id <-> item_idx.
        user_features: Categorical/continuous user feature columns fed to NVTabular.
        item_features: Categorical/continuous item feature columns fed to NVTabular.
    """

    user_map: IdMap
    item_map: IdMap
    user_features: list[str] = field(default_factory=list)
    item_features: list[str] = field(default_factory=list)


def _feature_columns(schema: pd.Series, prefix: str) -> tuple[list[str], list[str]]:
    """Split ``prefix*`` columns into categorical ones and continuous (floating point) ones."""
    categorical, continuous = [], []
    for name, dtype in schema.items():
        if not name.startswith(prefix) or name in (USER_ID, ITEM_ID):
            continue
        (continuous if pd.api.types.is_float_dtype(dtype) else categorical).append(name)
    return categorical, continuous


def make_workflow(columns: pd.Series, category_dir: Path):
    """Create the (unfitted) NVTabular workflow for the canonical interactions columns.

    User and item ids are Categorified and tagged USER_ID / ITEM_ID; ``user_*`` and ``item_*``
    feature columns are Categorified (or normalised when floating point) and tagged USER / ITEM,
    which is how Merlin's towers find their inputs.

    Args:
        columns: Column name -> pandas dtype of the canonical train table.
        category_dir: Where Categorify writes its category files (never the working directory:
            parallel branches share it).

    Returns:
        An ``nvtabular.Workflow``.
    """
    import nvtabular as nvt
    from merlin.schema import Tags
    from nvtabular import ops

    out_path = str(category_dir)
    features = {prefix: _feature_columns(columns, prefix) for prefix in ("user_", "item_")}
    tags = {
        "user_": (ops.TagAsUserFeatures, Tags.USER),
        "item_": (ops.TagAsItemFeatures, Tags.ITEM),
    }
    graph = [USER_ID] >> ops.Categorify(out_path=out_path) >> ops.TagAsUserID()
    graph += [ITEM_ID] >> ops.Categorify(out_path=out_path) >> ops.TagAsItemID()
    for prefix, (categorical, _) in features.items():
        if categorical:
            graph += categorical >> ops.Categorify(out_path=out_path) >> tags[prefix][0]()
    for prefix, (_, continuous) in features.items():
        if continuous:
            graph += (
                continuous
                >> ops.FillMedian()
                >> ops.Normalize()
                >> ops.AddTags([tags[prefix][1], Tags.CONTINUOUS])
            )
    graph += ["weight"]
    return nvt.Workflow(graph)


def _read_schema(path: Path) -> pd.Series:
    schema = pq.read_schema(path)
    return pd.Series({f.name: f.type.to_pandas_dtype() for f in schema})


def encode_window(frame: pd.DataFrame, user_map: IdMap, item_map: IdMap) -> pd.DataFrame:
    """Encode a window's raw ids, keeping every cold user and every unseen item distinct.

    Args:
        frame: Canonical interactions with ``user_id``, ``item_id``, ``weight`` and ``ts``.
        user_map: Raw user id <-> user_idx.
        item_map: Raw item id <-> item_idx.

    Returns:
        ``user_idx`` (cold users < 0), ``item_idx`` (unseen items >= len(item_map)), ``weight``,
        ``ts`` (epoch seconds as float, NaN when the source has no timestamps).
    """
    ts = frame["ts"]
    if pd.api.types.is_datetime64_any_dtype(ts):
        epoch = (ts.dt.tz_localize(None) if ts.dt.tz is not None else ts).astype("int64") / 1e9
        epoch = epoch.where(ts.notna())
    else:
        epoch = pd.to_numeric(ts, errors="coerce").astype(float)
    return pd.DataFrame(
        {
            "user_idx": user_map.to_idx_distinct_unknown(frame[USER_ID], below=True),
            "item_idx": item_map.to_idx_distinct_unknown(frame[ITEM_ID]),
            "weight": frame["weight"].to_numpy(dtype=np.float64),
            "ts": epoch.to_numpy(dtype=np.float64),
        }
    )


def build_workflow(
    split_dir: str | Path,
    out_dir: str | Path,
    with_features: bool = True,
    keep_split_windows: bool = True,
) -> BuiltWorkflow:
    """Fit the NVTabular workflow on train and write the encoded windows.

    Args:
        split_dir: Directory with ``train.parquet``, ``valid.parquet`` and ``test.parquet`` in
            the canonical schema (``data.prepare_dataset`` writes it).
        out_dir: Directory to write ``nvt/`` and ``encoded/`` into.
        with_features: Categorify and tag the features too and write the transformed windows
            (``nvt/train`` ...), what the Merlin two-tower model reads; False fits the id
            columns only and writes no transformed windows (enough for every other family).
        keep_split_windows: False deletes ``split_dir``'s three window files once they are
            encoded (the metadata tables stay): in the flow every later step reads
            ``encoded/`` and ``nvt/`` only, and the windows, one row per interaction with its
            features, were the larger part of what each later task restores.

    Returns:
        The id maps and the feature columns used (none without features).

    Raises:
        FileNotFoundError: If a window file is missing.
    """
    from merlin.io import Dataset

    split_dir, out_dir = Path(split_dir), Path(out_dir)
    for window in WINDOWS:
        if not (split_dir / f"{window}.parquet").exists():
            raise FileNotFoundError(f"{split_dir / f'{window}.parquet'} is missing")
    nvt_dir = out_dir / "nvt"
    encoded_dir = out_dir / "encoded"
    nvt_dir.mkdir(parents=True, exist_ok=True)
    encoded_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    columns = _read_schema(split_dir / "train.parquet")
    workflow = _fit_workflow([split_dir / "train.parquet"], columns, nvt_dir, with_features)
    user_map, item_map = _id_maps(nvt_dir)
    logger.info(
        "fitted NVTabular workflow on train (%s): %d users, %d items (%.1f s)",
        "ids and features" if with_features else "ids only",
        len(user_map),
        len(item_map),
        time.perf_counter() - started,
    )
    for window in WINDOWS:
        started = time.perf_counter()
        source = split_dir / f"{window}.parquet"
        if with_features:
            dataset = Dataset(str(source), cpu=True, part_size=PART_SIZE)
            workflow.transform(dataset).to_parquet(str(nvt_dir / window), output_files=1)
        frame = pd.read_parquet(source, columns=[USER_ID, ITEM_ID, "weight", "ts"])
        encode_window(frame, user_map, item_map).to_parquet(encoded_dir / f"{window}.parquet")
        logger.info(
            "encoded %s: %d rows (%.1f s)", window, len(frame), time.perf_counter() - started
        )
    if not keep_split_windows:
        for window in WINDOWS:
            (split_dir / f"{window}.parquet").unlink()

    return _built(user_map, item_map, columns if with_features else None)


def build_all_data(
    split_dir: str | Path,
    out_dir: str | Path,
    with_features: bool = True,
    remove_split_windows: bool = False,
) -> BuiltWorkflow:
    """Fit the workflow on every window (train, valid, test) and encode them as one train set.

    This is the data of the refit for serving: the winner's recipe trained on everything the
    run has, with id maps that know every user and item of the data. The layout under
    ``out_dir`` is the one :func:`build_workflow` writes, with all interactions as ``train``::

        nvt/workflow/, nvt/train/ (with features only)   encoded/train.parquet

    Args:
        split_dir: The directory :func:`build_workflow` read (the three window files).
        out_dir: Where to write ``nvt/`` and ``encoded/``.
        with_features: As in :func:`build_workflow`.
        remove_split_windows: Delete the three window files afterwards (as
            ``keep_split_windows=False`` does in :func:`build_workflow`).

    Returns:
        The all-data id maps and the feature columns used.
    """
    from merlin.io import Dataset

    split_dir, out_dir = Path(split_dir), Path(out_dir)
    sources = [split_dir / f"{window}.parquet" for window in WINDOWS]
    for source in sources:
        if not source.exists():
            raise FileNotFoundError(f"{source} is missing")
    nvt_dir, encoded_dir = out_dir / "nvt", out_dir / "encoded"
    nvt_dir.mkdir(parents=True, exist_ok=True)
    encoded_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    columns = _read_schema(sources[0])
    workflow = _fit_workflow(sources, columns, nvt_dir, with_features)
    user_map, item_map = _id_maps(nvt_dir)
    if with_features:
        dataset = Dataset([str(s) for s in sources], cpu=True, part_size=PART_SIZE)
        workflow.transform(dataset).to_parquet(str(nvt_dir / "train"), output_files=1)
    read = [USER_ID, ITEM_ID, "weight", "ts"]
    encoded = pd.concat(
        [encode_window(pd.read_parquet(s, columns=read), user_map, item_map) for s in sources],
        ignore_index=True,
    )
    encoded.to_parquet(encoded_dir / "train.parquet")
    logger.info(
        "encoded all windows for the refit: %d rows, %d users, %d items (%.1f s)",
        len(encoded),
        len(user_map),
        len(item_map),
        time.perf_counter() - started,
    )
    if remove_split_windows:
        for source in sources:
            source.unlink()
    return _built(user_map, item_map, columns if with_features else None)


def _id_maps(nvt_dir: Path) -> tuple[IdMap, IdMap]:
    """The user and item id maps, from the fitted workflow's category files."""
    categories = nvt_dir / "workflow" / "categories"
    user_map = IdMap.from_category_file(categories / f"unique.{USER_ID}.parquet", USER_ID)
    item_map = IdMap.from_category_file(categories / f"unique.{ITEM_ID}.parquet", ITEM_ID)
    return user_map, item_map


def _built(user_map: IdMap, item_map: IdMap, columns: pd.Series | None) -> BuiltWorkflow:
    """The id maps and, given the window's columns (with features), its feature columns."""
    if columns is None:
        return BuiltWorkflow(user_map=user_map, item_map=item_map)
    user_cat, user_cont = _feature_columns(columns, "user_")
    item_cat, item_cont = _feature_columns(columns, "item_")
    return BuiltWorkflow(
        user_map=user_map,
        item_map=item_map,
        user_features=user_cat + user_cont,
        item_features=item_cat + item_cont,
    )


def _fit_workflow(sources: list[Path], columns: pd.Series, nvt_dir: Path, with_features: bool):
    """Fit the workflow on the given windows and save it to ``nvt_dir/workflow``.

    With features, NVTabular reads the windows in partitions; without, only the id columns
    (and the weight it passes through) are read, with pyarrow.

    Returns:
        The fitted ``nvtabular.Workflow``.
    """
    from merlin.io import Dataset

    if with_features:
        workflow = make_workflow(columns.drop(labels=["ts"], errors="ignore"), nvt_dir)
        workflow.fit(Dataset([str(s) for s in sources], cpu=True, part_size=PART_SIZE))
    else:
        id_columns = [USER_ID, ITEM_ID, "weight"]
        workflow = make_workflow(columns[id_columns], nvt_dir)
        ids = pa.concat_tables(pq.read_table(s, columns=id_columns) for s in sources).to_pandas()
        workflow.fit(Dataset(ids, cpu=True))
        del ids
    workflow.save(str(nvt_dir / "workflow"))
    return workflow
