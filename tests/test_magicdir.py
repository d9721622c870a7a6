"""Tests for ``@magicdir``: the archive format on its own, then real Metaflow runs.

The flow tests run the small flows in ``tests/magicdir_flows/`` with ``metaflow.Runner`` on the
local datastore, in a private ``METAFLOW_HOME``, datastore root and working directory, and
read the results back through the client objects the Runner returns.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from metaflow import Runner

from custom_decorators import (
    MagicDirError,
    archive_directory,
    artifact_name,
    extract_archive,
    magicdir_path,
)
from custom_decorators.magic_dir import validate_dir_name
from tests.conftest import point_client_at_session_datastore

REPO_ROOT = Path(__file__).resolve().parent.parent
FLOWS = Path(__file__).resolve().parent / "magicdir_flows"
DATA = artifact_name("data")


def _tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, payload in members:
            if payload is None:
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --- The archive format, without Metaflow -------------------------------------------------


def test_archive_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    # Same content, created in a different order, with different times and permissions.
    (first / "sub").mkdir(parents=True)
    (first / "sub" / "b.parquet").write_bytes(b"parquet")
    (first / "a.txt").write_text("a")
    (first / "empty").mkdir()
    (second / "empty").mkdir(parents=True)
    (second / "a.txt").write_text("a")
    (second / "sub").mkdir()
    (second / "sub" / "b.parquet").write_bytes(b"parquet")
    os.utime(second / "a.txt", (1, 1))
    (second / "a.txt").chmod(0o600)

    data = archive_directory(first)
    assert data == archive_directory(second)
    assert gzip.decompress(data)  # a plain gzip stream
    assert int.from_bytes(data[4:8], "little") == 0  # gzip header mtime
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a.txt", "empty", "sub", "sub/b.parquet"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}

    # The executable bit is content: it changes the bytes.
    (second / "a.txt").chmod(0o700)
    assert archive_directory(second) != data


def test_round_trip_and_missing_directory(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "deep" / "er").mkdir(parents=True)
    (source / "deep" / "er" / "f.bin").write_bytes(bytes(range(256)) * 5000)
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o755)
    (source / "hollow").mkdir()

    dest = tmp_path / "dest"
    extract_archive(archive_directory(source), dest)
    assert _files(dest) == _files(source)
    assert (dest / "hollow").is_dir()
    assert os.access(dest / "run.sh", os.X_OK)

    # A missing directory is an empty archive, the same as an empty directory.
    (tmp_path / "empty").mkdir()
    empty = archive_directory(tmp_path / "missing")
    assert empty == archive_directory(tmp_path / "empty")
    extract_archive(empty, tmp_path / "restored_empty")
    assert list((tmp_path / "restored_empty").iterdir()) == []


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "ok/../../evil.txt"])
def test_extract_refuses_escaping_members(tmp_path: Path, name: str) -> None:
    data = _tar_gz([(tarfile.TarInfo(name), b"evil")])
    dest = tmp_path / "a" / "b"
    with pytest.raises(MagicDirError, match="refusing archive member"):
        extract_archive(data, dest)
    assert not (tmp_path / "a" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_extract_refuses_links(tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("link")
    info.type = kind
    info.linkname = "/etc/passwd"
    with pytest.raises(MagicDirError, match="only regular files and directories"):
        extract_archive(_tar_gz([(info, None)]), tmp_path / "dest")


def test_archive_refuses_symlinks(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "link").symlink_to(tmp_path)
    with pytest.raises(MagicDirError, match="symlink"):
        archive_directory(tmp_path / "dir")


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "/abs", ".hidden", "a b", 3])
def test_bad_dir_names_are_refused(name: object) -> None:
    with pytest.raises(MagicDirError, match="simple relative name"):
        validate_dir_name(name)


def test_good_dir_names() -> None:
    assert artifact_name("nvt-output.v2") == "_magicdir_nvt-output.v2"


def test_magicdir_path_outside_a_decorated_step() -> None:
    with pytest.raises(MagicDirError, match=r"without @magicdir\(dir='data'\)"):
        magicdir_path("data")


# --- Real Metaflow runs --------------------------------------------------------------------


@pytest.fixture
def metaflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Isolate Metaflow in ``tmp_path`` and return the working directory for the runs."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "METAFLOW_")) or key == "MAGICDIR_TEST_FAIL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("USERNAME", "magicdir-tester")
    monkeypatch.setenv("METAFLOW_HOME", str(tmp_path / "metaflow_home"))
    monkeypatch.setenv("METAFLOW_DEFAULT_DATASTORE", "local")
    monkeypatch.setenv("METAFLOW_DEFAULT_METADATA", "local")
    monkeypatch.setenv("METAFLOW_DATASTORE_SYSROOT_LOCAL", str(tmp_path / "datastore"))
    monkeypatch.setenv("MAGICDIR_ROOT", str(tmp_path / "magicdir_root"))
    # The flows import custom_decorators from the repository root.
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", pythonpath)
    workdir = tmp_path / "work"
    workdir.mkdir()
    yield workdir
    # The Runner repointed the client's global metadata at this test's datastore.
    point_client_at_session_datastore()


def _run(flow: str, workdir: Path, **kwargs: object):
    with Runner(str(FLOWS / flow), show_output=False, cwd=str(workdir)) as runner:
        result = runner.run(**kwargs)
        assert result.status == "successful", result.stderr
        return result.run


def _assert_cleaned_up(paths: list[str], workdir: Path) -> None:
    root = Path(os.environ["MAGICDIR_ROOT"]) / "magicdir"
    for path in paths:
        assert Path(path).parent == root
        assert not Path(path).exists()
    assert list(root.iterdir()) == []
    # Nothing went through the shared working directory.
    assert list(workdir.iterdir()) == []


def _archive_files(data: bytes, tmp_path: Path, name: str) -> dict[str, bytes]:
    extract_archive(data, tmp_path / name)
    return _files(tmp_path / name)


@pytest.mark.slow
def test_linear_chain_sees_earlier_files(metaflow_env: Path, tmp_path: Path) -> None:
    run = _run("linear_flow.py", metaflow_env)
    start, a, end = run["start"].task, run["a"].task, run["end"].task

    assert a["a_seen"].data == ["nested", "nested/start.txt"]
    assert end["end_seen"].data == ["a.txt", "nested", "nested/start.txt"]
    assert end["end_a_text"].data == "a"
    # Two directories on one step; "models" passed through "a", which does not declare it.
    assert end["end_models_seen"].data == ["model.bin"]
    assert "without @magicdir(dir='models')" in a["a_models_error"].data
    models = artifact_name("models")
    assert a[models].sha == start[models].sha == end[models].sha

    assert _archive_files(end[DATA].data, tmp_path, "end") == {
        "a.txt": b"a",
        "nested/start.txt": b"start",
    }
    # end only read "data", so it passed a's bytes on.
    assert end[DATA].sha == a[DATA].sha != start[DATA].sha
    paths = end["paths"].data
    assert len(set(paths)) == len(paths) == 5
    _assert_cleaned_up(paths, metaflow_env)


@pytest.mark.slow
def test_foreach_branches_are_isolated_and_join_uses_subfolders(
    metaflow_env: Path, tmp_path: Path
) -> None:
    run = _run("foreach_flow.py", metaflow_env, max_workers=3, mode="write")
    branches = {task["item"].data: task for task in run["branch"]}
    assert set(branches) == {"x", "y", "z"}
    for item, task in branches.items():
        assert task["branch_seen"].data == sorted(["base.txt", f"{item}.txt"])
    assert len({task[DATA].sha for task in branches.values()}) == 3

    join = run["join"].task
    # The branches really ran at the same time.
    times = join["branch_times"].data
    assert max(start for start, _ in times) < min(end for _, end in times)

    # Different archives: input i is restored into branch_<i>/, in inputs (foreach) order.
    assert join["branch_inputs"].data == ["x", "y", "z"]
    expected = sorted(
        [f"branch_{i}" for i in range(3)]
        + [f"branch_{i}/base.txt" for i in range(3)]
        + [f"branch_{i}/{item}.txt" for i, item in enumerate("xyz")]
    )
    assert join["join_seen"].data == expected
    assert run["end"].task["end_seen"].data == expected
    assert _archive_files(join[DATA].data, tmp_path, "join")["branch_2/z.txt"] == b"z"
    _assert_cleaned_up(join["branch_paths"].data, metaflow_env)


@pytest.mark.slow
def test_foreach_readers_reuse_bytes_and_join_restores_once(
    metaflow_env: Path,
) -> None:
    run = _run("foreach_flow.py", metaflow_env, max_workers=3, mode="read")
    start = run["start"].task
    branches = list(run["branch"])
    assert len(branches) == 3
    for task in branches:
        assert task["branch_seen"].data == ["base.txt"]

    join, end = run["join"].task, run["end"].task
    # Identical archives: restored once at the top level.
    assert join["join_seen"].data == ["base.txt"]
    assert end["end_seen"].data == ["base.txt"]
    # Nothing changed anywhere, so every task stored the start's exact bytes.
    shas = {task[DATA].sha for task in [start, join, end, *branches]}
    assert shas == {start[DATA].sha}
    assert join[DATA].data == start[DATA].data
    _assert_cleaned_up(join["branch_paths"].data, metaflow_env)


@pytest.mark.slow
def test_resume_restores_the_directory(
    metaflow_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    flow = str(FLOWS / "resume_flow.py")
    monkeypatch.setenv("MAGICDIR_TEST_FAIL", "1")
    with Runner(flow, show_output=False, cwd=str(metaflow_env)) as runner:
        failed = runner.run()
        assert failed.status == "failed"
    failed_middle = failed.run["middle"].task
    assert not failed_middle.successful
    assert "planned failure" in failed_middle.stderr
    # The failed task's private directory is gone and it stored no new archive.
    assert not Path(failed_middle["middle_path"].data).exists()
    assert failed_middle[DATA].sha == failed.run["start"].task[DATA].sha

    monkeypatch.delenv("MAGICDIR_TEST_FAIL")
    with Runner(flow, show_output=False, cwd=str(metaflow_env)) as runner:
        resumed = runner.resume(origin_run_id=failed.run.id)
        assert resumed.status == "successful", resumed.stderr
    run = resumed.run
    # start was cloned from the failed run; middle re-ran on its cloned output.
    assert run["start"].task.origin_pathspec == failed.run["start"].task.pathspec
    middle = run["middle"].task
    assert middle.origin_pathspec is None
    assert middle["middle_seen"].data == ["start.txt"]
    assert run["end"].task["end_seen"].data == ["middle.txt", "start.txt"]
    assert _archive_files(run["end"].task[DATA].data, tmp_path, "end") == {
        "middle.txt": b"middle",
        "start.txt": b"start",
    }
    _assert_cleaned_up([middle["middle_path"].data], metaflow_env)


@pytest.mark.parametrize(
    ("flow", "message"),
    [("bad_name_flow.py", "simple relative name"), ("twin_dir_flow.py", "appears 2 times")],
)
@pytest.mark.slow
def test_misuse_fails_before_any_step(metaflow_env: Path, flow: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, str(FLOWS / flow), "show"],
        cwd=metaflow_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
