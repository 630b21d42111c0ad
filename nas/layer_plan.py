"""What a search space's intermediate-layer losses ask of the teacher, checked before any work.

The losses themselves (``nas.trial.layer_losses``) need tensors; the rules that decide whether a
trial can run at all need only shapes: which teacher layer each student layer learns from
(:func:`layer_map`, the one home of that rule), the teacher's depth, width and family
(:class:`TeacherShape`, read from its ``config.json`` or from the architecture nas will train it
with), and whether the relation head count divides both widths. :func:`check_layer_space`
applies them to every combination a search space can produce, as the heads rule is applied when
a space is loaded, so a study fails before its teacher trains rather than trial by trial.

Top-level, beside ``search_space.py``: the CLI's cheap checks and the trial both read it, and it
imports nothing heavy (no torch, no transformers).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nas.errors import ConfigError, InvalidConfig

if TYPE_CHECKING:
    from nas.config import StudyConfig
    from nas.search_space import SearchSpace

LayerMap = Literal["uniform", "last", "skip"]
LAYER_MAPS: tuple[LayerMap, ...] = ("uniform", "last", "skip")
# model_type values whose hidden states nas reads (output_hidden_states) and whose Q/K/V
# projections nas.trial.capture hooks (MiniLM checkpoints are "bert")
FAMILIES = ("bert", "distilbert")
# config.json keys of the depth and width, per family (BERT's, then DistilBERT's)
_DEPTH_KEYS = ("num_hidden_layers", "n_layers")
_WIDTH_KEYS = ("hidden_size", "dim")
_BERT_DEFAULTS = {"num_hidden_layers": 12, "hidden_size": 768}  # BertConfig's


def layer_map(
    kind: LayerMap, student_layers: int, teacher_layers: int, every: int | None = None
) -> list[int]:
    """The 0-based teacher layer that each 0-based student layer learns from.

    * ``uniform`` (TinyBERT's ``g(m) = m * N / M``): student layer ``i`` <- teacher layer
      ``ceil((i + 1) * L_T / L_S) - 1``. The last student layer always maps to the last teacher
      layer; 12 -> 4 gives ``[2, 5, 8, 11]``, 6 -> 4 gives ``[1, 2, 4, 5]``; a student deeper
      than the teacher repeats teacher layers (2 -> 4 gives ``[0, 0, 1, 1]``).
    * ``last`` (PKD-Last, Sun et al. 2019): the last ``L_S`` teacher layers, ``L_T - L_S + i``.
    * ``skip`` (PKD-Skip): every ``every``-th teacher layer from the bottom,
      ``(i + 1) * every - 1``; ``every`` defaults to ``L_T // L_S`` (12 -> 6 gives
      ``[1, 3, 5, 7, 9, 11]``).

    PKD leaves the last student layer out (the logit loss covers it); these maps include it, and
    PKD's own pairs are their first ``L_S - 1`` entries.

    Raises:
        InvalidConfig: an unknown kind, a depth below 1, or a map that asks for a teacher layer
            that does not exist (``last`` or ``skip`` with a student too deep for the teacher).
    """
    if kind not in LAYER_MAPS:
        raise InvalidConfig(f"layer map {kind!r} is unknown; use one of {', '.join(LAYER_MAPS)}")
    if student_layers < 1 or teacher_layers < 1:
        raise InvalidConfig(
            f"layer map {kind!r}: student layers {student_layers} and teacher layers "
            f"{teacher_layers} must both be at least 1"
        )
    if every is not None and kind != "skip":
        raise InvalidConfig(f"layer map {kind!r} takes no 'every' (got {every}); only 'skip' does")
    if kind == "uniform":
        return [-(-(i + 1) * teacher_layers // student_layers) - 1 for i in range(student_layers)]
    if kind == "last":
        if student_layers > teacher_layers:
            raise InvalidConfig(
                f"layer map 'last': a {student_layers}-layer student asks for teacher layers "
                f"that a {teacher_layers}-layer teacher does not have; use 'uniform' or a "
                f"student of at most {teacher_layers} layers"
            )
        return [teacher_layers - student_layers + i for i in range(student_layers)]
    step = teacher_layers // student_layers if every is None else every
    if step < 1 or student_layers * step > teacher_layers:
        raise InvalidConfig(
            f"layer map 'skip' with every={step}: a {student_layers}-layer student asks for "
            f"teacher layer {student_layers * step} (1-based) of a {teacher_layers}-layer "
            f"teacher; use every between 1 and {max(teacher_layers // student_layers, 1)}, "
            f"or 'uniform'"
        )
    return [(i + 1) * step - 1 for i in range(student_layers)]


@dataclass(frozen=True)
class TeacherShape:
    """What the intermediate losses read of a teacher: its depth, width and family."""

    layers: int | None  # transformer layers; None: the config names no depth
    width: int | None  # hidden size; None: the config names no width
    family: str  # the config's model_type ("bert", "distilbert", ...)
    where: str  # the teacher, for messages

    @classmethod
    def from_config(cls, raw: dict[str, Any], where: str) -> TeacherShape:
        """The shape in a ``config.json`` mapping (BERT's or DistilBERT's key names)."""
        depth = next((raw[k] for k in _DEPTH_KEYS if isinstance(raw.get(k), int)), None)
        width = next((raw[k] for k in _WIDTH_KEYS if isinstance(raw.get(k), int)), None)
        return cls(depth, width, str(raw.get("model_type", "unknown")), where)

    def check_hidden_states(self, loss: str) -> tuple[int, int]:
        """Depth and width, or InvalidConfig when the teacher exposes no hidden states nas can
        map to a student's layers."""
        if self.family not in FAMILIES or self.layers is None or self.width is None:
            raise InvalidConfig(
                f"{loss} > 0 needs the teacher's hidden states, but teacher {self.where} "
                f"(model_type {self.family!r}) exposes none nas can map to student layers; use "
                f"a {' or '.join(FAMILIES)} teacher or set the intermediate loss weights to 0"
            )
        return self.layers, self.width


