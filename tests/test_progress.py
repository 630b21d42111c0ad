"""Progress: a tqdm bar on a terminal, else one line a minute with the elapsed time and ETA."""

from __future__ import annotations

import io

import pytest

from nas import progress as progress_module
from nas.progress import Ticker, draws_bars, duration, terminal_sink


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_one_line_a_minute_with_elapsed_and_eta() -> None:
    clock, lines = Clock(), []
    ticker = Ticker(lines.append, "teacher training", 300, "steps", clock=clock, bar=False)
    for step in range(300):
        clock.now += 1.0  # a step a second: 5 minutes in all
        ticker.update(1, f"loss {1 / (step + 1):.2f}")
    assert ticker.close() == 300.0
    assert lines == [
        "teacher training: 60/300 steps (20%), 1:00 elapsed, ETA 4:00, loss 0.02",
        "teacher training: 120/300 steps (40%), 2:00 elapsed, ETA 3:00, loss 0.01",
        "teacher training: 180/300 steps (60%), 3:00 elapsed, ETA 2:00, loss 0.01",
        "teacher training: 240/300 steps (80%), 4:00 elapsed, ETA 1:00, loss 0.00",
        "teacher training: 300/300 steps in 5:00, loss 0.00",  # the end says it, not a tick
    ]


def test_every_n_steps_a_line_as_well_as_each_minute() -> None:
    clock, lines = Clock(), []
    ticker = Ticker(lines.append, "training", 250, "steps", every=100, clock=clock, bar=False)
    for _ in range(250):
        clock.now += 0.1  # 25 s in all: no minute passes
        ticker.update(1)
    ticker.close()
    assert [line.split(" (")[0] for line in lines] == [
        "training: 100/250 steps",
        "training: 200/250 steps",
        "training: 250/250 steps in 0:25",
    ]


def test_work_under_a_minute_gives_only_the_closing_line_and_none_without_a_sink() -> None:
    clock, lines = Clock(), []
    with Ticker(lines.append, "teacher pass", 4, "batches", clock=clock, bar=False) as ticker:
        for _ in range(4):
            clock.now += 10.0
            ticker.update()
    assert lines == ["teacher pass: 4/4 batches in 0:40"]
    silent = Ticker(None, "x", 2, clock=clock)
    silent.update(2)
    assert silent.close() == 0.0 and silent.bar is None


def test_durations_read_as_clock_times() -> None:
    assert [duration(s) for s in (0, 5.4, 65, 3600 + 62, -1)] == [
        "0:00",
        "0:05",
        "1:05",
        "1:01:02",
        "0:00",
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_for_a_marked_sink_that_shows_progress_on_a_tty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown = {"on": True}
    lines: list[str] = []
    plain = lines.append
    marked = terminal_sink(plain, when=lambda: shown["on"])
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not draws_bars(marked)  # a log file: lines
    monkeypatch.setattr("sys.stderr", Terminal())
    assert draws_bars(marked) and not draws_bars(plain) and not draws_bars(None)
    shown["on"] = False  # e.g. --quiet: no bar either
    assert not draws_bars(marked)
    monkeypatch.delitem(progress_module._TERMINAL_SINKS, marked)


def test_a_bar_draws_elapsed_and_eta_on_stderr_and_keeps_sink_lines_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    sink = terminal_sink(lambda m: print(f"[nas] {m}", file=terminal))
    with Ticker(sink, "teacher training", 10, "steps") as ticker:
        assert ticker.bar is not None
        for _ in range(10):
            ticker.update(1, "loss 0.50")
        sink("teacher epoch 1: exact 80.00")  # written above the bar, on a line of its own
    text = terminal.getvalue()
    assert "[nas] teacher training" in text and "10/10" in text and "loss 0.50" in text
    assert "<00:00" in text  # tqdm's [elapsed<ETA]
    assert "\r[nas] teacher epoch 1: exact 80.00\n" in text  # the bar cleared first
    monkeypatch.delitem(progress_module._TERMINAL_SINKS, sink)


def test_a_finished_trials_line_ends_with_its_wall_time_from_start_to_tell() -> None:
    import datetime
    import types

    import optuna

    from nas.search.searcher import StudySearcher

    start = datetime.datetime(2026, 1, 1, 12, 0, 0)
    trial = optuna.trial.FrozenTrial(
        number=3,
        state=optuna.trial.TrialState.FAIL,
        value=None,
        datetime_start=start,
        datetime_complete=start + datetime.timedelta(seconds=65.4),
        params={"n_layers": 2},
        distributions={"n_layers": optuna.distributions.IntDistribution(1, 4)},
        user_attrs={"fail_reason": "oom", "fail_message": "out of memory"},
        system_attrs={},
        intermediate_values={},
        trial_id=3,
    )
    lines: list[str] = []
    searcher = types.SimpleNamespace(
        study=None, n_trials=12, objective_names=["exact", "params"], printer=lines.append
    )
    StudySearcher._print(searcher, trial)  # type: ignore[arg-type]
    assert lines[0].startswith("[?/12] trial 3: L2 ")
    assert lines[0].endswith("FAIL oom: out of memory in 1:05")
