"""Failed candidates, selection among those that succeeded, thin-evidence caveats, the limits
Config, the numeric parameter check, the --scores-dir claim and split-date advice.

Plain functions, no Metaflow run: the fault suite (tests/test_faults.py) runs the same paths
through the real flow.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from metaflow.exception import MetaflowExceptionWrapper
from metaflow.plugins.timeout_decorator import TimeoutException

from custom_decorators.interrupts import _command
from custom_decorators.magic_dir import remove_task_dirs
from data.prepare import suggest_split_dates
from reclab.batch_scoring import CLAIM_FILE, claim_scores_location, write_batch_scores
from reclab.errors import CandidatesFailedError, InputError
from reclab.evaluation import EvaluationResult
from reclab.evidence import selection_caveats, thin_window_caveats
from reclab.limits import LIMITS_DEFAULTS, parse_limits
from reclab.models.params import check_number
from reclab.models.registry import make_model
from reclab.training import (
    CandidateFailure,
    CandidateResult,
    branch_outcome,
    build_leaderboard,
    gather_branches,
    select_best,
    summarise_run,
)
from tests.test_batch_scoring import _bundle


def _candidate(candidate_id: str) -> dict:
    return {"candidate_id": candidate_id, "family": candidate_id.split("-")[0], "params": {}}


def _result(candidate_id: str, ndcg: float, half_width: float = 0.01) -> CandidateResult:
    def evaluation(value: float) -> EvaluationResult:
        return EvaluationResult(
            metrics={"ndcg_at_10": value, "recall_at_10": value / 2},
            intervals={"ndcg_at_10": (value - half_width, value + half_width)},
            counts={"evaluated_users": 50},
            per_user=pd.DataFrame(),
        )

    return CandidateResult(
        candidate=_candidate(candidate_id),
        valid=evaluation(ndcg),
        test=evaluation(ndcg / 2),
        fit_seconds=0.1,
        recommend_seconds=0.1,
        model_payload=b"",
    )


def _wrapped(error: BaseException) -> MetaflowExceptionWrapper:
    """What @catch stores: the wrapper made while the exception is being handled."""
    try:
        raise error
    except BaseException as caught:  # noqa: BLE001 - re-wrapped like Metaflow does
        return MetaflowExceptionWrapper(caught)


def _failure(candidate_id: str, error_type: str = "ValueError") -> CandidateFailure:
    return CandidateFailure(_candidate(candidate_id), error_type, "boom", 1.5)


def test_branch_outcome_turns_a_caught_exception_into_a_failure() -> None:
    failure = branch_outcome(
        _candidate("als-0"), None, _wrapped(ValueError("NaN encountered\nmore lines")), 2.5
    )
    assert failure == CandidateFailure(_candidate("als-0"), "ValueError", "NaN encountered", 2.5)
    timed_out = branch_outcome(
        _candidate("als-1"), None, _wrapped(TimeoutException("Step train_cpu timed out")), 30.0
    )
    assert timed_out.error_type == "TimeoutException"
    assert "timed out" in timed_out.error
    result = branch_outcome(_candidate("sar-0"), _result("sar-0", 0.2), None, 4.0)
    assert isinstance(result, CandidateResult) and result.elapsed_seconds == 4.0
    assert branch_outcome(None, None, None, None) is None
    # A branch that neither failed nor produced a result is a failure too, never dropped.
    assert branch_outcome(_candidate("x-0"), None, None, 1.0).error_type == "MissingResult"


def test_gather_branches_reads_what_each_branch_left() -> None:
    class Branch:
        def __init__(self, **artifacts) -> None:
            self.__dict__.update(artifacts)

    results, failures = gather_branches(
        [
            Branch(input=_candidate("sar-0"), result=_result("sar-0", 0.2), elapsed_seconds=1.0),
            Branch(input=_candidate("als-0"), failure=_wrapped(KeyError("k")), elapsed_seconds=2.0),
            Branch(input=None, result=None, elapsed_seconds=0.0),
        ],
        "ndcg_at_10",
    )
    assert [r.candidate["candidate_id"] for r in results] == ["sar-0"]
    assert [(f.candidate["candidate_id"], f.error_type) for f in failures] == [
        ("als-0", "KeyError")
    ]


def test_failed_rows_come_last_and_are_never_chosen() -> None:
    board = build_leaderboard(
        [_result("a-0", 0.1), _result("b-0", 0.3)],
        "ndcg_at_10",
        [_failure("c-0"), _failure("d-0", "TimeoutException")],
    )
    assert board["candidate_id"].tolist() == ["b-0", "a-0", "c-0", "d-0"]
    assert board["status"].tolist() == ["ok", "ok", "failed", "failed"]
    assert board["error_type"].tolist() == ["", "", "ValueError", "TimeoutException"]
    assert board["elapsed_seconds"].iloc[2:].tolist() == [1.5, 1.5]
    assert board["valid_ndcg_at_10"].iloc[2:].isna().all()
    assert select_best(board, "ndcg_at_10") == "b-0"
    only_failures = build_leaderboard([], "ndcg_at_10", [_failure("c-0")])
    with pytest.raises(ValueError, match="no candidate succeeded"):
        select_best(only_failures, "ndcg_at_10")


def test_every_candidate_failing_is_one_message_naming_each() -> None:
    failures = [_failure("als-0"), _failure("als-1", "TimeoutException")]
    with pytest.raises(CandidatesFailedError) as raised:
        summarise_run([], "ndcg_at_10", None, None, None, {}, failures, "resume it")
    message = str(raised.value)
    assert "all 2 candidates failed" in message
    assert "als-0 (ValueError: boom, after 1.5 s)" in message
    assert "als-1 (TimeoutException" in message and "then resume it" in message


def test_overlapping_intervals_are_a_caveat_and_separated_ones_are_not() -> None:
    board = build_leaderboard(
        [_result("a-0", 0.30, 0.05), _result("b-0", 0.28, 0.05), _result("c-0", 0.1, 0.01)],
        "ndcg_at_10",
    )
    assert board["overlaps_best"].tolist() == [True, True, False]
    (caveat,) = selection_caveats(board, "ndcg_at_10", {})
    assert "a-0" in caveat and "overlaps the intervals of 1 other candidate" in caveat
    assert "b-0: [0.2300, 0.3300]" in caveat
    apart = build_leaderboard([_result("a-0", 0.3), _result("b-0", 0.1)], "ndcg_at_10")
    assert selection_caveats(apart, "ndcg_at_10", {"caveats": []}) == []
    # A metric without bootstrap intervals says the separation is not measured.
    (unmeasured,) = selection_caveats(apart, "recall_at_10", {})
    assert "no bootstrap interval" in unmeasured


def test_thin_windows_are_named_with_their_user_counts() -> None:
    assert thin_window_caveats({"valid": 30, "test": 200}) == []
    valid, test = thin_window_caveats({"valid": 1, "test": 29})
    assert valid.startswith("the validation window has only 1 evaluable user (fewer than 30)")
    assert "100.0%" in valid
    assert test.startswith("the test window has only 29 evaluable users")
    board = build_leaderboard([_result("a-0", 0.3), _result("b-0", 0.1)], "ndcg_at_10")
    split = {"caveats": thin_window_caveats({"valid": 1, "test": 29})}
    assert selection_caveats(board, "ndcg_at_10", split)[:2] == [valid, test]


def test_limits_config_defaults_and_refusals() -> None:
    assert parse_limits("{}") == LIMITS_DEFAULTS
    assert parse_limits('{"candidate_seconds": 5}') == {"candidate_seconds": 5}
    for bad, message in (
        ("{oops", "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"candidate_minutes": 5}', "unknown key"),
        ('{"candidate_seconds": 0}', "whole number of seconds >= 1"),
        ('{"candidate_seconds": 2.5}', "whole number of seconds >= 1"),
        ('{"candidate_seconds": true}', "whole number of seconds >= 1"),
    ):
        with pytest.raises(InputError, match=message):
            parse_limits(bad)


@pytest.mark.parametrize(
    ("value", "kwargs", "ok"),
    [
        (0.5, {"low": 0}, True),
        (float("nan"), {"low": 0}, False),
        (float("inf"), {}, False),
        (-1e-9, {"low": 0}, False),
        (0, {"low": 0, "low_open": True}, False),
        (1.0, {"low": 0, "high": 1, "high_open": True}, False),
        (64.0, {"low": 1, "integer": True}, True),
        (8.5, {"low": 1, "integer": True}, False),
        (True, {"low": 0}, False),
        ("16", {"low": 1}, False),
        (None, {"allow_none": True}, True),
        (None, {}, False),
        (2**63 - 1, {"low": 0, "integer": True}, True),
        (np.float32(0.25), {"low": 0}, True),
    ],
)
def test_check_number(value, kwargs, ok) -> None:
    if ok:
        checked = check_number("x", value, **kwargs)
        assert checked == value or (value is None and checked is None)
    else:
        with pytest.raises(ValueError, match="x must be a finite"):
            check_number("x", value, **kwargs)


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("als", {"regularization": float("nan")}),
        ("als", {"alpha": float("inf")}),
        ("als", {"factors": 0}),
        ("item_knn", {"shrinkage": float("nan")}),
        ("item_knn", {"n_neighbors": 2.5}),
        ("sar", {"time_decay_half_life_days": float("nan")}),
        ("recent_popularity", {"half_life_days": float("nan")}),
        ("random", {"seed": -1}),
        ("ncf", {"learning_rate": float("nan")}),
        ("ncf", {"dropout": float("inf")}),
        ("two_tower", {"temperature": float("nan")}),
        ("two_tower", {"mlp_dims": [64, float("nan")]}),
    ],
)
def test_every_family_refuses_non_finite_and_out_of_range_numbers(family, params) -> None:
    name = next(iter(params))
    with pytest.raises(ValueError, match=f"{name.rstrip('s') if name == 'mlp_dims' else name}"):
        make_model(family, params, seed=0)


def test_scores_dir_is_claimed_by_one_run(tmp_path) -> None:
    location = str(tmp_path / "shared" / "scores")
    claim_scores_location(location, "TrainFlow/1")
    with pytest.raises(InputError, match="claimed by run TrainFlow/1"):
        claim_scores_location(location, "TrainFlow/2")
    claim_scores_location(location, "TrainFlow/1")  # the same run again (a retried start)
    claim_scores_location(location, "TrainFlow/3", previous_owner="TrainFlow/1")  # its resume
    with pytest.raises(InputError, match="is not the empty directory claimed by TrainFlow/1"):
        write_batch_scores(_bundle(), location, k=2, claim="TrainFlow/1")
    written = write_batch_scores(_bundle(), location, k=2, claim="TrainFlow/3")
    assert written.rows > 0 and not (tmp_path / "shared" / "scores" / CLAIM_FILE).exists()
    with pytest.raises(InputError, match="already exists"):
        claim_scores_location(location, "TrainFlow/4")
    other = tmp_path / "taken"
    other.mkdir()
    with pytest.raises(InputError, match="already exists"):
        claim_scores_location(str(other), "TrainFlow/5")


def test_suggested_split_dates_give_every_window_rows() -> None:
    days = [date(2024, 1, d) for d in (1, 2, 5, 9)]
    # The defaults collide (both on the last day): the suggestion moves the training date back.
    assert suggest_split_dates(days, date(2024, 1, 9), date(2024, 1, 9)) == (days[2], days[3])
    # Both on the first day: the dates move forward to the second and third days.
    assert suggest_split_dates(days, days[0], days[0]) == (days[1], days[2])
    # Good defaults are kept.
    assert suggest_split_dates(days, days[1], days[3]) == (days[1], days[3])
    assert suggest_split_dates(days[:2], days[0], days[1]) is None
    for train_day in days:
        for valid_day in days:
            train_end, valid_end = suggest_split_dates(days, train_day, valid_day)
            windows = (
                [d for d in days if d < train_end],
                [d for d in days if train_end <= d < valid_end],
                [d for d in days if d >= valid_end],
            )
            assert all(windows), (train_day, valid_day)


def test_remove_task_dirs_takes_only_that_runs_folders(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MAGICDIR_ROOT", str(tmp_path))
    base = tmp_path / "magicdir"
    for name in (
        "TrainFlow-12-train_cpu-7-data-abc",
        "TrainFlow-12-join-9-data-def",
        "TrainFlow-123-train_cpu-7-data-ghi",
        "OtherFlow-12-start-1-data-jkl",
    ):
        (base / name).mkdir(parents=True)
    removed = remove_task_dirs("TrainFlow", "12")
    assert sorted(p.name for p in removed) == [
        "TrainFlow-12-join-9-data-def",
        "TrainFlow-12-train_cpu-7-data-abc",
    ]
    assert sorted(p.name for p in base.iterdir()) == [
        "OtherFlow-12-start-1-data-jkl",
        "TrainFlow-123-train_cpu-7-data-ghi",
    ]


def test_interrupt_handling_knows_runtime_from_task_processes() -> None:
    assert _command(["train.py", "--no-pylint", "run", "--k", "5"]) == "run"
    assert _command(["train.py", "resume", "plan_candidates"]) == "resume"
    assert _command(["train.py", "step", "train_cpu", "--run-id", "1", "--task-id", "7"]) == "step"
    assert _command(["train.py", "card", "view", "join"]) is None


def test_caught_failure_keeps_its_elapsed_time_even_when_nan() -> None:
    failure = branch_outcome(_candidate("a-0"), None, _wrapped(RuntimeError("x")), None)
    assert math.isnan(failure.elapsed_seconds)
