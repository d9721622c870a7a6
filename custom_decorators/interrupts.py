"""Stop a local run cleanly on SIGINT or SIGTERM: no orphan tasks, no ``@magicdir`` leftovers.

Metaflow's local runtime handles Ctrl-C in a terminal, where every process of the run gets the
SIGINT. It does not handle a signal sent to the run's process alone (``kill``, a CI job being
cancelled, ``Runner`` killing its subprocess): SIGTERM ended the runtime at once and left its
task processes running as orphans, and a task killed without unwinding never removed its
``@magicdir`` folder. Wrap the flow's entry point in :func:`stop_cleanly`::

    if __name__ == "__main__":
        with stop_cleanly("TrainFlow"):
            TrainFlow()

What happens then:

* **The runtime** (``run``/``resume``): the first SIGINT or SIGTERM is passed on to its task
  processes as SIGTERM and turned into ``KeyboardInterrupt``, so Metaflow prints "Workflow
  interrupted", gives the tasks 5 seconds to stop and kills the rest. Once it has, the
  ``@magicdir`` folders that killed tasks could not remove are removed and listed, and the
  run's state is printed with the command that finishes it (``resume``).
* **A task** (``step``): SIGTERM, like SIGINT, raises ``KeyboardInterrupt`` in the step, so it
  unwinds and ``@magicdir`` removes its folder; a second signal during that clean-up is
  ignored. On Linux a task also asks the kernel for SIGTERM when its runtime dies, even by
  SIGKILL, so no task outlives its run.

Nothing here runs for other commands (``show``, ``card``, ...). Remote tasks (AWS Batch) are
stopped by Metaflow's own handling of their jobs; their folders live on their own machines.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _command(argv: list[str]) -> str | None:
    """``"step"``, ``"run"`` or ``"resume"`` for the Metaflow commands that matter here."""
    if "step" in argv and "--task-id" in argv:
        return "step"
    for command in ("run", "resume"):
        if command in argv[1:]:
            return command
    return None


def _raise_interrupt(signum: int, frame: Any) -> None:
    # One signal starts the clean-up; more would interrupt it half-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def _stop_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the runtime's own signal still reaches us
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


class _Orchestrator:
    """The runtime side: forward the signal to the tasks, then tidy up after Metaflow."""

    def __init__(self, flow_name: str) -> None:
        self.flow_name = flow_name
        self.interrupted_by: str | None = None
        self.run_ids: set[str] = set()

    def handle(self, signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.interrupted_by = signal.Signals(signum).name
        tasks = self._stop_tasks()
        print(
            f"{self.flow_name}: {self.interrupted_by} received; stopping {len(tasks)} running "
            "task(s) (each removes its @magicdir folder)",
            file=sys.stderr,
            flush=True,
        )
        raise KeyboardInterrupt(f"stopped by {self.interrupted_by}")

    def _stop_tasks(self) -> list[Any]:
        import psutil

        tasks = []
        for child in psutil.Process().children():
            try:
                argv = child.cmdline()
                if "--run-id" in argv:
                    self.run_ids.add(argv[argv.index("--run-id") + 1])
                child.send_signal(signal.SIGTERM)
                tasks.append(child)
            except (psutil.Error, IndexError):
                continue
        return tasks

    def tidy_up(self) -> None:
        """After Metaflow killed the tasks: remove their folders, say how to finish the run."""
        from custom_decorators.magic_dir import remove_task_dirs

        for run_id in sorted(self.run_ids):
            removed = remove_task_dirs(self.flow_name, run_id)
            if removed:
                print(
                    f"{self.flow_name}: removed {len(removed)} @magicdir folder(s) of tasks "
                    f"killed before they could: {', '.join(str(p) for p in removed)}",
                    file=sys.stderr,
                )
        runs = ", ".join(f"{self.flow_name}/{run_id}" for run_id in sorted(self.run_ids))
        print(
            f"{self.flow_name}: run {runs or '(not started)'} stopped by "
            f"{self.interrupted_by}; no task of it is left running. Finish it with "
            f"`python {sys.argv[0]} resume"
            + (f" --origin-run-id {sorted(self.run_ids)[-1]}`" if self.run_ids else "`")
            + " (finished steps are reused).",
            file=sys.stderr,
        )


@contextlib.contextmanager
def stop_cleanly(flow_name: str, argv: list[str] | None = None) -> Iterator[None]:
    """Run a flow's entry point with the signal handling described in the module docstring.

    Args:
        flow_name: The flow's class name (the ``@magicdir`` folders start with it).
        argv: The command line; ``sys.argv`` by default.
    """
    command = _command(sys.argv if argv is None else argv)
    if command == "step":
        signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGINT, _raise_interrupt)
        _stop_with_parent()
        yield
        return
    if command is None:
        yield
        return
    orchestrator = _Orchestrator(flow_name)
    signal.signal(signal.SIGTERM, orchestrator.handle)
    signal.signal(signal.SIGINT, orchestrator.handle)
    try:
        yield
    finally:
        if orchestrator.interrupted_by is not None:
            orchestrator.tidy_up()
