"""The report read at a glance: totals first, units for the magnitude, hypervolume as a share of its box,
human axis names, ticks that never overlap, model ids on the front, summarised warnings, tables that scroll,
and a check of the page in a real browser (headless Chromium, skipped where there is none)."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from test_report import SUSTAINABILITY, make_run

from nas.report import write_report
from nas.report._plots import (
    FrontSeries,
    HypervolumeCurve,
    energy_figure,
    fronts_figure,
    hypervolume_figure,
    parallel_figure,
)
from nas.report._units import axis_scale, duration_text, energy_text, mass_text
from search import Objective

ROOT = Path(__file__).resolve().parents[2]
OBJECTIVES = (
    Objective("error", "minimize", "%"),
    Objective("latency_ms", "minimize", "ms"),
    Objective("energy_mj", "minimize", "mJ"),
    Objective("params", "minimize", "count"),
)


def overlapping_tick_labels(fig: Figure) -> list[tuple[str, str]]:
    """Pairs of tick labels of one axis whose boxes overlap once the figure is drawn at its own size."""
    canvas = FigureCanvasAgg(fig)  # the renderer the report's PNGs are drawn with
    canvas.draw()
    renderer = canvas.get_renderer()
    found = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            boxes = [t.get_window_extent(renderer) for t in labels]
            for a in range(len(labels)):
                for b in range(a + 1, len(labels)):
                    if boxes[a].overlaps(boxes[b]):
                        found.append((labels[a].get_text(), labels[b].get_text()))
    return found


def series(n: int = 40, seed: int = 0) -> FrontSeries:
    """Values of the magnitudes that overlapped before: energies of 1e-5 mJ, latencies in a narrow band."""
    rng = np.random.default_rng(seed)
    values = np.column_stack([
        rng.uniform(1.5, 3.5, n),  # error, %
        rng.uniform(0.10412, 0.10498, n),  # latency, ms
        rng.uniform(2.0e-5, 3.2e-5, n),  # energy per inference, mJ
        rng.uniform(1.1e6, 4.3e6, n),  # parameters
    ])  # fmt: skip
    on_front = np.zeros(n, dtype=bool)
    on_front[:5] = True
    return FrontSeries(
        "run", values, np.ones(n, dtype=bool), on_front, on_front.copy(), np.arange(100, 100 + n)
    )


def test_the_overlap_check_finds_overlapping_labels() -> None:
    """The check below can fail: crowded long labels on a narrow axis are found."""
    fig = Figure(figsize=(2.0, 2.0))
    ax = fig.subplots()
    ax.set_xticks(np.linspace(0, 1, 12), [f"{v:.7f}" for v in np.linspace(0, 1, 12)])
    assert overlapping_tick_labels(fig)


@pytest.mark.parametrize("objectives", [OBJECTIVES[:2], OBJECTIVES[:3], OBJECTIVES])
def test_no_tick_labels_overlap_on_the_report_figures(objectives: tuple[Objective, ...]) -> None:
    s = series()
    s = FrontSeries(s.name, s.values[:, : len(objectives)], s.feasible, s.on_front, s.exported, s.ids)
    curve = HypervolumeCurve("run", np.arange(1, 41), np.linspace(0.1, 0.9, 40), np.cumsum(np.full(40, 3e-7)))
    figures = {
        "fronts": fronts_figure([s], objectives),
        "parallel": parallel_figure(s, objectives),
        "hypervolume": hypervolume_figure([curve]),
        "energy": energy_figure(
            [("Supernet training", 1.4e-4, "estimated"), ("Export", 3e-5, "measured-rapl")]
        ),
    }
    for name, fig in figures.items():
        assert overlapping_tick_labels(fig) == [], name


def test_axes_carry_human_names_with_units_chosen_for_the_magnitude() -> None:
    s = series()
    s = FrontSeries(s.name, s.values[:, :3], s.feasible, s.on_front, s.exported, s.ids)
    fig = fronts_figure([s], OBJECTIVES[:3])
    labels = {ax.get_xlabel() for ax in fig.axes} | {ax.get_ylabel() for ax in fig.axes}
    assert labels == {"Top-1 error (%)", "Latency (µs)", "Energy per inference (nJ)"}
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"100", "101", "102", "103", "104"} <= texts  # the exported models, labelled with their ids
    assert axis_scale(OBJECTIVES[1], [3.0, 12.0])[:2] == ("Latency (ms)", 1.0)
    assert axis_scale(OBJECTIVES[1], [1500.0])[:2] == ("Latency (s)", 1e-3)
    assert axis_scale(OBJECTIVES[3], [2e6]) == ("Parameters", 1.0, True)
    assert axis_scale(Objective("accuracy", "maximize", "%"), [90.0])[0] == "accuracy (%), higher is better"


def test_figures_come_in_units_for_their_magnitude() -> None:
    assert [energy_text(v) for v in (2.4e-7, 2.4e-4, 0.24, 240.0)] == [
        "240 µWh",
        "240 mWh",
        "240 Wh",
        "240 kWh",
    ]
    assert [mass_text(v) for v in (8.8e-5, 0.0123, 3.0)] == ["88 mg", "12.3 g", "3 kg"]
    assert [duration_text(v) for v in (4e-5, 0.2, 35.0, 600.0, 9000.0)] == [
        "40 µs",
        "200 ms",
        "35 s",
        "10 min",
        "2.5 h",
    ]
    assert energy_text(None) == "not recorded" and energy_text(0.0) == "0 kWh"


def glance(page: str) -> str:
    found = re.search(r'<h2 id="glance">At a glance</h2>(.*?)<h2', page, re.DOTALL)
    assert found, "no 'At a glance' section"
    return found.group(1)


def test_totals_and_a_normalised_hypervolume_come_first(tmp_path: Path) -> None:
    run = make_run(tmp_path, "green", sustainability=SUSTAINABILITY, energy=True)
    page = write_report([run]).html.read_text()
    top = glance(page)
    assert page.index('id="glance"') < page.index("<h2>Run</h2>") < page.index("Pareto fronts")
    assert "3 min (wall clock, measured)" in top
    assert "5 Wh (" in top and "by codecarbon 3.3.2" in top
    assert "2 g CO2e (grid USA, 0.4 kg CO2e per kWh)" in top
    share = float(re.search(r"([0-9.]+) of the reference box", top).group(1))
    assert 0 < share < 1
    assert "reference point: top-1 error 20 %, latency 2 ms" in top
    assert re.search(r"best top-1 error: model \d+", top)
    hv = page[page.index("<h2>Hypervolume</h2>") :]
    assert f"Final hypervolume: {share:.3f} of the reference box." in hv
    assert "top-1 error 0 to 20 %, latency 0 to 2 ms" in hv


def test_codecarbon_warnings_are_counted_and_their_text_folded_away(tmp_path: Path) -> None:
    sustainability = copy.deepcopy(SUSTAINABILITY)
    sustainability["tracker"]["fallbacks"] = [
        "No CPU tracking mode found. Falling back on CPU load mode.",
        "We will use the default power consumption of 4 W per thread for your 2 CPU, so 8W.",
        "no carbon region given: the USA average grid intensity is used",
    ]
    page = write_report([make_run(tmp_path, "green", sustainability=sustainability)]).html.read_text()
    assert "3 warnings: CPU power (2), grid carbon intensity (1)" in page
    folded = re.search(r"<details><summary>codecarbon&#x27;s messages</summary>(.*?)</details>", page, re.DOTALL)
    assert folded and "Falling back on CPU load mode" in folded.group(1)
    assert page.count("Falling back on CPU load mode") == 1  # nowhere else verbatim


def test_every_table_scrolls_inside_its_own_box(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, n, seed=i, sustainability=SUSTAINABILITY) for i, n in enumerate(("a", "b"))]
    for page in (write_report([runs[0]]).html, write_report(runs, out_dir=tmp_path / "cmp").html):
        text = page.read_text()
        assert text.count("<table") == len(re.findall(r'<div class="scroll"><table', text)) > 0
        assert ".scroll{overflow-x:auto" in text


# -- in a real browser ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import check_report
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    path = check_report.find_browser()
    if path is None:
        pytest.skip("no Chromium here (apt-get install chromium): the page is not checked in a browser")
    return check_report, path


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 800])
def test_the_page_does_not_overflow_in_chromium(browser, tmp_path: Path, width: int) -> None:
    check_report, path = browser
    runs = [
        make_run(tmp_path, n, seed=i, sustainability=SUSTAINABILITY, energy=True) for i, n in enumerate("ab")
    ]
    for html in (write_report([runs[0]]).html, write_report(runs, out_dir=tmp_path / "cmp").html):
        check = check_report.measure(path, html, width=width)
        assert check.images >= 2 and check.broken_images == 0
        assert not check.overflows, (html, check)
        assert check.sticks_out == ()
    shot = check_report.screenshot(path, html, tmp_path / "shot.png", width=width, height=1200)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_probe_sees_an_overflowing_page(browser, tmp_path: Path) -> None:
    """The check above can fail: a page wider than the window is reported."""
    check_report, path = browser
    page = tmp_path / "wide.html"
    page.write_text('<html><body><div style="width:3000px">wide</div><img src="x.png"></body></html>')
    check = check_report.measure(path, page, width=800)
    assert check.overflows and check.broken_images == 1