def planned_teacher_shape(config: StudyConfig) -> TeacherShape | None:
    """The teacher's shape from files alone, before it is loaded or trained: its folder's
    ``config.json``, else (a teacher nas will train) its init's ``config.json`` or
    ``teacher.train.arch`` over BERT's defaults; None when only the hub knows (a hub name)."""
    folder = Path(config.paths.teacher)
    if (folder / "config.json").is_file():
        return _read_shape(folder / "config.json", str(folder))
    train = config.teacher.train
    if train is None:
        return None
    init = config.paths.teacher_init
    if init is not None:
        path = Path(init) / "config.json"
        return _read_shape(path, str(folder)) if path.is_file() else None
    arch = {"model_type": "bert", **_BERT_DEFAULTS, **train.arch}
    return TeacherShape.from_config(arch, str(folder))


def _read_shape(path: Path, where: str) -> TeacherShape:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable config.json ({exc}); fix the teacher") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: config.json is not a mapping; fix the teacher")
    return TeacherShape.from_config(raw, where)


def check_layer_space(space: SearchSpace, teacher: TeacherShape) -> None:
    """Every student the space can produce with an intermediate loss on must be trainable
    against ``teacher``: the teacher exposes hidden states, every layer map asks only for
    teacher layers that exist, and every relation head count divides the teacher's width and
    every student width (with the relation loss on).

    Raises:
        InvalidConfig: naming the value, the teacher and the fix.
    """
    where = space.source_file or "the search space"
    if not space.defines_layer_losses() or not any(
        space.can_be_positive(w) for w in ("hidden_weight", "pkd_weight", "relation_weight")
    ):
        return
    depth, width = teacher.check_hidden_states(f"{where}: an intermediate loss weight")
    for kind, layers in itertools.product(space.values("layer_map"), space.values("n_layers")):
        try:
            layer_map(kind, layers, depth)
        except InvalidConfig as exc:
            raise InvalidConfig(
                f"{where}: layer_map {kind!r} with n_layers = {layers} against teacher "
                f"{teacher.where}: {exc}; drop that choice from the search space"
            ) from None
    if not space.can_be_positive("relation_weight"):
        return
    for heads in space.values("relation_heads"):
        for name, w in [
            ("teacher", width),
            *(("student", h) for h in space.values("hidden_size")),
        ]:
            if w % heads:
                raise InvalidConfig(
                    f"{where}: relation_heads = {heads} does not divide the {name}'s width {w} "
                    f"(teacher {teacher.where}); choose relation_heads dividing every width, "
                    f"e.g. a divisor of {width}"
                )
