"""Training throughput: nas's trial loop against a transformers Trainer distilling the usual way.

Both arms train the same student (3 layers sliced from MiniLM-L6 by ``nas.students.build``) on the
same tokenized examples for the same number of optimizer steps with the same loss
(``nas.trial.losses``), each in a fresh process so that peak memory is its own:

* **nas**: ``nas.trial.run.prepare`` (tokenize once, one teacher pass cached on disk) then
  ``nas.trial.loop.train``, the loop every trial runs: cached logits, dynamic padding,
  length-grouped batches.
* **nas, random batches** (SQuAD only): the same loop with ``length_grouped: false``.
* **nas, layer losses**: the same loop with intermediate-layer losses on (``LAYER_LOSSES``:
  TinyBERT's hidden-state MSE and MiniLMv2's relations, uniform map), so the teacher runs
  beside the student on every batch (no gradients; bf16 on CUDA), as in the Trainer arm, but on
  nas's dynamically padded, length-grouped batches.
* **Trainer**: ``transformers.Trainer`` with a ``compute_loss`` that runs the teacher on every
  batch, on examples padded to ``max_seq_length`` as ``run_glue.py`` / ``run_qa.py`` do by
  default (``pad_to_max_length=True``), with ``default_data_collator``.
* **Trainer, layer losses**: the same Trainer computing the same layer losses as the layer-loss
  arm (nas's ``LayerDistiller``: one teacher forward gives the logits and the hidden states, Q/K/V
  hooks on both models), so the two differ only in the batches nas makes. (TinyBERT's projection
  has no parameters here: the student is as wide as the teacher.)

Samples/s counts training examples (SQuAD: windows of up to 384 tokens) per second of the loop;
nas's one-time teacher pass is reported beside it and in a second ratio.

    python bench/throughput.py            # SST-2 and SQuAD 2.0 on MiniLM (needs the bench extra)
    python bench/throughput.py --quick    # tiny random models, a few steps
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common
import numpy as np
import torch
from _common import log
from transformers import (
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

from nas.config import load_study
from nas.params import TrialParams
from nas.students.build import build_student
from nas.trial.data import encoded, load_splits
from nas.trial.loop import Distillation, resolve_device, train, use_bf16
from nas.trial.losses import distill_loss, qa_distill_loss
from nas.trial.run import _pad_id, prepare
from nas.trial.teacher import load_teacher, load_tokenizer

# The student of every arm: half of MiniLM-L6's layers, its full width.
STUDENT = {"n_layers": 3, "n_heads": 12, "hidden_size": 384, "ffn_dim": 1536}
QUICK_STUDENT = {"n_layers": 1, "n_heads": 2, "hidden_size": 32, "ffn_dim": 64}
TRAINING = {
    "temperature": 2.0,
    "alpha": 0.5,
    "learning_rate": 5e-5,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "epochs": 1,
}
# The teacher-in-the-loop arm's losses (LayerLosses fields); the relation heads divide 384.
LAYER_LOSSES = {
    "hidden_weight": 1.0,
    "hidden_kind": "mse",
    "pkd_weight": 0.0,
    "relation_weight": 1.0,
    "relation_heads": 12,
    "layer_map": "uniform",
}
QUICK_RELATION_HEADS = 2  # divides the quick student's 32 and the tiny teacher's width


BASE_ARMS = ("nas", "trainer")
LAYER_ARMS = ("nas-layers", "trainer-layers")  # the teacher in the loop, in both


@dataclass(frozen=True)
class Dataset:
    name: str  # printed as "<name> ratio: ..."
    task: str
    batch_size: int
    steps: int
    max_seq_length: int
    arms: tuple[str, ...]  # keys of ARMS, in the order they run
    data: dict[str, Any]  # the study's data: block


def datasets(quick: bool) -> list[Dataset]:
    """SST-2 sentences padded to 66 tokens (the longest SST-2 sentence, and nas's sst2 study
    setting; run_glue.py's default of 128 would only widen the gap) and SQuAD 2.0 windows of
    384 tokens with a stride of 128 (run_qa.py's defaults).

    SQuAD's train windows come from 12 articles of the shared dev set (the other 4 are held out
    for evaluation, unused here). ``max_train_samples`` keeps batches x steps examples, enough
    for every step of one epoch.
    """
    sst2_steps, squad_steps = (3, 3) if quick else (60, 24)
    sst2_batch, squad_batch = (8, 4) if quick else (32, 16)
    sst2 = {
        "train_file": str(common.data_file("sst2", "train.tsv")),
        "eval_file": str(common.data_file("sst2", "dev.tsv")),
        "test_fraction": 0.01,
        "max_train_samples": sst2_steps * sst2_batch,
        "max_eval_samples": 8,
        "max_seq_length": 66,
    }
    squad = {
        "train_file": str(common.data_file("squad_v2", "dev-v2.0.json")),
        "test_articles": 2,
        "eval_articles": 2,
        "max_train_samples": squad_steps * squad_batch,
        "max_eval_samples": 8,
        "max_seq_length": 384,
        "doc_stride": 128,
    }
    return [
        Dataset(
            "sst2",
            "sst2",
            sst2_batch,
            sst2_steps,
            66,
            BASE_ARMS if quick else (*BASE_ARMS, *LAYER_ARMS),  # quick: layer arms on SQuAD
            sst2,
        ),
        Dataset(
            "squad_v2",
            "squad_v2",
            squad_batch,
            squad_steps,
            384,
            (*BASE_ARMS, *LAYER_ARMS) if quick else ("nas", "nas-random", "trainer", *LAYER_ARMS),
            squad,
        ),
    ]


def write_config(folder: Path, ds: Dataset, checkpoint: Path, quick: bool, device: str) -> Path:
    space = "search_spaces/quickstart.yaml" if quick else "bench/minilm_space.yaml"
    return common.write_study(
        folder / f"{ds.name}.yaml",
        {
            "name": f"throughput-{ds.name}",
            "task": ds.task,
            "data": ds.data,
            "teacher": {"path": str(checkpoint)},
            "student_source": str(checkpoint),
            "search_space": str(common.REPO / space),
            "cache_dir": str(folder / "cache"),
            "training": {
                "device": device,
                "max_steps": ds.steps,
                "log_every": 10**9,  # silent: the benchmark prints its own lines
                "length_grouped": True,
                "eval_batch_size": 64,
            },
        },
    )


# ----------------------------------------------------------------------------- the arms
# Each arm runs in a fresh process (spawn): its peak RSS is its own, nothing is shared warm.


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _student(prepared: Any, params: dict[str, Any]) -> Any:
    torch.manual_seed(prepared.config.training.seed)
    return build_student(params, prepared.source, prepared.task.kind, prepared.num_labels)


def nas_arm(
    config_path: str, params: dict[str, Any], grouped: bool = True, losses: bool = False
) -> dict[str, Any]:
    """nas's trial loop on the cached logits that the parent computed; ``losses``: with the
    intermediate-layer losses of ``params`` on (the teacher in the loop)."""
    from nas.trial.run import layer_distiller

    prepared = prepare(load_study(config_path))  # cache hits: features and logits on disk
    model = _student(prepared, params)
    training = dataclasses.replace(prepared.config.training, length_grouped=grouped)
    trial = TrialParams.from_params(params)
    layers = layer_distiller(prepared, trial, model) if losses else None
    if losses and layers is None:
        raise common.BenchError("the layer-loss arm has no layer losses on")
    before, cpu = _rss_mb(), _cpu_s()
    recipe = trial.recipe
    result = train(
        model,
        prepared.train_features,
        recipe,
        training,
        prepared.task.kind,
        _pad_id(prepared.tokenizer),
        seed=prepared.config.training.seed,
        distill=Distillation(prepared.teacher_logits, recipe.alpha, recipe.temperature, layers),
    )
    return {
        "cpu_s": _cpu_s() - cpu,
        "samples_per_s": result.samples_per_s,
        "steps": result.steps,
        "samples": result.samples,
        "train_s": result.train_time_s,
        "peak_mb": result.peak_memory_mb,
        "memory_kind": result.memory_kind,
        "rss_before_mb": before,
    }


def trainer_arm(config_path: str, params: dict[str, Any], losses: bool = False) -> dict[str, Any]:
    """The same distillation the usual way: a Trainer whose compute_loss runs the teacher;
    ``losses``: with the intermediate-layer losses of ``params`` too."""
    from nas.trial.run import layer_distiller

    prepared = prepare(load_study(config_path))  # the same tokenized examples as nas
    config, kind = prepared.config, prepared.task.kind
    device = resolve_device(config.training.device)
    dataset = PaddedFeatures(
        prepared.train_features, config.data.max_seq_length, _pad_id(prepared.tokenizer), kind
    )
    model = _student(prepared, params)
    layers = layer_distiller(prepared, TrialParams.from_params(params), model) if losses else None
    if losses and layers is None:
        raise common.BenchError("the Trainer layer-loss arm has no layer losses on")
    teacher = (
        load_teacher(prepared.teacher, kind, prepared.num_labels)
        if layers is None
        else layers.teacher
    )
    steps = int(config.training.max_steps or 1)

    class Clock(TrainerCallback):  # type: ignore[misc]
        start = end = 0.0

        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.end = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=int(params["batch_size"]),
            max_steps=steps,
            learning_rate=float(params["learning_rate"]),
            warmup_steps=int(steps * float(params["warmup_ratio"])),
            weight_decay=float(params["weight_decay"]),
            max_grad_norm=config.training.grad_clip,
            bf16=use_bf16(config.training, device),
            use_cpu=device.type == "cpu",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            seed=config.training.seed,
        )
        trainer = (LayerTrainer if layers is not None else DistillTrainer)(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=default_data_collator,
            callbacks=[clock := Clock()],
        )
        trainer.remove_callback(PrinterCallback)  # it prints a metrics dict at the end
        trainer.setup_distillation(teacher, kind, params)
        if layers is not None:
            trainer.layers = layers.to(trainer.args.device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        before, cpu = _rss_mb(), _cpu_s()
        trainer.train()
        cpu = _cpu_s() - cpu
    elapsed = clock.end - clock.start
    samples = steps * int(params["batch_size"])
    if device.type == "cuda":
        peak, memory_kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    else:
        peak, memory_kind = _rss_mb(), "cpu_max_rss"
    return {
        "cpu_s": cpu,
        "samples_per_s": samples / elapsed,
        "steps": trainer.state.global_step,
        "samples": samples,
        "train_s": elapsed,
        "peak_mb": peak,
        "memory_kind": memory_kind,
        "rss_before_mb": before,
    }


class PaddedFeatures:
    """nas's tokenized features padded to ``max_length``, one dict of tensors per example: what
    ``tokenizer(..., padding="max_length")`` gives the transformers examples."""

    def __init__(self, features: Any, max_length: int, pad_id: int, kind: str) -> None:
        n = len(features)
        self.ids = np.full((n, max_length), pad_id, dtype=np.int64)  # (n, max_length)
        self.type_ids = np.zeros((n, max_length), dtype=np.int64)
        self.mask = np.zeros((n, max_length), dtype=np.int64)
        for i in range(n):
            start, end = int(features.starts[i]), int(features.starts[i + 1])
            self.ids[i, : end - start] = features.ids[start:end]
            self.type_ids[i, : end - start] = features.type_ids[start:end]
            self.mask[i, : end - start] = 1
        self.labels = np.array(features.labels, dtype=np.int64)  # (n,) or (n, 2); a copy

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "input_ids": torch.from_numpy(self.ids[i]),
            "token_type_ids": torch.from_numpy(self.type_ids[i]),
            "attention_mask": torch.from_numpy(self.mask[i]),
            "labels": torch.as_tensor(self.labels[i]),
        }


class DistillTrainer(Trainer):  # type: ignore[misc]
    """``compute_loss`` runs the teacher on each batch, then nas's own loss."""

    def setup_distillation(self, teacher: Any, kind: str, params: dict[str, Any]) -> None:
        self.teacher = teacher.to(self.args.device).eval()
        self.kind = kind
        self.alpha = float(params["alpha"])
        self.temperature = float(params["temperature"])

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        student_inputs = {k: inputs[k] for k in ("input_ids", "attention_mask")}
        with torch.no_grad():
            t_out = self.teacher(**student_inputs, token_type_ids=inputs["token_type_ids"])
        s_out = model(**student_inputs)
        labels = inputs["labels"]
        if self.kind == "qa":
            student = torch.stack([s_out.start_logits, s_out.end_logits], -1).float()
            teacher = torch.stack([t_out.start_logits, t_out.end_logits], -1).float()
            mask = inputs["attention_mask"].bool()
            loss = qa_distill_loss(student, teacher, labels, mask, self.alpha, self.temperature)
        else:
            loss = distill_loss(
                s_out.logits.float(), t_out.logits.float(), labels, self.alpha, self.temperature
            )
        return (loss, s_out) if return_outputs else loss


class LayerTrainer(DistillTrainer):
    """``compute_loss`` with the layer losses too: one teacher forward for logits and states."""

    layers: Any = None  # nas.trial.intermediate.LayerDistiller

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        student_inputs = {k: inputs[k] for k in ("input_ids", "attention_mask")}
        with self.layers.capturing(model) as qkv:
            s_out = model(**student_inputs, output_hidden_states=True)
            with torch.no_grad():
                t_out = self.teacher(
                    **student_inputs,
                    token_type_ids=inputs["token_type_ids"],
                    output_hidden_states=True,
                )
            mask = inputs["attention_mask"].bool()
            extra = self.layers.loss(s_out.hidden_states, t_out.hidden_states, qkv, mask)
        labels = inputs["labels"]
        if self.kind == "qa":
            student = torch.stack([s_out.start_logits, s_out.end_logits], -1).float()
            teacher = torch.stack([t_out.start_logits, t_out.end_logits], -1).float()
            loss = qa_distill_loss(student, teacher, labels, mask, self.alpha, self.temperature)
        else:
            loss = distill_loss(
                s_out.logits.float(), t_out.logits.float(), labels, self.alpha, self.temperature
            )
        return (loss + extra, s_out) if return_outputs else loss + extra


def trainer_layers_arm(config_path: str, params: dict[str, Any]) -> dict[str, Any]:
    """The Trainer with the same layer losses as nas's layer-loss arm."""
    return trainer_arm(config_path, params, losses=True)


def nas_random_arm(config_path: str, params: dict[str, Any]) -> dict[str, Any]:
    """nas's loop with shuffled batches instead of length-grouped ones (the padding's share)."""
    return nas_arm(config_path, params, grouped=False)


def nas_layers_arm(config_path: str, params: dict[str, Any]) -> dict[str, Any]:
    """nas's loop with the intermediate-layer losses on: the teacher runs on every batch."""
    return nas_arm(config_path, params, losses=True)


ARMS = {
    "nas": ("nas: cached logits, dynamic padding, length-grouped", nas_arm),
    "nas-random": ("nas, random batches (length_grouped: false)", nas_random_arm),
    "nas-layers": ("nas, layer losses: teacher every step, dynamic padding", nas_layers_arm),
    "trainer": ("Trainer: teacher every step, padded to max length", trainer_arm),
    "trainer-layers": ("Trainer, layer losses: teacher every step, padded", trainer_layers_arm),
}


def run_arm(name: str, config_path: Path, params: dict[str, Any]) -> dict[str, Any]:
    """One arm in a fresh spawned process."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(ARMS[name][1], str(config_path), params).result()


# ----------------------------------------------------------------------------- one data set


# nas's samples/s over the Trainer's, per data set (BENCHMARKS.md's targets)
RATIO_GOALS = {"sst2": 4.0, "squad_v2": 1.5}
LAYER_GOAL = 1.5  # the teacher-in-the-loop arm over the Trainer, both data sets (issue #12)


def measure(
    ds: Dataset, folder: Path, checkpoint: Path, quick: bool, device: str
) -> tuple[float, float | None]:
    """Run every arm of ``ds`` side by side, print the table and the ratios; returns nas's
    samples/s over the Trainer's, on cached logits and with the teacher in the loop (None
    when ``ds`` runs no layer-loss arms)."""
    config_path = write_config(folder, ds, checkpoint, quick, device)
    config = load_study(config_path)
    student = QUICK_STUDENT if quick else STUDENT
    params = {**student, **TRAINING, "batch_size": ds.batch_size}
    log(f"{ds.name}: tokenizing")
    start = time.perf_counter()
    task, splits, data = load_splits(config)
    tokenizer = load_tokenizer(str(checkpoint), "checkpoint")
    features = encoded(task, splits.train, tokenizer, data, Path(config.cache_dir))
    tokenize_s = time.perf_counter() - start
    log(f"{ds.name}: one teacher pass over {len(features)} features (nas caches it)")
    start = time.perf_counter()
    prepare(config)  # the features are cached now: this is the teacher pass
    teacher_s = time.perf_counter() - start
    lengths = features.lengths()
    unit = "windows" if task.kind == "qa" else "sentences"
    print(
        f"{ds.name}: {len(features)} {unit} from {len(splits.train)} examples "
        f"({splits.description.split(';')[0]}); mean length {lengths.mean():.0f} tokens, "
        f"max_seq_length {ds.max_seq_length}; batch {ds.batch_size}, {ds.steps} optimizer steps"
    )
    print(
        f"  nas one-time work: tokenize {tokenize_s:.1f} s, teacher pass {teacher_s:.1f} s "
        "(cached and shared by every trial of a study)"
    )
    layer_params = {**params, **LAYER_LOSSES}
    if quick:
        layer_params["relation_heads"] = QUICK_RELATION_HEADS
    results = {}
    for arm in ds.arms:
        log(f"{ds.name}: {arm} arm, {ds.steps} steps ({common.load_line()})")
        results[arm] = run_arm(arm, config_path, layer_params if arm in LAYER_ARMS else params)
        log(f"{ds.name}: {arm}: {results[arm]['samples_per_s']:.1f} samples/s")
    rows = [
        [
            ARMS[arm][0],
            f"{r['samples_per_s']:.1f}",
            r["steps"],
            r["samples"],
            f"{r['train_s']:.1f}",
            f"{r['cpu_s']:.1f}",
            f"{r['peak_mb']:.0f}",
            f"{r['rss_before_mb']:.0f}",
        ]
        for arm, r in results.items()
    ]
    kind = results["trainer"]["memory_kind"]  # cpu_max_rss, or cuda_max_allocated
    head = ["arm", "samples/s", "steps", "samples", "train s", "CPU s", f"peak MB ({kind})"]
    head.append("RSS before MB")
    print(common.table(rows, head))
    nas_r, hf_r = results["nas"], results["trainer"]
    ratio = nas_r["samples_per_s"] / hf_r["samples_per_s"]
    # per sample, with the teacher pass charged to this one run (a study shares it)
    hf_per = 1.0 / hf_r["samples_per_s"]
    nas_per = 1.0 / nas_r["samples_per_s"] + teacher_s / len(features)
    print(f"{ds.name} ratio: {ratio:.2f}x")
    if "nas-random" in results:
        random_ratio = results["nas-random"]["samples_per_s"] / hf_r["samples_per_s"]
        print(f"{ds.name} ratio without length grouping: {random_ratio:.2f}x")
    layer_ratio = None
    if "nas-layers" in results:
        layer_ratio = (
            results["nas-layers"]["samples_per_s"] / results["trainer-layers"]["samples_per_s"]
        )
        print(f"{ds.name} ratio with the teacher in the loop (layer losses on in both): "
              f"{layer_ratio:.2f}x")  # fmt: skip
    cpu_ratio = (hf_r["cpu_s"] / hf_r["samples"]) / (nas_r["cpu_s"] / nas_r["samples"])
    print(f"{ds.name} ratio in CPU time per sample: {cpu_ratio:.2f}x")
    charged = hf_per / nas_per
    print(f"{ds.name} ratio with the teacher pass charged to this single run: {charged:.2f}x")
    print(flush=True)
    return ratio, layer_ratio


def main() -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    common.set_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    checkpoint_note = "tiny random BERT (quick)" if args.quick else "all-MiniLM-L6-v2"
    with tempfile.TemporaryDirectory() as tmp:
        folder = common.work_dir(args, "throughput", Path(tmp) if args.quick else None)
        if args.quick:
            texts = _texts()
            checkpoint = common.tiny_checkpoint(folder / "tiny-bert", texts)
        else:
            checkpoint = common.minilm_checkpoint("bench/throughput.py")
        student = QUICK_STUDENT if args.quick else STUDENT
        with common.recorded("throughput", args.quick) as targets:
            _run(args, folder, checkpoint, checkpoint_note, student, device, targets)
    return 0


def _run(
    args: Any,
    folder: Path,
    checkpoint: Path,
    checkpoint_note: str,
    student: dict[str, Any],
    device: str,
    targets: list[dict[str, Any]],
) -> None:
    common.header(
        "bench/throughput.py",
        args.quick,
        [
            f"teacher: {checkpoint_note} ({checkpoint}), untrained classifier/QA head "
            "(speed does not depend on it)",
            f"student: {student} sliced from the teacher checkpoint by nas.students.build",
            f"loss: nas.trial.losses, alpha {TRAINING['alpha']}, T {TRAINING['temperature']}; "
            f"device {device}" + (" (bf16 autocast in both arms)" if device == "cuda" else ""),
        ],
    )
    for ds in datasets(args.quick):
        run_folder = Path(tempfile.mkdtemp(prefix=f"{ds.name}-", dir=folder))
        ratio, layer_ratio = measure(ds, run_folder, checkpoint, args.quick, device)
        goal = RATIO_GOALS[ds.name]
        targets.append(
            common.target(
                f"{ds.name}_samples_per_s_ratio",
                f"nas's trial loop >= {goal}x the Trainer's samples/s on {device}",
                f"{ratio:.2f}x",
                ratio >= goal,
            )
        )
        if layer_ratio is None:
            continue
        targets.append(
            common.target(
                f"{ds.name}_teacher_in_loop_ratio",
                f"nas's loop with layer losses (teacher every step) >= {LAYER_GOAL}x the "
                f"Trainer's with the same losses, samples/s on {device}",
                f"{layer_ratio:.2f}x",
                layer_ratio >= LAYER_GOAL,
            )
        )
    common.footer()


def _texts() -> list[str]:
    """Words for the quick run's vocabulary: SST-2 sentences and SQuAD questions/contexts."""
    from nas.tasks.squad_io import read_squad_file

    sst2 = common.data_file("sst2", "train.tsv").read_text().splitlines()[1:2000]
    squad = read_squad_file(common.data_file("squad_v2", "dev-v2.0.json"))[:300]
    return [line.split("\t")[0] for line in sst2] + [
        text for ex in squad for text in (ex.question, ex.context)
    ]


if __name__ == "__main__":
    common.run(main)
