"""Search space files: parsing, rules, sampling, validation; every shipped file loads."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nas.errors import ConfigError, InvalidConfig
from nas.params import LOSS_KEYS, StudentShape, TrialParams
from nas.search_space import PARAM_NAMES, check_params, load_search_space

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "search_spaces" / "quickstart.yaml"


def write_space(tmp_path: Path, **overrides: str) -> Path:
    lines = {
        line.split(":", 1)[0]: line
        for line in BASE.read_text().splitlines()
        if line and not line.startswith("#")
    }
    for name, spec in overrides.items():
        lines[name] = f"{name}: {spec}" if spec else ""
    path = tmp_path / "space.yaml"
    path.write_text("\n".join(v for v in lines.values() if v) + "\n")
    return path


@pytest.mark.parametrize("path", sorted((REPO / "search_spaces").glob("*.yaml")), ids=str)
def test_every_shipped_space_loads_and_samples(path: Path) -> None:
    space = load_search_space(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        params = space.suggest(study.ask())
        family = params.get("family", "distilbert")
        seen.add(family)
        head = ["family"] if "family" in space.distributions else []
        assert list(params) == [*head, *space.names_for(family)]
        if family == "distilbert":
            names = [*PARAM_NAMES, *LOSS_KEYS] if space.defines_layer_losses() else PARAM_NAMES
            assert [n for n in params if n not in ("family", "vocab_size")] == list(names)
            assert params["hidden_size"] % params["n_heads"] == 0
        assert space.validate(params) == params
        typed = space.trial_params(params)
        assert typed.family == family
        assert typed.as_dict() == params  # Optuna's names and values, types included
    assert seen == set(space.family_choices())  # every family is reachable


def test_optuna_json_form_and_fixed_values(tmp_path: Path) -> None:
    path = write_space(
        tmp_path,
        n_layers="{name: IntDistribution, attributes: {low: 1, high: 3, step: 1, log: false}}",
        epochs="2",
    )
    space = load_search_space(path)
    assert space.distributions["n_layers"] == optuna.distributions.IntDistribution(1, 3)
    params = space.suggest(optuna.create_study().ask())
    assert params["epochs"] == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"n_trails": "{type: int, low: 1, high: 2}"}, "unknown parameter 'n_trails'"),
        ({"alpha": ""}, "missing parameters ['alpha']"),
        ({"learning_rate": "{type: float, low: 1.0e-2, high: 1.0e-4}"}, "swap them"),
        ({"alpha": "{type: float, low: 0.0, high: 2.0}"}, "alpha range"),
        ({"n_heads": "{type: categorical, choices: [3, 4]}"}, "does not divide hidden_size"),
        ({"hidden_size": "{type: int, low: 32, high: 128, log: true}"}, "stepped int"),
        ({"batch_size": "{type: float, low: 8, high: 32}"}, "int or categorical"),
        ({"epochs": "{type: gaussian, low: 1, high: 2}"}, "type = 'gaussian'"),
        ({"epochs": "{type: int, low: 1}"}, "needs low and high"),
        ({"epochs": "[1, 2]"}, "type: categorical"),
        ({"temperature": "{type: float, low: 1, high: 2, lgo: true}"}, "unknown key 'lgo'"),
        # infinite, NaN or overflowing bounds (NumPy's samplers fail on them mid-study)
        ({"temperature": "{type: float, low: 1, high: .inf}"}, "high = inf (from"),
        ({"epochs": "{type: float, low: 1, high: 1.0e+400}"}, "high = inf (from"),
        ({"alpha": "{type: float, low: .nan, high: 1}"}, "low = nan (from"),
        ({"n_layers": "{type: int, low: 1, high: 1e400}"}, "is not a finite number"),
        ({"temperature": "{type: float, low: -1.0e+308, high: 1.7e+308}"}, "overflows"),
        (
            {
                "temperature": "{name: FloatDistribution, attributes: "
                "{low: 1.0, high: .inf, log: false, step: null}}"
            },
            "temperature: high = inf",
        ),
        # non-numeric choices for a number (a TypeError comparing with the bounds, before)
        ({"temperature": "{type: categorical, choices: [1.0, hot]}"}, "'hot' must be a number"),
        (
            {"alpha": "{type: categorical, choices: [[0.5]]}"},
            "alpha: choice [0.5] must be a number or a string",
        ),
        ({"weight_decay": "'0.01'"}, "weight_decay = '0.01' must be a number"),
        ({"batch_size": "{type: categorical, choices: [16, '32']}"}, "'32' must be an integer"),
        ({"temperature": "{type: float, low: [1], high: 2}"}, "is not a valid distribution"),
        ({"alpha": "{type: float, high: 1, low: [" + "0.5, " * 3000 + "0]}"}, "0.5, ...]"),
    ],
)
def test_bad_spaces_name_file_parameter_and_fix(
    tmp_path: Path, override: dict[str, str], message: str
) -> None:
    path = write_space(tmp_path, **override)
    with pytest.raises(ConfigError) as info:
        load_search_space(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert len(str(info.value)) < len(str(path)) + 500 and "\n" not in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_search_space(tmp_path / "nope.yaml")


def test_validate_rejects_params_outside_the_space() -> None:
    space = load_search_space(BASE)
    good = {
        "n_layers": 2,
        "n_heads": 4,
        "hidden_size": 128,
        "ffn_dim": 256,
        "temperature": 2.0,
        "alpha": 0.5,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.1,
        "weight_decay": 0.0,
        "batch_size": 32,
        "epochs": 2,
    }
    assert space.validate(good) == good
    with pytest.raises(InvalidConfig, match=r"hidden_size = 100 is outside the search space"):
        space.validate({**good, "hidden_size": 100})
    with pytest.raises(InvalidConfig, match=r"n_layers = 9 is outside"):
        space.validate({**good, "n_layers": 9})
    with pytest.raises(InvalidConfig, match=r"missing epochs; give a value"):
        space.validate({k: v for k, v in good.items() if k != "epochs"})
    with pytest.raises(InvalidConfig, match=r"unknown parameter 'dropout'; the search space"):
        space.validate({**good, "dropout": 0.1})
    with pytest.raises(InvalidConfig, match=r"n_layers = '2' is not a number; write a number in"):
        space.validate({**good, "n_layers": "2"})
    with pytest.raises(InvalidConfig, match=r"temperature = None is not a number"):
        space.validate({**good, "temperature": None})
    # ints given as floats (JSON from other tools) are accepted and coerced
    assert space.validate({**good, "n_layers": 2.0})["n_layers"] == 2


def test_cross_parameter_rule_names_the_fix() -> None:
    with pytest.raises(InvalidConfig) as info:
        check_params({"n_heads": 5, "hidden_size": 768})
    assert "n_heads = 5 does not divide hidden_size = 768" in str(info.value)
    suggested = str(info.value).rsplit("such as ", 1)[1].split(", ")
    assert suggested == ["3", "4", "6", "8"]  # the head counts nearest 5 that divide 768
    with pytest.raises(InvalidConfig, match="must lie in"):
        check_params({"alpha": 1.5})
    with pytest.raises(InvalidConfig, match="must be an integer"):
        check_params({"n_layers": 2.5})


def test_distributions_too_large_for_mysql_text_are_refused_by_dialect() -> None:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from nas.study.storage import StorageError, check_distributions_fit

    big = {"ffn_dim": CategoricalDistribution(list(range(64, 64 + 6 * 10_000, 6)))}
    fits = {"ffn_dim": CategoricalDistribution(list(range(64, 64 + 6 * 9_000, 6)))}
    for url in ("mysql+pymysql://u@h/db", "mariadb+pymysql://u:secret@h/db"):
        with pytest.raises(StorageError) as info:
            check_distributions_fit(url, big, "space.yaml")
        message = str(info.value)
        assert message.startswith("space.yaml: parameter ffn_dim: its distribution (10000")
        assert "68,246 bytes" in message and "over the 65,535" in message
        assert "secret" not in message
        check_distributions_fit(url, fits)  # 61,246 bytes: MariaDB stores it (see below)
        check_distributions_fit(url, {"ffn_dim": IntDistribution(1, 10**9)})
    for url in ("sqlite:///nas.db", "postgresql+psycopg://u@h/db", "journal:study.log"):
        check_distributions_fit(url, big)  # no such limit there


def test_the_mysql_limit_is_the_real_servers(name: str) -> None:
    """Against MariaDB: what the check lets through commits; what it refuses fails at commit."""
    from optuna.distributions import CategoricalDistribution
    from optuna.exceptions import StorageInternalError
    from support.servers import MARIADB

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name=name, storage=MARIADB)
    fits = CategoricalDistribution(list(range(64, 64 + 6 * 9_000, 6)))
    study.tell(study.ask({"ffn_dim": fits}), 1.0)
    assert study.trials[0].distributions["ffn_dim"] == fits  # stored whole, read back whole
    big = CategoricalDistribution(list(range(64, 64 + 6 * 10_000, 6)))
    with pytest.raises(StorageInternalError):
        study.ask({"ffn_dim_wide": big})


def test_trial_params_are_typed_and_every_field_is_required() -> None:
    space = load_search_space(BASE)
    good = {
        n: d.choices[0] if hasattr(d, "choices") else d.low for n, d in space.distributions.items()
    }
    good.update(n_heads=2, hidden_size=32)
    typed = space.trial_params({**good, "batch_size": float(good["batch_size"])})
    assert typed.shape == StudentShape(good["n_layers"], 2, 32, good["ffn_dim"])
    assert typed.recipe.alpha == good["alpha"] and type(typed.recipe.batch_size) is int
    with pytest.raises(InvalidConfig, match="missing alpha"):
        space.trial_params({k: v for k, v in good.items() if k != "alpha"})
    with pytest.raises(InvalidConfig, match=r"missing \['seed'\]|unknown \['seed'\]"):
        TrialParams.from_params({**good, "seed": 1})


def test_the_shape_rules_have_one_message_wherever_they_are_checked() -> None:
    """check_params (a search space, --params) and StudentShape (a built student) share them."""
    shape = {"n_layers": 2, "n_heads": 5, "hidden_size": 768, "ffn_dim": 64}
    messages = []
    for check in (check_params, StudentShape.from_params):
        with pytest.raises(InvalidConfig) as info:
            check(shape)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    messages = []
    for check in (check_params, StudentShape.from_params):
        with pytest.raises(InvalidConfig) as info:
            check({**shape, "n_heads": 4, "n_layers": 2.5})
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "n_layers = 2.5 must be an integer" in messages[0]


def test_layer_losses_are_all_or_none_and_sampled_when_defined(tmp_path: Path) -> None:
    shipped = (REPO / "search_spaces" / "quickstart_layers.yaml").read_text()
    partial = tmp_path / "partial.yaml"
    partial.write_text(shipped.replace("layer_map: uniform\n", ""))
    with pytest.raises(ConfigError, match="defines hidden_weight.*but not layer_map"):
        load_search_space(partial)
    space = load_search_space(REPO / "search_spaces" / "quickstart_layers.yaml")
    plain = load_search_space(REPO / "search_spaces" / "quickstart.yaml")
    baseline = {
        name: plain.distributions[name].choices[0]
        if hasattr(plain.distributions[name], "choices")
        else plain.distributions[name].low
        for name in PARAM_NAMES
    }  # type: ignore[attr-defined]
    # a space without the losses: absent means off, and nothing new is stored
    assert plain.trial_params(baseline).losses is None
    # a space that defines them requires them: absent is not silently off
    with pytest.raises(InvalidConfig, match="missing hidden_weight"):
        space.validate(baseline)
    bad = tmp_path / "bad.yaml"
    bad.write_text(shipped.replace("layer_map: uniform", "layer_map: sideways"))
    with pytest.raises(ConfigError, match="layer_map = 'sideways' must be one of uniform"):
        load_search_space(bad)
