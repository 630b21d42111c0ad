"""optuna-dashboard on a finished real-data study: what its HTTP API serves, and a screenshot;
the read-only WSGI app nas serves, and the hosts it refuses."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from support.browser import screenshot
from support.cli_run import REPO, assert_usage_error, run_nas
from support.real_study import NAME, THRESHOLD, RealStudy
from support.stored_study import MODEL_BYTES, stored_model, stored_study

from nas.errors import NasError
from nas.results.dashboard import FRONT_PLOT_ID, check_host, dashboard_app
from nas.study.artifacts import open_store, parse_root


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


def test_delete_through_nas_dashboard_changes_nothing(
    dashboard: str, real_study: RealStudy
) -> None:
    detail = study_detail(dashboard)
    files = sorted(p.name for p in real_study.artifacts.iterdir())
    request = urllib.request.Request(
        f"{dashboard}/api/studies/{detail['study_id']}",
        data=json.dumps({"remove_associated_artifacts": True}).encode(),
        headers={"Content-Type": "application/json"},
        method="DELETE",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403
    assert "read-only" in json.loads(refused.value.read())["reason"]
    assert len(study_detail(dashboard)["trials"]) == len(real_study.study().trials) == 6
    assert sorted(p.name for p in real_study.artifacts.iterdir()) == files


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


# ----------------------------------------------------------------------------- the WSGI app


def call(app: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request to a WSGI app; returns the status code and the body (JSON decoded)."""
    data = b"" if body is None else json.dumps(body).encode()
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(
        REQUEST_METHOD=method,
        PATH_INFO=path,
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH=str(len(data)),
    )
    environ["wsgi.input"], environ["wsgi.errors"] = io.BytesIO(data), io.StringIO()
    status: list[str] = []
    chunks = app(environ, lambda s, headers, exc_info=None: status.append(s))
    out = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    try:
        return int(status[0].split()[0]), json.loads(out)
    except ValueError:
        return int(status[0].split()[0]), out


def served(tmp_path: Path, allow_notes: bool = False) -> tuple[Any, optuna.Study, Path]:
    study, _, root = stored_study(tmp_path)
    return dashboard_app(study._storage, open_store(parse_root(root)), allow_notes), study, root


def test_writes_and_deletes_are_refused_and_change_nothing(tmp_path: Path) -> None:
    app, study, root = served(tmp_path)
    sid, tid = study._study_id, study.trials[0]._trial_id
    files = sorted(p.name for p in root.iterdir())
    assert call(app, "GET", "/api/studies")[0] == 200
    for method, path, body in [
        ("DELETE", f"/api/studies/{sid}", {"remove_associated_artifacts": True}),
        ("DELETE", f"/api/artifacts/{sid}/{tid}/{files[0]}", None),
        ("PUT", f"/api/studies/{sid}/note", {"version": 1, "body": "hi"}),
        ("POST", f"/api/trials/{tid}/user-attrs", {"user_attrs": {"checkpoint_files": {}}}),
        ("POST", f"/api/studies/{sid}/rename", {"study_name": "other"}),
        ("PATCH", f"/api/studies/{sid}", {}),
    ]:
        code, answer = call(app, method, path, body)
        assert code == 403, (method, path, code, answer)
        assert answer["reason"].startswith(f"nas dashboard is read-only: {method} {path} is")
    again = optuna.load_study(study_name="stored", storage=study._storage)
    assert len(again.trials) == 2 and again.trials[0].user_attrs["checkpoint_files"]
    assert sorted(p.name for p in root.iterdir()) == files
    assert call(app, "GET", f"/api/studies/{sid}")[1]["note"]["body"] == ""


def test_allow_notes_lets_notes_through_and_nothing_else(tmp_path: Path) -> None:
    app, study, _ = served(tmp_path, allow_notes=True)
    sid, tid = study._study_id, study.trials[0]._trial_id
    assert call(app, "PUT", f"/api/studies/{sid}/note", {"version": 1, "body": "hi"})[0] == 204
    assert (
        call(app, "PUT", f"/api/studies/{sid}/{tid}/note", {"version": 1, "body": "t"})[0] == 204
    )
    assert call(app, "GET", f"/api/studies/{sid}")[1]["note"]["body"] == "hi"
    assert call(app, "DELETE", f"/api/studies/{sid}")[0] == 403
    assert len(optuna.load_study(study_name="stored", storage=study._storage).trials) == 2


def test_downloads_are_checked_against_their_records(tmp_path: Path) -> None:
    app, study, root = served(tmp_path)
    trial = study.trials[1]
    url = f"/artifacts/{study._study_id}/{trial._trial_id}/"
    model = stored_model(study, root, 1)
    assert call(app, "GET", url + model.name) == (200, MODEL_BYTES)
    flipped = bytearray(MODEL_BYTES)
    flipped[7] ^= 0x10
    model.write_bytes(bytes(flipped))
    code, answer = call(app, "GET", url + model.name)
    assert code == 500
    assert answer["reason"].startswith("trial 1 of study 'stored': checkpoint file model.safe")
    model.unlink()
    assert call(app, "GET", url + model.name)[0] == 404
    config = trial.user_attrs["checkpoint_files"]["config.json"]
    assert call(app, "GET", url + config)[1]["architectures"]  # the intact files still serve


def test_a_remote_host_needs_allow_remote_and_then_warns(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert check_host(host, allow_remote=False, allow_notes=False) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        with pytest.raises(NasError, match=rf"--host {host} .*no authentication.*--allow-remote"):
            check_host(host, allow_remote=False, allow_notes=False)
    warning = check_host("0.0.0.0", allow_remote=True, allow_notes=False)
    assert warning and "without authentication" in warning and "every write is refused" in warning
    db = tmp_path / "nas.db"
    refused = run_nas("dashboard", "stored", "--host", "0.0.0.0", "--storage", f"sqlite:///{db}")
    assert_usage_error(refused, "--host 0.0.0.0", "--allow-remote")
    assert not db.exists()  # refused before the storage was opened
