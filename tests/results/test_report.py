"""``nas study report``: one self-contained HTML file that renders offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from support.browser import rendered_dom
from support.cli_run import assert_usage_error, run_nas
from support.study_factory import hand_built_study

from nas.results.report import write_report


@pytest.fixture
def hand(tmp_path: Path) -> tuple[optuna.Study, str]:
    url = f"sqlite:///{tmp_path / 'hand.db'}"
    return hand_built_study(url), url


def figure_json(page: str, div_id: str) -> dict:  # type: ignore[type-arg]
    """The figure plotly.js draws into ``div_id`` (its data and layout as written)."""
    start = page.index(f'document.getElementById("{div_id}")')
    match = re.search(
        r'Plotly\.newPlot\(\s*"' + div_id + r'",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{',
        page[start:],
        re.S,
    )
    assert match, f"no Plotly.newPlot for {div_id}"
    return {"data": json.loads(match.group(1)), "layout": json.loads(match.group(2))}


def test_report_holds_front_standings_and_counts(
    hand: tuple[optuna.Study, str], tmp_path: Path
) -> None:
    study, url = hand
    out = tmp_path / "report.html"
    write_report(study, out, url)
    page = out.read_text()
    assert not re.search(r"<script[^>]+src=", page)  # nothing to fetch: plotly.js is inline
    assert re.search(r"plotly\.js v\d", page) and len(page) > 3_000_000  # the library, inline
    front = figure_json(page, "nas-front")
    by_name = {t["name"].split(":")[0]: t for t in front["data"]}
    assert by_name["Pareto front (feasible)"]["customdata"] == [5, 2, 0, 1]
    assert by_name["dominated"]["customdata"] == [3]
    assert by_name["infeasible (below threshold)"]["customdata"] == [4]
    assert by_name["baseline"]["customdata"] == [0]
    assert "nan_loss 1, oom 1" in front["layout"]["title"]["text"]
    hv = figure_json(page, "nas-hypervolume")["data"][0]
    assert hv["x"] == [0, 1, 2, 3, 4, 5]
    assert hv["y"][-1] == pytest.approx(16.8 * 14.6 + 5 * 36 - 5 * 14.6)
    assert "exact = 50 from threshold; params = 66.000M from baseline (trial 0)" in page
    table = page[page.index("<table id='trials'>") :]
    assert table.count("<tr class=") == 8
    assert "oom: oom happened" in table and "nan_loss: nan_loss happened" in table
    assert front["layout"]["shapes"][0]["y0"] == 50  # the feasibility bound, dashed
    assert "feasible above: exact ≥ 50" in front["layout"]["annotations"][0]["text"]
    assert "<td class='l'>no: exact 45.00 &lt; 50</td>" in table  # the rule in words
    assert table.count("<td class='l'>yes</td>") == 5
    # 6 COMPLETE trials: too few for importances, said instead of drawn
    assert "params: not computed: 6 COMPLETE trials, importances need 20." in page
    assert "nas-importance-" not in page


def test_report_shows_no_local_paths(hand: tuple[optuna.Study, str], tmp_path: Path) -> None:
    study, url = hand
    cache = tmp_path / "cache"
    config = {"thresholds": [{"metric": "exact", "min": 50.0, "above_no_answer": 10.0}]}
    study.set_user_attr("config", {**config, "cache_dir": str(cache)})
    study.set_user_attr("no_answer", {"selection": {"exact": 40.0}})
    study.set_user_attr("teacher", "{cache_dir}/teachers/quickstart")
    study.set_user_attr("dataset", str(cache / "data" / "squad.json"))
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL,
            user_attrs={"fail_reason": "error", "fail_message": f"no file {cache}/logits/x.npy"},
        )
    )
    out = tmp_path / "report.html"
    write_report(study, out, url)
    page = out.read_text()
    assert str(tmp_path) not in page and "{cache_dir}" not in page
    assert "teachers/quickstart (in the study&#x27;s cache folder)" in page
    assert "data/squad.json (in the study&#x27;s cache folder)" in page
    assert "SQLite file hand.db" in page
    assert "error: no file &lt;cache folder&gt;/logits/x.npy" in page
    assert "exact &gt;= 50 on the selection split" in page  # the rule, once, in words
    assert "scores exact 40.00 there, and the exact bound is 10 above that" in page


# Appended to a copy of the report: the widths the trial table and the page are laid out at.
MEASURE = """<script>
const t = document.getElementById('trials'), box = t.parentElement;
document.body.dataset.fit = [document.documentElement.scrollWidth, window.innerWidth,
  box.clientWidth, t.scrollWidth, getComputedStyle(box).overflowX].join(' ');
</script>"""


def test_report_renders_offline_in_chromium(
    hand: tuple[optuna.Study, str], tmp_path: Path
) -> None:
    study, url = hand
    wide = {f"knob_{i}": 0.5 for i in range(12)}  # a wide table: more columns than the page
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL,
            params=wide,
            distributions={k: FloatDistribution(0.0, 1.0) for k in wide},
            user_attrs={"fail_reason": "error", "fail_message": "x" * 400},  # one long word
        )
    )
    out = tmp_path / "report.html"
    write_report(study, out, url)
    measured = tmp_path / "measured.html"
    measured.write_text(out.read_text().replace("</body>", MEASURE + "</body>"))
    dom = rendered_dom(measured.as_uri())
    fit = re.search(r'data-fit="(\d+) (\d+) (\d+) (\d+) (\w+)"', dom)
    assert fit, "the measuring script did not run"
    page_width, viewport, box_width, table_width, overflow = fit.groups()
    assert int(page_width) <= int(viewport)  # the page itself never scrolls sideways
    assert int(box_width) <= int(viewport) and overflow == "auto"  # the table scrolls in its box
    assert int(table_width) > int(box_width)  # (it is wider than the page: the box is needed)
    front = dom[dom.index('id="nas-front"') :]
    # legend entries exist only once plotly.js has drawn the figure
    legend = re.findall(r'class="legendtext"[^>]*>([^<]*)<', front)
    assert legend[:4] == [
        "Pareto front (feasible): 4",
        "dominated: 1",
        "infeasible (below threshold): 1",
        "baseline",
    ]
    assert dom.count('class="main-svg"') >= 4  # front, hypervolume, importances drawn


def test_report_cli_writes_and_replaces(hand: tuple[optuna.Study, str], tmp_path: Path) -> None:
    _, url = hand
    out = tmp_path / "r.html"
    out.write_text("old")
    result = run_nas("study", "report", "hand", "--storage", url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "8 trials, 4 on the feasible front" in result.stdout
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_report_bad_input(hand: tuple[optuna.Study, str], tmp_path: Path) -> None:
    _, url = hand
    missing = run_nas("study", "report", "nope", "--storage", url, "--out", str(tmp_path / "r"))
    assert_usage_error(missing, "no study 'nope'", "hand")
    no_folder = tmp_path / "absent" / "r.html"
    result = run_nas("study", "report", "hand", "--storage", url, "--out", str(no_folder))
    assert_usage_error(result, "folder", "does not exist")
    result = run_nas("study", "report", "hand", "--storage", url, "--out", str(tmp_path))
    assert_usage_error(result, "is a folder")
