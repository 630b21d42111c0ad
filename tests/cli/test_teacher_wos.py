"""`nas teacher wos` through the real CLI: WOS and the suggested family; a QA study exits 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support.cli_run import assert_usage_error
from support.cli_run import run_nas as nas
from support.order_free_teacher import WORDS, save_teacher


def _tsv(path: Path, n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    rows = [" ".join(rng.choice(WORDS, size=5)) + f"\t{i % 2}" for i in range(n)]
    path.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return str(path)


def _study(tmp_path: Path, task: str, teacher: Path) -> Path:
    study = tmp_path / f"{task}.yaml"
    data = (
        f"data: {{train_file: {_tsv(tmp_path / 'train.tsv', 20, 0)}, "
        f"eval_file: {_tsv(tmp_path / 'dev.tsv', 40, 1)}, "
        f"test_file: {_tsv(tmp_path / 'test.tsv', 10, 2)}, max_seq_length: 32}}\n"
        if task == "sst2"
        else ""
    )
    study.write_text(
        f"name: w\ntask: {task}\nteacher: {{path: {teacher}}}\nstudent_source: {teacher}\n"
        f"search_space: x.yaml\ncache_dir: {tmp_path / 'cache'}\n{data}"
    )
    return study


def test_wos_prints_the_score_and_the_family(tmp_path: Path) -> None:
    teacher = save_teacher(tmp_path / "teacher", order_free=True)
    result = nas("teacher", "wos", str(_study(tmp_path, "sst2", teacher)), "--seed", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("WOS 0.000 (p = 100.0 % on 3 shuffles"), result.stdout
    assert "of 40 selection examples" in result.stdout and "seed 3" in result.stdout
    assert "-> suggests bow" in result.stdout


def test_wos_on_a_qa_study_is_one_line_exit_2(tmp_path: Path) -> None:
    result = nas("teacher", "wos", str(_study(tmp_path, "squad_v2", tmp_path / "t")))
    assert_usage_error(result, "task squad_v2 is not classification")
    assert not (tmp_path / "cache").exists()
