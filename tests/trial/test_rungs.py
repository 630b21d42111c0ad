"""The training loop's rung hook (MO-ASHA pruning): which steps rungs land on, and a stop."""

from __future__ import annotations

import dataclasses

import pytest
from test_train import RECIPE, features, model

from nas.config import TrainingConfig
from nas.trial import rung_steps
from nas.trial.loop import train


def test_a_rung_is_a_fraction_of_the_optimizer_steps() -> None:
    assert rung_steps(27, (1 / 9, 1 / 3)) == {0: 3, 1: 9}  # exact fractions, no rounding up
    assert rung_steps(10, (1 / 9, 1 / 3)) == {0: 2, 1: 4}  # ceil(1.11), ceil(3.33)
    # a rung on a step an earlier one took, or on the last step, is left out
    assert rung_steps(3, (0.1, 0.2, 0.5)) == {0: 1, 2: 2}
    assert rung_steps(1, (0.5,)) == {}


def test_the_loop_calls_the_rung_hook_at_its_steps() -> None:
    f = features(24)  # 6 steps an epoch at batch size 4; 2.5 epochs: 15 steps
    calls: list[tuple[int, int, int]] = []
    modes: list[bool] = []
    net = model()

    def at_rung(rung: int, step: int, total: int) -> None:
        calls.append((rung, step, total))
        net.eval()  # an evaluation; the loop puts the model back in training mode
        modes.append(net.training)

    recipe = dataclasses.replace(RECIPE, epochs=2.5)
    result = train(
        net,
        f,
        recipe,
        TrainingConfig(device="cpu"),
        "classification",
        0,
        seed=0,
        rungs=(1 / 9, 1 / 3),
        on_rung=at_rung,
    )
    assert calls == [(0, 2, 15), (1, 5, 15)]
    assert result.steps == 15 and net.training and modes == [False, False]
    # capped by training.max_steps: the rungs are fractions of the capped total
    calls.clear()
    capped = TrainingConfig(device="cpu", max_steps=9)
    train(
        model(), f, recipe, capped, "classification", 0, seed=0, rungs=(1 / 9, 1 / 3),
        on_rung=at_rung,
    )  # fmt: skip
    assert calls == [(0, 1, 9), (1, 3, 9)]


def test_a_hook_that_raises_ends_the_training_at_the_rung() -> None:
    seen: list[int] = []

    class Stop(Exception):
        pass

    def stop(rung: int, step: int, total: int) -> None:
        seen.append(step)
        raise Stop

    with pytest.raises(Stop):
        train(
            model(), features(24), RECIPE, TrainingConfig(device="cpu"), "classification", 0,
            seed=0, rungs=(0.25,), on_rung=stop,
        )  # fmt: skip
    assert seen == [3]  # 12 steps, a quarter: step 3, and no step after it
