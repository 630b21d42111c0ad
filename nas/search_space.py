"""Search spaces: the only reader of ``search_spaces/*.yaml`` and the only caller of
``trial.suggest_*``. The rules a parameter obeys whatever the space says live in
:func:`check_params`, which applies the shape's own rules (integers, heads that divide the hidden
size: :mod:`nas.params`) and each parameter's bounds; :meth:`SearchSpace.trial_params` turns
checked params into the typed :class:`nas.params.TrialParams` a trial runs.

Each parameter is written in Optuna's distribution format, either the short form

    learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
    n_heads: {type: categorical, choices: [2, 4, 8]}

or Optuna's JSON form (``optuna.distributions.distribution_to_json``):

    n_layers: {name: IntDistribution, attributes: {low: 1, high: 6, step: 1, log: false}}

A plain value (``epochs: 2``) fixes the parameter; it is still recorded with each trial.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    json_to_distribution,
)

from nas.config import shown
from nas.errors import ConfigError, InvalidConfig
from nas.family_shapes import EMBEDDING_INITS, FAMILIES, POOLINGS, SHAPES, parse_widths
from nas.layer_plan import LAYER_MAPS, check_layer_space, planned_teacher_shape
from nas.params import (
    FAMILY_KEY,
    HIDDEN_KINDS,
    INT_PARAMS,
    LOSS_KEYS,
    OVERRIDABLE,
    PARAM_NAMES,
    RECIPE_KEYS,
    SHAPE_KEYS,
    VOCAB_KEY,
    TrialParams,
    check_heads_divide,
    check_integer,
    check_one_family,
    family_param,
    integral,
    section_keys,
)
from nas.safe_yaml import load_yaml

if TYPE_CHECKING:
    from nas.config import StudyConfig

# Closed ranges each parameter must stay in, whatever the search space says.
_BOUNDS: dict[str, tuple[float, float]] = {
    "n_layers": (1, 48),
    "n_heads": (1, 128),
    "hidden_size": (1, 8192),
    "ffn_dim": (1, 65536),
    "temperature": (1e-3, 100.0),
    "alpha": (0.0, 1.0),
    "learning_rate": (1e-8, 1.0),
    "warmup_ratio": (0.0, 1.0),
    "weight_decay": (0.0, 1.0),
    "batch_size": (1, 4096),
    "epochs": (1e-3, 1000.0),
    "hidden_weight": (0.0, 1000.0),
    "pkd_weight": (0.0, 1000.0),
    "relation_weight": (0.0, 1000.0),
    "relation_heads": (1, 128),
    "vocab_size": (0, 10_000_000),
}
# The parameters that take names, and the names they take.
_CHOICES: dict[str, tuple[Any, ...]] = {
    "hidden_kind": HIDDEN_KINDS,
    "layer_map": LAYER_MAPS,
    FAMILY_KEY: FAMILIES,
}
# The same for the keys of a non-transformer family's section (``bilstm.hidden_size``).
_FAMILY_BOUNDS: dict[str, tuple[float, float]] = {
    "embedding_dim": (1, 4096),
    "hidden_size": (1, 8192),
    "n_layers": (1, 2),
    "fc_dim": (1, 65536),
    "dropout": (0.0, 0.99),
    "n_filters": (1, 8192),
    "hidden_dim": (0, 65536),
}
_FAMILY_CHOICES: dict[str, tuple[Any, ...]] = {
    "pooling": POOLINGS,
    "embeddings": EMBEDDING_INITS,
    "freeze_embeddings": (False, True),
}
_LOSS_WEIGHTS = ("hidden_weight", "pkd_weight", "relation_weight")
_SECTIONS = tuple(f for f in FAMILIES if f != "distilbert")  # families a space gives a section
_ENUMERATE_LIMIT = 100_000


@dataclass(frozen=True)
class SearchSpace:
    """Distributions by parameter name, in the order of :data:`PARAM_NAMES`, then
    :data:`LOSS_KEYS` when the space defines the intermediate losses; ``family`` and
    ``vocab_size`` when it has them.

    ``families`` holds each non-transformer family's own parameters by their key in its
    section (``hidden_size``); Optuna records them as ``bilstm.hidden_size``, and they exist
    only in trials of that family (define-by-run), as the transformer's shape and layer losses
    exist only in ``distilbert`` trials. A section's recipe keys replace the shared ones.
    """

    distributions: dict[str, BaseDistribution]
    source_file: str = ""
    families: dict[str, dict[str, BaseDistribution]] = field(default_factory=dict)

    def family_choices(self) -> tuple[str, ...]:
        """The families trials of this space can be: ``("distilbert",)`` without ``family``."""
        dist = self.distributions.get(FAMILY_KEY)
        if dist is None:
            return ("distilbert",)
        assert isinstance(dist, CategoricalDistribution)
        return tuple(str(c) for c in dist.choices)

    def names_for(self, family: str) -> dict[str, BaseDistribution]:
        """The distributions a trial of ``family`` samples, by recorded name, ``family``
        itself excluded."""
        own = self.families.get(family, {})
        out = {}
        for name, dist in self.distributions.items():
            distilbert_only = name in (*SHAPE_KEYS, *LOSS_KEYS)
            if name == FAMILY_KEY or name in own or (distilbert_only and family != "distilbert"):
                continue
            out[name] = dist
        out.update({family_param(family, key): dist for key, dist in own.items()})
        return out

    def flat(self) -> dict[str, BaseDistribution]:
        """Every distribution of the space by the name Optuna records (all families')."""
        out = dict(self.distributions)
        for family, own in self.families.items():
            out.update({family_param(family, key): dist for key, dist in own.items()})
        return out

    def vocab_sizes(self) -> dict[str, list[Any]]:
        """Every value each ``vocab_size`` of the space can take, by recorded name (the shared
        one and each family's); raises ConfigError for a continuous ``vocab_size``."""
        out = {}
        for name, dist in self.flat().items():
            if name.rpartition(".")[2] == VOCAB_KEY:
                values = _finite_values(dist)
                if values is None:
                    raise ConfigError(
                        f"{self.source_file}: {name} must be categorical or a stepped int "
                        "distribution so that every size can be checked against the tokenizer"
                    )
                out[name] = values
        return out

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample every parameter on ``trial``; raises InvalidConfig when a rule is broken.

        The flat mapping Optuna records (and Ray carries to a worker, which builds the typed
        value with :meth:`trial_params`): the family first, then what that family has."""
        params: dict[str, Any] = {}
        family = "distilbert"
        if FAMILY_KEY in self.distributions:
            family = params[FAMILY_KEY] = _suggest(
                trial, FAMILY_KEY, self.distributions[FAMILY_KEY]
            )
        for name, dist in self.names_for(family).items():
            params[name] = _suggest(trial, name, dist)
        check_params(params)
        return params

    def validate(self, params: Mapping[str, Any], where: str = "params") -> dict[str, Any]:
        """Check user-given params (``--params``, the baseline) lie in this space.

        Returns the params with ints coerced; raises InvalidConfig naming the value and range.
        """
        family = "distilbert"
        expected = dict(self.distributions)
        if FAMILY_KEY in self.distributions:
            family = params.get(FAMILY_KEY, "distilbert")
            if not _contains(self.distributions[FAMILY_KEY], family):
                raise InvalidConfig(
                    f"{where}: {FAMILY_KEY} = {shown(family)} is not searched by "
                    f"{self.source_file}; use one of {', '.join(self.family_choices())}"
                )
            try:
                check_one_family(params, family)
            except InvalidConfig as exc:
                raise InvalidConfig(f"{where}: {exc}") from None
            expected = {FAMILY_KEY: self.distributions[FAMILY_KEY], **self.names_for(family)}
        unknown = [n for n in params if n not in expected]
        if unknown:
            raise InvalidConfig(
                f"{where}: unknown parameter {shown(unknown[0])}; the search space "
                f"{self.source_file} defines {', '.join(expected)}"
                + (f" for family {family}" if FAMILY_KEY in expected else "")
            )
        missing = [n for n in expected if n not in params]
        if missing:
            raise InvalidConfig(
                f"{where}: missing {', '.join(missing)}; give a value for every parameter of "
                f"{self.source_file or 'the search space'}"
            )
        clean = {}
        for name, dist in expected.items():
            value = integral(params[name]) if _is_int(name) else params[name]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not isinstance(dist, CategoricalDistribution) and not number:
                raise InvalidConfig(
                    f"{where}: {name} = {value!r} is not a number; write a number in "
                    f"{describe(dist)}, unquoted"
                )
            if not _contains(dist, value):
                raise InvalidConfig(
                    f"{where}: {name} = {value!r} is outside the search space "
                    f"({describe(dist)}); pick a value inside it or widen {self.source_file}"
                )
            clean[name] = value
        check_params(clean)
        return clean

    def trial_params(self, params: Mapping[str, Any], where: str = "params") -> TrialParams:
        """The typed value of params that lie in this space (see :meth:`validate`)."""
        return TrialParams.from_params(self.validate(params, where))

    def defines_layer_losses(self) -> bool:
        """Whether the space defines the intermediate-loss parameters (:data:`LOSS_KEYS`)."""
        return LOSS_KEYS[0] in self.distributions

    def values(self, name: str) -> list[Any]:
        """Every value parameter ``name`` can take (categorical or stepped int)."""
        values = _finite_values(self.distributions[name])
        if values is None:
            raise ConfigError(
                f"{self.source_file}: {name} must be categorical or a stepped int distribution "
                "so that every value can be checked against the teacher"
            )
        return values

    def can_be_positive(self, name: str) -> bool:
        """Whether the numeric parameter ``name`` can take a value above 0."""
        dist = self.distributions[name]
        if isinstance(dist, CategoricalDistribution):
            return any(isinstance(c, int | float) and c > 0 for c in dist.choices)
        assert isinstance(dist, IntDistribution | FloatDistribution)
        return dist.high > 0


def check_params(params: Mapping[str, Any]) -> None:
    """The rules of the params given (any subset, any family's): integers, bounds, names, heads
    that divide the hidden size. Raises InvalidConfig with the fix."""
    for name, value in params.items():
        choices = _choices_for(name)
        if choices is not None:
            if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
                raise InvalidConfig(
                    f"{name} = {shown(value)} must be one of {', '.join(map(str, choices))}"
                )
            continue
        if name.endswith(".filter_widths"):
            _check_widths(name, value)
            continue
        bounds = _bounds_for(name)
        if bounds is None:
            continue  # not a parameter: the space's reader names it
        low, high = bounds
        if _is_int(name):
            check_integer(name, value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidConfig(f"{name} = {shown(value)} must be a number, unquoted")
        if not low <= value <= high:  # NaN too
            raise InvalidConfig(f"{name} = {shown(value)} must lie in [{low}, {high}]")
    if "n_heads" in params and "hidden_size" in params:
        check_heads_divide(params["n_heads"], params["hidden_size"])


def _split(name: str) -> tuple[str, str]:
    """``bilstm.hidden_size`` -> ``("bilstm", "hidden_size")``; ``n_layers`` -> ``("", ...)``."""
    family, _, key = name.rpartition(".")
    return family, key


def _choices_for(name: str) -> tuple[Any, ...] | None:
    family, key = _split(name)
    table = _FAMILY_CHOICES if family and key not in OVERRIDABLE else _CHOICES
    return table.get(key)


def _bounds_for(name: str) -> tuple[float, float] | None:
    family, key = _split(name)
    table = _FAMILY_BOUNDS if family and key not in OVERRIDABLE else _BOUNDS
    return table.get(key)


def _is_int(name: str) -> bool:
    family, key = _split(name)
    if family and key not in OVERRIDABLE:
        fields = dataclasses.fields(SHAPES[family]) if family in SHAPES else ()
        return any(f.name == key and f.type == "int" for f in fields)
    return key in INT_PARAMS or key == VOCAB_KEY


def _check_widths(name: str, value: Any) -> None:
    widths = parse_widths(value)
    if (
        not widths
        or any(isinstance(w, bool) or not isinstance(w, int) for w in widths)
        or any(not 1 <= w <= 64 for w in widths)
    ):
        raise InvalidConfig(
            f"{name} = {shown(value)} must be window widths in tokens from 1 to 64, written "
            'as a string such as "3,4,5"'
        )


def study_space(config: StudyConfig) -> SearchSpace:
    """The study's search space with its baseline checked against it.

    Cheap (two YAML files, no data, no teacher): commands call it before anything expensive.
    """
    space = load_search_space(config.paths.search_space)
    if config.baseline:
        space.validate(config.baseline, where=f"{config.source_file}: baseline")
    teacher = planned_teacher_shape(config)
    if teacher is not None:  # a hub teacher: checked when nas.trial.prepare loads it
        check_layer_space(space, teacher)
    return space


def load_search_space(path: str | Path) -> SearchSpace:
    """Read a search space YAML; every error names the file, the parameter and the fix."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ConfigError(f"{where}: search space file not found; see search_spaces/ for examples")
    raw = load_yaml(path.read_text(), where)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of parameter name to distribution")
    sections = {k: raw.pop(k) for k in _SECTIONS if k in raw}
    allowed = (*PARAM_NAMES, *LOSS_KEYS, FAMILY_KEY, VOCAB_KEY, *_SECTIONS)
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}: unknown parameter {shown(unknown[0])}; allowed: {', '.join(allowed)}"
        )
    choices: tuple[Any, ...] = ("distilbert",)
    dists: dict[str, BaseDistribution] = {}
    if FAMILY_KEY in raw:
        dists[FAMILY_KEY] = parse_distribution(raw[FAMILY_KEY], where, FAMILY_KEY)
        _check_bounds(dists[FAMILY_KEY], where, FAMILY_KEY)
        choices = tuple(dists[FAMILY_KEY].choices)  # type: ignore[attr-defined]
    transformer = "distilbert" in choices
    if not transformer:
        stray = [k for k in (*SHAPE_KEYS, *LOSS_KEYS) if k in raw]
        if stray:
            raise ConfigError(
                f"{where}: {stray[0]} is a distilbert parameter, but family searches "
                f"{', '.join(choices)}; drop it or add distilbert to family's choices"
            )
    required = PARAM_NAMES if transformer else RECIPE_KEYS
    missing = [k for k in required if k not in raw]
    if missing:
        raise ConfigError(f"{where}: missing parameters {missing}; give a distribution or a value")
    losses = [k for k in LOSS_KEYS if k in raw]
    if losses and len(losses) < len(LOSS_KEYS):
        raise ConfigError(
            f"{where}: defines {', '.join(losses)} but not "
            f"{', '.join(k for k in LOSS_KEYS if k not in raw)}; the intermediate losses take "
            f"all of {', '.join(LOSS_KEYS)} (fixed values allowed, e.g. pkd_weight: 0) or none"
        )
    names = [*required, *(LOSS_KEYS if losses else ()), *([VOCAB_KEY] if VOCAB_KEY in raw else [])]
    for name in names:
        dists[name] = parse_distribution(raw[name], where, name)
        _check_bounds(dists[name], where, name)
    if transformer:
        _check_combinations(dists, where)
    families = _load_sections(sections, choices, where)
    space = SearchSpace(dists, where, families)
    shared = space.vocab_sizes().get(VOCAB_KEY, [0])  # continuous sizes fail here
    if losses and any(shared) and any(space.can_be_positive(k) for k in _LOSS_WEIGHTS):
        raise ConfigError(
            f"{where}: vocab_size can prune the vocabulary of distilbert students that the "
            "intermediate layer losses train beside the teacher, which reads the whole "
            "vocabulary's ids; set vocab_size: 0 or every layer-loss weight to 0"
        )
    return space


