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

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
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
from nas.layer_plan import LAYER_MAPS, check_layer_space, planned_teacher_shape
from nas.params import (
    HIDDEN_KINDS,
    INT_PARAMS,
    LOSS_KEYS,
    PARAM_NAMES,
    TrialParams,
    check_heads_divide,
    check_integer,
    integral,
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
}
# The parameters that take names, and the names they take.
_CHOICES: dict[str, tuple[str, ...]] = {"hidden_kind": HIDDEN_KINDS, "layer_map": LAYER_MAPS}
_ENUMERATE_LIMIT = 100_000


@dataclass(frozen=True)
class SearchSpace:
    """Distributions by parameter name, in the order of :data:`PARAM_NAMES`, then
    :data:`LOSS_KEYS` when the space defines the intermediate losses."""

    distributions: dict[str, BaseDistribution]
    source_file: str = ""

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample every parameter on ``trial``; raises InvalidConfig when a rule is broken.

        The flat mapping Optuna records (and Ray carries to a worker, which builds the typed
        value with :meth:`trial_params`)."""
        params = {name: _suggest(trial, name, d) for name, d in self.distributions.items()}
        check_params(params)
        return params

    def validate(self, params: Mapping[str, Any], where: str = "params") -> dict[str, Any]:
        """Check user-given params (``--params``, the baseline) lie in this space.

        Returns the params with ints coerced; raises InvalidConfig naming the value and range.
        """
        unknown = [n for n in params if n not in self.distributions]
        if unknown:
            raise InvalidConfig(
                f"{where}: unknown parameter {shown(unknown[0])}; the search space "
                f"{self.source_file} defines {', '.join(self.distributions)}"
            )
        missing = [n for n in self.distributions if n not in params]
        if missing:
            raise InvalidConfig(
                f"{where}: missing {', '.join(missing)}; give a value for every parameter of "
                f"{self.source_file or 'the search space'}"
            )
        clean = {}
        for name, dist in self.distributions.items():
            value = integral(params[name]) if name in INT_PARAMS else params[name]
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
    """The rules of the params given (any subset): integers, bounds, heads that divide the
    hidden size. Raises InvalidConfig with the fix."""
    for name, names in _CHOICES.items():
        if name in params and params[name] not in names:
            raise InvalidConfig(
                f"{name} = {shown(params[name])} must be one of {', '.join(names)}"
            )
    for name, (low, high) in _BOUNDS.items():
        if name not in params:
            continue
        value = params[name]
        if name in INT_PARAMS:
            check_integer(name, value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidConfig(f"{name} = {shown(value)} must be a number, unquoted")
        if not low <= value <= high:  # NaN too
            raise InvalidConfig(f"{name} = {shown(value)} must lie in [{low}, {high}]")
    if "n_heads" in params and "hidden_size" in params:
        check_heads_divide(params["n_heads"], params["hidden_size"])


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
    allowed = (*PARAM_NAMES, *LOSS_KEYS)
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}: unknown parameter {shown(unknown[0])}; allowed: {', '.join(allowed)}"
        )
    missing = [k for k in PARAM_NAMES if k not in raw]
    if missing:
        raise ConfigError(f"{where}: missing parameters {missing}; give a distribution or a value")
    losses = [k for k in LOSS_KEYS if k in raw]
    if losses and len(losses) < len(LOSS_KEYS):
        raise ConfigError(
            f"{where}: defines {', '.join(losses)} but not "
            f"{', '.join(k for k in LOSS_KEYS if k not in raw)}; the intermediate losses take "
            f"all of {', '.join(LOSS_KEYS)} (fixed values allowed, e.g. pkd_weight: 0) or none"
        )
    names = (*PARAM_NAMES, *LOSS_KEYS) if losses else PARAM_NAMES
    dists = {name: parse_distribution(raw[name], where, name) for name in names}
    for name in names:
        _check_bounds(dists[name], where, name)
    _check_combinations(dists, where)
    return SearchSpace(dists, where)


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
    if name in _CHOICES and not isinstance(dist, CategoricalDistribution):
        raise ConfigError(
            f"{where}: {name} must be a categorical distribution or a fixed value, one of "
            f"{', '.join(_CHOICES[name])}"
        )
    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:
            try:
                check_params({name: choice})
            except InvalidConfig as exc:
                raise ConfigError(f"{where}: choice {exc}") from None
        return
    assert isinstance(dist, IntDistribution | FloatDistribution)
    low, high = _BOUNDS[name]
    if name in INT_PARAMS and isinstance(dist, FloatDistribution):
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
