"""The live dashboard: its state read from study.db without writing the run, its server, and the page in
headless Chromium against a search that is running (skipped where Chromium is not installed)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from test_report import make_run

from nas.report._dashboard import make_server, read_state

ROOT = Path(__file__).resolve().parents[2]


def files(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir()) if p.is_file()}


def test_the_state_holds_progress_front_and_hypervolume_and_writes_nothing(tmp_path: Path) -> None:
    run = make_run(tmp_path, "done", n_trials=20, failed=2, energy=True)
    before = files(run)
    state = read_state(run)
    assert files(run) == before  # not a byte written, not a file added
    assert state["done"] == 20 and state["failed"] == 2 and state["finished"] is True
    assert len(state["trials"]) == 20 and [o["name"] for o in state["objectives"]] == ["error", "latency_ms"]
    exported = {m["id"] for m in json.loads((run / "pareto.json").read_text())["models"]}
    assert set(state["front"]) == exported
    shares = [h["share"] for h in state["hypervolume"]]
    assert len(shares) == 20 and all(0 <= a <= b <= 1 for a, b in itertools.pairwise(shares))
    assert shares[-1] > 0 and all(h["energy_kwh"] is not None for h in state["hypervolume"])


def test_the_study_cannot_be_written_through_the_dashboard_connection(tmp_path: Path) -> None:
    from nas.report._dashboard import _connect

    run = make_run(tmp_path, "ro")
    conn = _connect(run / "study.db")
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM trials")
    conn.close()


def test_the_server_listens_on_localhost_and_serves_the_page_and_the_state(tmp_path: Path) -> None:
    run = make_run(tmp_path, "srv", n_trials=6)
    server = make_server(run, port=0)
    assert server.server_address[0] == "127.0.0.1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        page = urllib.request.urlopen(base + "/", timeout=30).read().decode()
        assert 'id="done"' in page and "api/state" in page
        state = json.loads(urllib.request.urlopen(base + "/api/state", timeout=30).read())
        assert state["done"] == 6 and state["name"] == "srv"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base + "/nothing", timeout=30)
    finally:
        server.shutdown()
        server.server_close()


def test_a_busy_port_or_a_missing_run_is_one_clear_error(tmp_path: Path) -> None:
    from nas.report import ReportError

    run = make_run(tmp_path, "busy", n_trials=3)
    first = make_server(run, port=0)
    try:
        with pytest.raises(ReportError, match="give another port with --port"):
            make_server(run, port=first.server_address[1])
    finally:
        first.server_close()
    with pytest.raises(ReportError, match="not a run directory"):
        make_server(tmp_path / "nope", port=0)


# -- in a browser, against a running search --------------------------------------------------------------

CONFIG = {
    "name": "live", "seed": 0, "threads": 1,
    "supernet": {"epochs": 1, "stage_channels": [8, 12], "stage_strides": [1, 2]},
    "search": {"trials": 6, "population": 4}, "evaluation": {"calib_samples": 32},
    "tracking": {"enabled": False},
}  # fmt: skip


def finished_trials(db: Path) -> int:
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM trials WHERE state != 'RUNNING'").fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        conn.close()


def shown(browser: str, url: str) -> tuple[int, str]:
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=4000", "--dump-dom", url],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    found = re.search(r'<span id="done">(\d+)</span> of <span id="planned">([^<]*)</span>', proc.stdout)
    assert found, proc.stdout[-2000:] + proc.stderr[-2000:]
    return int(found.group(1)), found.group(2)


@pytest.mark.slow
def test_the_page_follows_a_running_search_in_chromium(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from check_report import find_browser
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium here (apt-get install chromium): the live page is not checked in a browser")
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(CONFIG))
    search = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "search", "--config", "live.yaml", "--out", "runs"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    run = tmp_path / "runs" / "live"
    server = None
    try:
        deadline = time.monotonic() + 900  # a generous bound on a shared machine, not a timing
        while not (run / "study.db").is_file() and search.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (run / "study.db").is_file(), "the search never created its study"
        server = make_server(run, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        seen = []
        while search.poll() is None and time.monotonic() < deadline:
            low = finished_trials(run / "study.db")
            done, planned = shown(browser, url)
            high = finished_trials(run / "study.db")
            assert low <= done <= high and planned == "6"
            seen.append(done)
        assert search.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, search.stderr.read()[-2000:]
        final, _ = shown(browser, url)
        assert final == finished_trials(run / "study.db") == 6
        assert seen == sorted(seen) and (not seen or seen[-1] <= final)
    finally:
        if search.poll() is None:
            search.kill()
        if server is not None:
            server.shutdown()
            server.server_close()