def _load_sections(
    sections: Mapping[str, Any], choices: tuple[Any, ...], where: str
) -> dict[str, dict[str, BaseDistribution]]:
    """Each searched non-transformer family's section: its shape and embedding keys (all
    required), and any shared keys it overrides."""
    for family in sections:
        if family not in choices:
            raise ConfigError(
                f"{where}: a {family} section, but family searches {', '.join(map(str, choices))}"
                f"; add {family} to family's choices (family: {{type: categorical, choices: "
                f"[..., {family}]}}) or drop the section"
            )
    out: dict[str, dict[str, BaseDistribution]] = {}
    for family in (c for c in choices if c != "distilbert"):
        section = sections.get(family)
        required = section_keys(family)
        if not isinstance(section, dict):
            raise ConfigError(
                f"{where}: family searches {family} but the space has no {family} section; add "
                f"{family}: {{{', '.join(required)}}} (distributions or values)"
            )
        allowed = (*required, *OVERRIDABLE)
        unknown = [k for k in section if k not in allowed]
        if unknown:
            raise ConfigError(
                f"{where}: {family}: unknown parameter {shown(unknown[0])}; a {family} section "
                f"takes {', '.join(required)}, and may override {', '.join(OVERRIDABLE)}"
            )
        missing = [k for k in required if k not in section]
        if missing:
            raise ConfigError(
                f"{where}: {family}: missing {', '.join(missing)}; give a distribution or a value"
            )
        own = {}
        for key in (*required, *(k for k in OVERRIDABLE if k in section)):
            name = family_param(family, key)
            own[key] = parse_distribution(section[key], where, name)
            _check_bounds(own[key], where, name)
        out[family] = own
    return out


