"""Derived files of a run (the Pareto plot, the report) are written atomically: a write that fails midway keeps
the previous file as it was and leaves no temporary file."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest
from test_report import make_run

import nas._atomic
from nas._errors import RuntimeFailure
from nas.report import ReportError, write_report
from search import Choice, Objective, RandomStrategy, Space, Study


def _disk_full() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _tmp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.name.endswith(".tmp"))


def test_a_pareto_plot_that_fails_midway_keeps_the_previous_plot(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from nas.report._plots import plot_front

    study = Study(
        space=Space({"x": Choice([1, 2, 3, 4]), "y": Choice([1, 2, 3])}),
        objectives=[Objective("a"), Objective("b")],
        strategy=RandomStrategy(seed=0),
    )
    study.optimize(
        lambda t: {"a": float(t.params["x"]), "b": float(5 - t.params["x"] * t.params["y"])}, n_trials=6
    )
    path = plot_front(study, tmp_path / "pareto.png")
    before = path.read_bytes()
    assert before.startswith(b"\x89PNG")

    def half_then_full(self, fname, **kwargs):
        fname.write(b"\x89PNG partial")  # part of the file is on disk when the disk fills up
        raise _disk_full()

    monkeypatch.setattr(Figure, "savefig", half_then_full)
    with pytest.raises(RuntimeFailure, match="No space left on device"):
        plot_front(study, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pareto.png"]


@pytest.mark.parametrize("name", ["report.html", "report.md"])
def test_a_report_file_that_fails_midway_keeps_the_previous_file(name, tmp_path, monkeypatch):
    run = make_run(tmp_path, "r", n_trials=12)
    write_report([run])
    before = {p: p.read_bytes() for p in (run / "report.html", run / "report.md")}
    real_open = open

    class HalfWritten(io.FileIO):
        def write(self, data):  # half of the file, then the disk is full
            super().write(bytes(data)[: len(data) // 2])
            raise _disk_full()

    def failing_open(file, mode="r", *args, **kwargs):
        if Path(file).name.startswith(name + ".") and "b" in mode:
            return HalfWritten(file, "w")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(nas._atomic, "open", failing_open, raising=False)
    with pytest.raises(ReportError, match=f"cannot write .*{name}: No space left on device"):
        write_report([run])
    assert (run / name).read_bytes() == before[run / name]
    assert _tmp_files(run) == []
