"""optuna-dashboard on a finished real-data study: what its HTTP API serves, and a screenshot."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import screenshot
from cli_run import REPO, assert_usage_error, run_nas
from real_study import NAME, THRESHOLD, RealStudy

from nas.dashboard import FRONT_PLOT_ID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return json.loads(body) if response.headers.get_content_type() == "application/json" else body


@pytest.fixture(scope="module")
def dashboard(real_study: RealStudy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``nas dashboard`` serving the real study on a free port; yields its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nas",
                "dashboard",
                NAME,
                "--storage",
                real_study.url,
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                get(f"{base}/api/studies")
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.5)
        else:
            pytest.fail("dashboard did not answer in 60 s: " + log.read_text())
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "published nas's front" in log.read_text()


def study_detail(base: str) -> dict[str, Any]:
    studies = get(f"{base}/api/studies")["study_summaries"]
    (summary,) = [s for s in studies if s["study_name"] == NAME]
    detail: dict[str, Any] = get(f"{base}/api/studies/{summary['study_id']}")
    detail["study_id"] = summary["study_id"]
    return detail


def test_api_serves_metric_names_constraints_and_artifacts(
    dashboard: str, real_study: RealStudy
) -> None:
    detail = study_detail(dashboard)
    assert detail["objective_names"] == ["accuracy", "params"]
    study = real_study.study()
    by_number = {t["number"]: t for t in detail["trials"]}
    assert set(by_number) == {t.number for t in study.trials}
    for trial in study.trials:
        served = by_number[trial.number]
        if trial.state.name != "COMPLETE":
            continue
        accuracy = trial.user_attrs["metric:accuracy"]
        # the dashboard reads constraints only from the list nas writes for it
        assert served["constraints"] == [pytest.approx(THRESHOLD - accuracy)]
        assert served["values"] == pytest.approx(trial.values)
        names = {a["filename"] for a in served["artifacts"]}
        assert {"model.safetensors", "config.json", "nas.json"} <= names
    # an artifact downloads through the dashboard, byte for byte
    trial = next(t for t in study.trials if t.state.name == "COMPLETE")
    served = by_number[trial.number]
    artifact = next(a for a in served["artifacts"] if a["filename"] == "config.json")
    body = get(
        f"{dashboard}/artifacts/{detail['study_id']}/{served['trial_id']}/"
        f"{artifact['artifact_id']}"
    )
    config_id = trial.user_attrs["checkpoint_files"]["config.json"]
    served_config = body if isinstance(body, dict) else json.loads(body)
    assert served_config == json.loads((real_study.artifacts / config_id).read_text())


def test_api_serves_nas_front_plot_and_note(dashboard: str, real_study: RealStudy) -> None:
    detail = study_detail(dashboard)
    plots = {p["id"]: json.loads(p["graph_object"]) for p in detail["plotly_graph_objects"]}
    front = plots[FRONT_PLOT_ID]
    traces = {t["name"].split(":")[0]: t for t in front["data"]}
    best = sorted(real_study.study().best_trials, key=lambda t: t.values[1])
    assert traces["Pareto front (feasible)"]["customdata"] == [t.number for t in best]
    note = detail["note"]["body"]
    assert note.startswith(f"## nas: feasible Pareto front of `{NAME}`")
    for t in best:
        assert f"| {t.number}" in note and f"{t.values[1] / 1e6:.3f}M" in note


def test_screenshot_of_the_study_page(dashboard: str, tmp_path: Path) -> None:
    detail = study_detail(dashboard)
    png = screenshot(
        f"{dashboard}/dashboard/studies/{detail['study_id']}", tmp_path / "dash.png", 1400, 1800
    )
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 1800) and len(data) > 50_000  # a drawn page, not a blank


def test_busy_port_and_unknown_study_are_usage_errors(real_study: RealStudy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        busy = run_nas("dashboard", NAME, "--storage", real_study.url, "--port", str(port))
    assert_usage_error(busy, f"port {port}", "in use", "--port")
    missing = run_nas("dashboard", "nope", "--storage", real_study.url)
    assert_usage_error(missing, "no study 'nope'")