def parse_distribution(spec: Any, where: str, name: str) -> BaseDistribution:
    """One parameter's distribution from the short form, Optuna's JSON form or a fixed value."""
    if not isinstance(spec, dict):
        if isinstance(spec, list):
            raise ConfigError(
                f"{where}: {name} = {shown(spec)}; write "
                f"{{type: categorical, choices: {shown(spec)}}}"
            )
        return CategoricalDistribution([spec])
    try:
        if "name" in spec:
            return json_to_distribution(json.dumps(spec))
        return _short_form(spec, name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {name}: {exc}") from None
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise ConfigError(
            f"{where}: {name} = {shown(spec)} is not a valid distribution ({shown(str(exc))})"
        ) from None


def _short_form(spec: dict[str, Any], name: str) -> BaseDistribution:
    kind = spec.get("type")
    allowed = {
        "float": {"type", "low", "high", "log", "step"},
        "int": {"type", "low", "high", "log", "step"},
        "categorical": {"type", "choices"},
    }
    if kind not in allowed:
        raise ConfigError(f"type = {shown(kind)}; use one of float, int, categorical")
    extra = set(spec) - allowed[kind]
    if extra:
        raise ConfigError(
            f"unknown key {shown(sorted(extra, key=str)[0])}; allowed: {sorted(allowed[kind])}"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"choices = {shown(choices)} must be a non-empty list")
        odd = [c for c in choices if c is not None and not isinstance(c, bool | int | float | str)]
        if odd:  # Optuna stores choices as JSON scalars only
            raise ConfigError(f"choice {shown(odd[0])} must be a number or a string")
        return CategoricalDistribution(choices)
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{kind} needs low and high, got {shown(spec)}")
    low, high = float(spec["low"]), float(spec["high"])
    _check_finite(low, high, spec)
    if low > high:
        raise ConfigError(f"low = {spec['low']} is above high = {spec['high']}; swap them")
    log = bool(spec.get("log", False))
    if kind == "int":
        return IntDistribution(int(low), int(high), log=log, step=int(spec.get("step", 1)))
    step = spec.get("step")
    return FloatDistribution(low, high, log=log, step=None if step is None else float(step))


def _check_finite(low: float, high: float, spec: Any) -> None:
    """Infinite, NaN or overflowing bounds make NumPy's samplers fail mid-study."""
    for key, value in (("low", low), ("high", high)):
        if not math.isfinite(value):
            raise ConfigError(
                f"{key} = {value} (from {shown(spec)}) is not a finite number; "
                "write a finite bound"
            )
    if not math.isfinite(high - low):
        raise ConfigError(f"high - low of {shown(spec)} overflows; narrow the range")


def _check_bounds(dist: BaseDistribution, where: str, name: str) -> None:
    choices = _choices_for(name)
    named = choices is not None or name.endswith(".filter_widths")
    if named and not isinstance(dist, CategoricalDistribution):
        raise ConfigError(
            f"{where}: {name} must be a categorical distribution or a fixed value"
            + (f", one of {', '.join(map(str, choices))}" if choices else "")
        )
    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:
            try:
                check_params({name: choice})
            except InvalidConfig as exc:
                raise ConfigError(f"{where}: choice {exc}") from None
        return
    assert isinstance(dist, IntDistribution | FloatDistribution)
    bounds = _bounds_for(name)
    assert bounds is not None, name  # every numeric parameter has bounds
    low, high = bounds
    if _is_int(name) and isinstance(dist, FloatDistribution):
        raise ConfigError(f"{where}: {name} must be an int or categorical distribution")
    try:  # the JSON form reaches here without the short form's check
        _check_finite(float(dist.low), float(dist.high), describe(dist))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {name}: {exc}") from None
    if dist.low < low or dist.high > high:
        raise ConfigError(
            f"{where}: {name} range [{dist.low}, {dist.high}] leaves the allowed [{low}, {high}]"
        )


def _finite_values(dist: BaseDistribution) -> list[Any] | None:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution) and not dist.log:
        count = (dist.high - dist.low) // dist.step + 1
        if count <= _ENUMERATE_LIMIT:
            return list(range(dist.low, dist.high + 1, dist.step))
    return None


