"""Trial parameters as typed values: a student's shape and its training recipe.

A trial's parameters are sampled (or given with ``--params``, or as the baseline) as a flat
mapping of the names Optuna stores (``n_layers``, ..., ``epochs``); the search space checks them
(:meth:`nas.search_space.SearchSpace.trial_params`) and turns them into a :class:`TrialParams`,
which is what the trial (``nas.trial.run_trial``) and the training loop read. Nothing reads the
flat mapping with defaults: every field is required.

This module is top-level, beside ``search_space.py``, rather than in ``nas/students`` or
``nas/trial``: the search space builds these values and may import no package (see
``tests/test_layering.py``), while ``students/`` (the shape) and ``trial/`` (the recipe) both
read them. It imports nothing heavy (no torch, no Optuna).

It is also the one home of the rules a shape obeys whatever the search space says: integer
parameters are integers (:func:`check_integer`) and heads divide the hidden size
(:func:`check_heads_divide`), each with one message and one piece of advice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nas.config import shown
from nas.errors import InvalidConfig
from nas.family_shapes import (
    EMBEDDING_INITS,
    FAMILIES,
    FamilyShape,
    family_shape,
    flat_shape,
    shape_fields,
)
from nas.layer_plan import LAYER_MAPS

SHAPE_KEYS = ("n_layers", "n_heads", "hidden_size", "ffn_dim")
# Heads narrower than this are not suggested when heads do not divide the hidden size.
MIN_SUGGESTED_HEAD_DIM = 8


def check_integer(name: str, value: Any) -> int:
    """The integer rule: ``value`` of the integer parameter ``name`` is an ``int`` (not a bool).

    Raises:
        InvalidConfig: naming the parameter and the value, with the fix.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidConfig(
            f"{name} = {shown(value)} must be an integer; write a whole number, unquoted "
            "(an int or categorical distribution in a search space)"
        )
    return value


