"""Bad input is refused before any training, with a message that says how to fix it.

Each case runs the real flow CLI; failures in ``start`` must not reach ``get_dataset``, and a
window with no rows must stop in ``get_dataset``, before any model is trained.
"""

from __future__ import annotations

import shutil
import zipfile

import pytest

from tests.conftest import run_flow

pytestmark = pytest.mark.slow  # every test here runs the flow (or reads its run)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, ml100k_dir):
    root = tmp_path_factory.mktemp("bad-input")
    (root / "empty.csv").write_text("")
    (root / "plays.csv").write_text("customer,sku,qty\n1,2,3\n2,3,1\n")
    (root / "broken.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with zipfile.ZipFile(root / "ratings.xlsx", "w") as workbook:
        workbook.writestr("xl/workbook.xml", "<workbook/>")
    (root / "ratings.dat").write_text("1::10::5::978300760\n1::11::3::978300761\n2::10\n")
    corrupt = root / "corrupt"
    shutil.copytree(ml100k_dir, corrupt / "ml-100k")
    with open(corrupt / "ml-100k" / "u.data", "a") as handle:
        handle.write("1\t1\t1\t1\n")
    return root


def run_on_ml100k(ml100k_dir, *args: str, timeout: int = 900):
    """``flows/train.py run`` on the MovieLens-100k files, with more arguments."""
    return run_flow("run", "--data-dir", str(ml100k_dir.parent), *args, timeout=timeout)


def _file_args(path, columns='{"user": "customer", "item": "sku"}') -> list[str]:
    return ["--dataset", "file", "--interactions-file", str(path), "--columns", columns]


CASES = {
    "unknown dataset": (lambda f, d: ["--dataset", "nope"], "unknown dataset 'nope'"),
    "unknown family": (lambda f, d: ["--models", "popularity,nope"], "unknown model family"),
    "dates out of order": (
        lambda f, d: ["--training-end-date", "1998-03-31", "--validation-end-date", "1998-03-07"],
        "must be after training_end_date",
    ),
    "bad date format": (lambda f, d: ["--training-end-date", "7/3/1998"], "yyyy-mm-dd"),
    "sampling out of range": (lambda f, d: ["--row-sampling", "150"], "outside [0, 100]"),
    "missing file": (lambda f, d: _file_args(f / "nope.csv"), "does not exist"),
    "missing column": (
        lambda f, d: _file_args(f / "plays.csv", '{"user": "customer", "item": "product"}'),
        "['product'] not found",
    ),
    "empty file": (lambda f, d: _file_args(f / "empty.csv"), "is empty"),
    "unparsable file": (lambda f, d: _file_args(f / "broken.parquet"), "broken.parquet"),
    "spreadsheet": (lambda f, d: _file_args(f / "ratings.xlsx"), "export the sheet as CSV"),
    "inconsistent lines": (
        lambda f, d: _file_args(f / "ratings.dat", '{"user": 0, "item": 1}'),
        "line 3 splits into 2 fields on '::'",
    ),
    "checksum mismatch": (lambda f, d: ["--data-dir", str(f / "corrupt")], "checksum mismatch"),
    "validation metric": (lambda f, d: ["--validation-metric", "ndcg_at_5"], "ndcg_at_10"),
    "unknown ALS engine": (
        lambda f, d: ["--models", "als", "--als-engine", "sparkle"],
        "engine must be one of",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_in_start(case, bad_files, ml100k_dir) -> None:
    make_args, message = CASES[case]
    result = run_on_ml100k(ml100k_dir, *make_args(bad_files, ml100k_dir), timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Bad input" in output and message in output, output[-3000:]
    assert "/get_dataset/" not in output


def test_empty_window_fails_before_training(ml100k_dir) -> None:
    result = run_on_ml100k(
        ml100k_dir,
        "--training-end-date",
        "1997-01-01",
        "--validation-end-date",
        "1997-02-01",
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "the train window" in output and "has no rows" in output, output[-3000:]
    assert "/train_cpu/" not in output and "/build_workflow/" not in output
