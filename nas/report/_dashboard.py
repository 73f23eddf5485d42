"""A live view of a run while it searches: ``hwnas dashboard RUN``.

A small HTTP server from the standard library serves one static page and one JSON endpoint
(``/api/state``); the page polls it every two seconds and redraws the front, the hypervolume over trials and
over energy, the progress and the trials table. The state is read from ``study.db`` through a read-only
SQLite connection (``mode=ro``): the study's write-ahead log lets it read beside the search that writes it,
and the dashboard never writes anything into the run directory.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from nas.report._analysis import front_series, hypervolume_curve, reference_box
from nas.report._dashboard_page import PAGE
from nas.report._load import ReportError, Run, _reference, number, submap
from nas.report._units import axis_scale
from search import Objective, Trial, TrialState

__all__ = ["make_server", "read_state", "serve"]


def _connect(db: Path) -> sqlite3.Connection:
    """A read-only connection: SQLite refuses every write through it."""
    if not db.is_file():
        raise ReportError(f"{db.parent} has no study.db yet: start the search first, or give a run directory")
    # While a search writes, its log and index files exist and a read-only reader shares them. With no
    # writer, the file is read as it is (immutable), so that not even SQLite's index file is created.
    live = db.with_name(db.name + "-wal").exists()
    query = "mode=ro" if live else "mode=ro&immutable=1"
    conn = sqlite3.connect(
        f"{db.resolve().as_uri()}?{query}", uri=True, timeout=10.0, check_same_thread=False
    )
    conn.execute("PRAGMA query_only=ON")
    return conn


def _trial(r: tuple[Any, ...]) -> Trial:
    return Trial(
        number=int(r[0]),
        params=json.loads(r[1]),
        fidelity=float(r[2]),
        state=TrialState(r[3]),
        values=None if r[4] is None else tuple(json.loads(r[4])),
        metrics=json.loads(r[5]),
        violation=r[6],
        error=r[7],
        started_at=r[8],
        finished_at=r[9],
        attrs=json.loads(r[10]),
    )


def _planned(run_dir: Path, config: Mapping[str, Any]) -> int | None:
    search = submap(config, "search")
    trials = search.get("trials")
    return int(trials) if isinstance(trials, int) else None


def read_state(run_dir: str | Path, conn: sqlite3.Connection | None = None) -> dict[str, Any]:
    """What the dashboard shows, JSON-ready: progress, objectives, trials, front and hypervolume curves."""
    run_dir = Path(run_dir)
    own = conn is None
    conn = conn or _connect(run_dir / "study.db")
    try:
        meta = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta").fetchall()}
        trials = [_trial(r) for r in conn.execute("SELECT * FROM trials ORDER BY number").fetchall()]
    except sqlite3.OperationalError as e:  # the search has created the file but not its tables yet
        return {"name": run_dir.name, "waiting": f"the study is not readable yet ({e})", "trials": []}
    finally:
        if own:
            conn.close()
    config: Mapping[str, Any] = submap(meta, "config")
    if not config and (run_dir / "config.yaml").is_file():
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    raw = meta.get("objectives") or []
    objectives = tuple(Objective(o["name"], o.get("direction", "minimize"), o.get("unit", "")) for o in raw)
    finished = [t for t in trials if t.state.finished]
    state: dict[str, Any] = {
        "name": str(config.get("name") or run_dir.name),
        "planned": _planned(run_dir, config),
        "done": len(finished),
        "running": sum(t.state is TrialState.RUNNING for t in trials),
        "failed": sum(t.state is TrialState.FAILED for t in trials),
        "finished": (run_dir / "pareto.json").is_file(),
        "objectives": [],
        "trials": [],
        "front": [],
        "hypervolume": [],
    }
    if not objectives:
        state["waiting"] = "the search has not recorded its objectives yet"
        return state
    reference, source = _reference(objectives, raw, {}, trials)
    run = Run(
        path=run_dir, name=state["name"], config=config, objectives=objectives, reference=reference,
        reference_source=source, trials=tuple(trials), constraints=(), strategy=str(meta.get("strategy")),
        profile=str(meta.get("profile")), space=None, models=(), pareto_recorded=False, timings={},
        sustainability=None, emissions=None,
    )  # fmt: skip
    series = front_series(run, run.name)
    curve, _ = hypervolume_curve(run, reference, run.name)
    _, volume = reference_box([run], reference)
    hv = curve.hypervolume / volume if volume else curve.hypervolume
    state["objectives"] = [
        {"name": o.name, "direction": o.direction, "label": label, "factor": factor}
        for o in objectives
        for label, factor, _ in [axis_scale(o, [float(t.metrics[o.name]) for t in run.complete])]
    ]
    state["reference"] = {o.name: r for o, r in zip(objectives, reference)}
    state["reference_source"] = source
    state["front"] = [int(i) for i in series.ids[series.on_front]] if series.ids is not None else []
    state["hypervolume"] = [
        {"trial": int(n), "share": _num(h), "energy_kwh": None if curve.energy_kwh is None else _num(e)}
        for n, h, e in zip(
            curve.trials, hv, curve.energy_kwh if curve.energy_kwh is not None else curve.trials
        )
    ]
    state["trials"] = [
        {
            "number": t.number,
            "state": t.state.value,
            "fidelity": t.fidelity,
            "values": {o.name: _num(t.metrics.get(o.name)) for o in objectives},
            "feasible": t.violation in (None, 0.0),
            "duration_s": _num(t.duration_s),
            "energy_kwh": _num(t.attrs.get("energy_kwh")),
            "error": t.error,
        }
        for t in trials
    ]
    return state


def _num(v: Any) -> float | None:
    return float(v) if number(v) and math.isfinite(float(v)) else None


def make_server(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8050) -> ThreadingHTTPServer:
    """The dashboard's server, bound but not yet serving (``serve_forever`` it, ``shutdown`` it)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ReportError(f"{run} is not a run directory; give one written by 'hwnas search' (runs/<name>)")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/":
                self._send(200, "text/html; charset=utf-8", PAGE.encode("utf-8"))
            elif path == "/api/state":
                try:
                    with lock:
                        body = json.dumps(read_state(run)).encode("utf-8")
                    self._send(200, "application/json", body)
                except (ReportError, sqlite3.Error, OSError, ValueError) as e:
                    self._send(503, "application/json", json.dumps({"waiting": str(e)}).encode("utf-8"))
            else:
                self._send(404, "text/plain", b"not found")

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL only
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        raise ReportError(
            f"cannot listen on {host}:{port} ({e.strerror or e}); give another port with --port (0: any free one)"
        ) from None
    server.daemon_threads = True
    return server


def serve(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8050) -> None:
    """Serves the dashboard of ``run_dir`` until Ctrl-C."""
    server = make_server(run_dir, host=host, port=port)
    url = f"http://{host}:{server.server_address[1]}/"
    print(f"dashboard of {run_dir}: {url} (reads study.db read-only; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