def integral(value: Any) -> Any:
    """An integral float as its int (``3.0`` -> ``3``: JSON written by other tools); any other
    value as it is, for :func:`check_integer` to judge."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def check_heads_divide(n_heads: int, hidden_size: int) -> None:
    """The heads rule: ``n_heads`` divides ``hidden_size`` (each head gets an equal slice).

    Raises:
        InvalidConfig: naming both values, and the head counts near ``n_heads`` that divide
            ``hidden_size`` with heads of at least :data:`MIN_SUGGESTED_HEAD_DIM` dimensions.
    """
    if hidden_size % n_heads == 0:
        return
    near = ", ".join(map(str, _divisors_near(hidden_size, n_heads)))
    raise InvalidConfig(
        f"n_heads = {n_heads} does not divide hidden_size = {hidden_size}; choose a "
        f"hidden_size that {n_heads} divides, or n_heads such as {near}"
    )


def _divisors_near(number: int, target: int, count: int = 4) -> list[int]:
    """The ``count`` divisors of ``number`` nearest ``target`` by ratio, sorted."""
    divisors = [
        d
        for d in range(1, number + 1)
        if number % d == 0 and number // d >= MIN_SUGGESTED_HEAD_DIM
    ]
    nearest = sorted(divisors, key=lambda d: abs(math.log(d / target)))  # ratio distance
    return sorted(nearest[:count]) or [1]


@dataclass(frozen=True)
class StudentShape:
    """The searched architecture of a DistilBERT student."""

    n_layers: int  # transformer layers
    n_heads: int  # attention heads per layer; divides hidden_size
    hidden_size: int  # width of the residual stream (DistilBERT's `dim`)
    ffn_dim: int  # neurons of each layer's feed-forward block (DistilBERT's `hidden_dim`)

    def __post_init__(self) -> None:
        for key in SHAPE_KEYS:
            value = check_integer(key, getattr(self, key))
            if value < 1:
                raise InvalidConfig(f"{key} = {value} must be at least 1; fix the search space")
        check_heads_divide(self.n_heads, self.hidden_size)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_heads

    @classmethod
    def from_config(cls, config: Any) -> StudentShape:
        """The shape of a built student, from its ``DistilBertConfig``."""
        return cls(config.n_layers, config.n_heads, config.dim, config.hidden_dim)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> StudentShape:
        """Read the shape from trial parameters; other keys (learning rate...) are ignored.

        Raises:
            InvalidConfig: a key is missing, not an integer, < 1, or heads do not divide the size.
        """
        missing = [key for key in SHAPE_KEYS if key not in params]
        if missing:
            raise InvalidConfig(
                f"student parameters lack {missing} (got {sorted(params)}); the search space "
                f"must define {', '.join(SHAPE_KEYS)}"
            )
        return cls(**{key: integral(params[key]) for key in SHAPE_KEYS})


@dataclass(frozen=True)
class TrainingRecipe:
    """How one student is trained: the per-trial knobs of the loss, optimizer and schedule.

    The seed is not a parameter: it is the study's ``training.seed`` (or a confirmation run's).
    Values keep the type they were given (``epochs: 2`` stays an int) so that
    :meth:`TrialParams.as_dict` gives back what Optuna stored.
    """

    temperature: float
    """Softening temperature T of the KL soft loss (the loss is scaled by T**2); unused by MSE."""
    alpha: float
    """Weight of the soft (distillation) loss in [0, 1]; ``1 - alpha`` weighs the hard labels,
    and 0 trains on the hard labels alone."""
    learning_rate: float
    """Peak learning rate of AdamW."""
    warmup_ratio: float
    """Fraction of the optimizer steps spent warming the learning rate up linearly from 0; it
    then decays linearly to 0 at the last step."""
    weight_decay: float
    """AdamW's decoupled weight decay (biases and LayerNorm weights get none)."""
    batch_size: int
    """Training features per optimizer step."""
    epochs: float
    """Passes over the training features; fractions allowed (steps are rounded up), capped by
    ``training.max_steps``."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                check_integer(f.name, value)
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidConfig(f"{f.name} = {shown(value)} must be a number, unquoted")


HIDDEN_KINDS = ("mse", "cosine")


@dataclass(frozen=True)
class LayerLosses:
    """The intermediate-layer losses added to the logit loss (``nas.trial.layer_losses``).

    A search space defines all of these or none (:data:`LOSS_KEYS`); none leaves a trial with
    the logit loss alone, as every study before these losses existed, and stores no such
    parameters. With every weight 0 the trial trains exactly as without them, on the cached
    teacher logits; with any weight above 0 the teacher runs beside the student in every step
    (without gradients).
    """

    hidden_weight: float
    """Weight of the hidden-state loss between mapped layers; 0 turns it off."""
    hidden_kind: str
    """``mse`` (TinyBERT: MSE through a learned projection, dropped at export) or ``cosine``
    (DistilBERT: ``1 - cos``, projected too when the widths differ)."""
    pkd_weight: float
    """Weight of Patient KD's loss on the normalised [CLS] states of the mapped layers but the
    last (all of them for a 1-layer student); 0 turns it off."""
    relation_weight: float
    """Weight of MiniLMv2's Q-Q, K-K, V-V self-attention relation loss; 0 turns it off."""
    relation_heads: int
    """Relation heads of that loss; divides the teacher's and the student's widths."""
    layer_map: str
    """Which teacher layer each student layer learns from: ``uniform``, ``last`` or ``skip``
    (:func:`nas.layer_plan.layer_map`)."""

    def __post_init__(self) -> None:
        for name in ("hidden_weight", "pkd_weight", "relation_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidConfig(f"{name} = {shown(value)} must be a number >= 0 (0: off)")
        if check_integer("relation_heads", self.relation_heads) < 1:
            raise InvalidConfig(f"relation_heads = {self.relation_heads} must be at least 1")
        if self.hidden_kind not in HIDDEN_KINDS:
            raise InvalidConfig(
                f"hidden_kind = {shown(self.hidden_kind)}; use one of {', '.join(HIDDEN_KINDS)}"
            )
        if self.layer_map not in LAYER_MAPS:
            raise InvalidConfig(
                f"layer_map = {shown(self.layer_map)}; use one of {', '.join(LAYER_MAPS)}"
            )

    @property
    def on(self) -> bool:
        """Whether any of the losses has a weight above 0 (the teacher runs in the loop)."""
        return self.hidden_weight > 0 or self.pkd_weight > 0 or self.relation_weight > 0


RECIPE_KEYS = tuple(f.name for f in dataclasses.fields(TrainingRecipe))
# Every trial parameter a search space must define, in the order a search space lists (and
# Optuna records) them.
PARAM_NAMES = (*SHAPE_KEYS, *RECIPE_KEYS)
# The intermediate-loss parameters: a search space defines all of them or none.
LOSS_KEYS = tuple(f.name for f in dataclasses.fields(LayerLosses))
# Parameters that must be integers whatever distribution gives them.
INT_PARAMS = (
    *SHAPE_KEYS,
    *(f.name for f in dataclasses.fields(TrainingRecipe) if f.type == "int"),
    *(f.name for f in dataclasses.fields(LayerLosses) if f.type == "int"),
)


# The student family a search space may search (absent: ``distilbert``, every study before the
# families existed) and the vocabulary size K (absent: the source's vocabulary, unpruned).
FAMILY_KEY = "family"
VOCAB_KEY = "vocab_size"
# How a non-transformer family's embeddings start, and whether training may change them; every
# such family's section of a search space defines both.
EMBEDDING_KEYS = ("embeddings", "freeze_embeddings")
# What a family's section may override of the shared parameters (the recipe, the vocabulary).
OVERRIDABLE = (*RECIPE_KEYS, VOCAB_KEY)


def family_param(family: str, key: str) -> str:
    """The name Optuna records for ``key`` of ``family``'s section: ``bilstm.hidden_size``."""
    return f"{family}.{key}"


def section_keys(family: str) -> tuple[str, ...]:
    """The keys a non-transformer ``family``'s section must define: its shape, then how its
    embeddings start."""
    return (*shape_fields(family), *EMBEDDING_KEYS)


def _family_of(params: Mapping[str, Any]) -> str:
    family = params.get(FAMILY_KEY, "distilbert")
    if family not in FAMILIES:
        raise InvalidConfig(f"{FAMILY_KEY} = {shown(family)}; use one of {', '.join(FAMILIES)}")
    return str(family)


def param_family(name: str) -> str | None:
    """The family a parameter belongs to (``bilstm.hidden_size``: bilstm; ``n_layers`` and the
    layer losses: distilbert), or None for the shared ones (the recipe, ``vocab_size``)."""
    if name in (*SHAPE_KEYS, *LOSS_KEYS):
        return "distilbert"
    return name.split(".", 1)[0] if "." in name else None


def check_one_family(params: Mapping[str, Any], family: str) -> None:
    """A parameter of another family than ``family`` is an error naming both."""
    for name in params:
        owner = param_family(name)
        if owner is not None and owner != family:
            raise InvalidConfig(
                f"{name} is a parameter of family {owner}, but {FAMILY_KEY} = {family}; drop "
                f"{name} or set {FAMILY_KEY}: {owner}"
            )


def params_over(base: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` over ``base`` (``--params`` over the baseline): when ``given`` names another
    family, only ``base``'s shared parameters carry over, not its family's own."""
    family = given.get(FAMILY_KEY, base.get(FAMILY_KEY, "distilbert"))
    kept = {k: v for k, v in base.items() if param_family(k) in (None, family)}
    return {**kept, **given}


@dataclass(frozen=True)
class TrialParams:
    """One trial's parameters, typed: what to build and how to train it."""

    shape: StudentShape | FamilyShape
    """A DistilBERT student's shape, or a ``bilstm`` / ``cnn`` / ``bow`` student's."""
    recipe: TrainingRecipe
    # None: the search space defines no intermediate losses (the logit loss alone); DistilBERT
    # students only
    losses: LayerLosses | None = None
    vocab_size: int | None = None
    """Keep the K most frequent WordPiece tokens (``nas.students.vocab``); None or 0: the
    source's whole vocabulary."""
    embeddings: str = "source"
    """Non-transformer families: ``source`` (the student source's word embeddings reduced by
    PCA) or ``random``."""
    freeze_embeddings: bool = False
    """Non-transformer families: keep the embeddings fixed in training."""
    named: tuple[str, ...] = ()
    """The names Optuna recorded beyond the shape and recipe: ``family`` when the space has
    it, and the shared keys the family's section overrode (``bilstm.learning_rate``)."""

    @property
    def family(self) -> str:
        return "distilbert" if isinstance(self.shape, StudentShape) else self.shape.family

    @property
    def pruned_vocab(self) -> int | None:
        """K when the vocabulary is pruned, else None."""
        return self.vocab_size or None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrialParams:
        """The typed value of a flat mapping as a search space records it: for ``distilbert``
        exactly :data:`PARAM_NAMES`, and either all of :data:`LOSS_KEYS` or none of them; for
        another family its section's keys (``bilstm.hidden_size``) and the recipe; ``family``
        and ``vocab_size`` when the space has them.

        Checks names and types only; :meth:`nas.search_space.SearchSpace.trial_params` checks
        the values against a search space first (a space that defines the losses requires them).

        Raises:
            InvalidConfig: a name is missing or unknown, belongs to another family, or a value
                has the wrong type.
        """
        family = _family_of(params)
        check_one_family(params, family)
        if family != "distilbert":
            return cls._family_params(params, family)
        allowed = (*PARAM_NAMES, *LOSS_KEYS, FAMILY_KEY, VOCAB_KEY)
        missing = [name for name in PARAM_NAMES if name not in params]
        unknown = [name for name in params if name not in allowed]
        given = [name for name in LOSS_KEYS if name in params]
        if given and len(given) < len(LOSS_KEYS):
            missing += [name for name in LOSS_KEYS if name not in params]
        if missing or unknown:
            raise InvalidConfig(
                f"trial parameters: missing {missing}, unknown {unknown}; a trial takes exactly "
                f"{', '.join(PARAM_NAMES)}, and all or none of {', '.join(LOSS_KEYS)}"
            )
        losses = None
        if given:
            values = {name: params[name] for name in LOSS_KEYS}
            values["relation_heads"] = integral(values["relation_heads"])
            losses = LayerLosses(**values)
        return cls(
            StudentShape.from_params(params),
            _recipe({name: params[name] for name in RECIPE_KEYS}),
            losses,
            vocab_size=_vocab(params.get(VOCAB_KEY)),
            named=tuple(name for name in (FAMILY_KEY, VOCAB_KEY) if name in params),
        )

    @classmethod
    def _family_params(cls, params: Mapping[str, Any], family: str) -> TrialParams:
        prefix = family + "."
        own = {name[len(prefix) :]: v for name, v in params.items() if name.startswith(prefix)}
        required = section_keys(family)
        allowed = (*required, *OVERRIDABLE)
        missing = [family_param(family, k) for k in required if k not in own]
        missing += [k for k in RECIPE_KEYS if k not in params and k not in own]
        unknown = [family_param(family, k) for k in own if k not in allowed]
        unknown += [
            name
            for name in params
            if not name.startswith(prefix) and name not in (*OVERRIDABLE, FAMILY_KEY)
        ]
        if missing or unknown:
            raise InvalidConfig(
                f"trial parameters of family {family}: missing {missing}, unknown {unknown}; "
                f"it takes {', '.join(family_param(family, k) for k in required)} and "
                f"{', '.join(RECIPE_KEYS)} (each may be given as {prefix}NAME)"
            )
        shape_values = {k: integral(own[k]) for k in shape_fields(family)}
        shape = family_shape(family, shape_values)
        overrides = tuple(k for k in OVERRIDABLE if k in own)
        recipe = _recipe({k: own[k] if k in own else params[k] for k in RECIPE_KEYS})
        vocab = own[VOCAB_KEY] if VOCAB_KEY in own else params.get(VOCAB_KEY)
        embeddings, freeze = own["embeddings"], own["freeze_embeddings"]
        if embeddings not in EMBEDDING_INITS:
            raise InvalidConfig(
                f"{family_param(family, 'embeddings')} = {shown(embeddings)}; use one of "
                f"{', '.join(EMBEDDING_INITS)}"
            )
        if not isinstance(freeze, bool):
            raise InvalidConfig(
                f"{family_param(family, 'freeze_embeddings')} = {shown(freeze)} must be true "
                "or false"
            )
        named = (FAMILY_KEY,) + tuple(family_param(family, k) for k in overrides)
        if VOCAB_KEY in params and VOCAB_KEY not in own:
            named += (VOCAB_KEY,)
        return cls(shape, recipe, None, _vocab(vocab), embeddings, freeze, named)

    def as_dict(self) -> dict[str, Any]:
        """The flat mapping Optuna stores (and ``nas.json`` records): the inverse of
        :meth:`from_params`."""
        family = self.family
        out: dict[str, Any] = {FAMILY_KEY: family} if FAMILY_KEY in self.named else {}
        recipe = dataclasses.asdict(self.recipe)
        if isinstance(self.shape, StudentShape):
            out.update(dataclasses.asdict(self.shape))
            out.update(recipe)
        else:
            own = {**flat_shape(self.shape), "embeddings": self.embeddings}
            own["freeze_embeddings"] = self.freeze_embeddings
            out.update({family_param(family, k): v for k, v in own.items()})
            for key, value in recipe.items():
                name = family_param(family, key)
                out[name if name in self.named else key] = value
        for name in (VOCAB_KEY, family_param(family, VOCAB_KEY)):
            if name in self.named:
                out[name] = self.vocab_size
        if self.losses is not None:
            out.update(dataclasses.asdict(self.losses))
        return out

    @property
    def layer_losses_on(self) -> bool:
        """Whether an intermediate loss has a weight above 0."""
        return self.losses is not None and self.losses.on


def _recipe(values: dict[str, Any]) -> TrainingRecipe:
    values["batch_size"] = integral(values["batch_size"])
    return TrainingRecipe(**values)


def _vocab(value: Any) -> int | None:
    if value is None:
        return None
    value = check_integer(VOCAB_KEY, integral(value))
    if value < 0:
        raise InvalidConfig(
            f"{VOCAB_KEY} = {value} must be 0 (the whole vocabulary) or the number of tokens "
            "to keep"
        )
    return value


def shape_label(params: Mapping[str, Any]) -> str:
    """A short label of a trial's student from its recorded params, for progress lines and
    plots: ``L2 H4 d64 ffn128``, ``bilstm E64 H150x2 max``, ``cnn E64 w3,4,5 x100``,
    ``bow E16 h0``; `` V5000`` when the vocabulary is pruned."""
    family = params.get(FAMILY_KEY, "distilbert")
    p = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(f"{family}.")}
    if family == "bilstm":
        text = f"bilstm E{p.get('embedding_dim', '?')} H{p.get('hidden_size', '?')}"
        text += f"x{p.get('n_layers', '?')} {p.get('pooling', '?')}"
    elif family == "cnn":
        text = f"cnn E{p.get('embedding_dim', '?')} w{p.get('filter_widths', '?')}"
        text += f" x{p.get('n_filters', '?')}"
    elif family == "bow":
        text = f"bow E{p.get('embedding_dim', '?')} h{p.get('hidden_dim', '?')}"
    else:
        text = (
            f"L{params.get('n_layers', '?')} H{params.get('n_heads', '?')} "
            f"d{params.get('hidden_size', '?')} ffn{params.get('ffn_dim', '?')}"
        )
    vocab = p.get(VOCAB_KEY, params.get(VOCAB_KEY))
    return text + (f" V{vocab}" if vocab else "")