def _check_combinations(dists: Mapping[str, BaseDistribution], where: str) -> None:
    """Every (n_heads, hidden_size) pair the space can produce must be a valid student."""
    heads, hidden = _finite_values(dists["n_heads"]), _finite_values(dists["hidden_size"])
    if heads is None or hidden is None:
        raise ConfigError(
            f"{where}: n_heads and hidden_size must be categorical or stepped int distributions "
            "so that every pair can be checked; e.g. hidden_size: {type: int, low: 128, "
            "high: 768, step: 64}"
        )
    bad = [(h, d) for h, d in itertools.product(heads, hidden) if d % h]
    if bad:
        h, d = bad[0]
        lcm = math.lcm(*heads)
        raise ConfigError(
            f"{where}: n_heads = {h} does not divide hidden_size = {d} ({len(bad)} such pairs); "
            f"make every hidden_size a multiple of {lcm} or drop that head count"
        )


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _contains(dist: BaseDistribution, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def describe(dist: BaseDistribution) -> str:
    """A short human form of a distribution, for errors and tables."""
    if isinstance(dist, CategoricalDistribution):
        return f"one of {list(dist.choices)}"
    assert isinstance(dist, IntDistribution | FloatDistribution)
    text = f"[{dist.low}, {dist.high}]"
    if dist.step not in (None, 1) or isinstance(dist, FloatDistribution) and dist.step:
        text += f" step {dist.step}"
    return text + (" log" if dist.log else "")
