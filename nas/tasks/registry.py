"""The task registry: every task by its name (``get_task("squad_v2")``)."""

from __future__ import annotations

from nas.errors import ConfigError
from nas.tasks.base import Task


def _registry() -> dict[str, Task]:
    from nas.tasks.classification import TASKS
    from nas.tasks.squad_v2 import SquadV2Task
    from nas.tasks.synthetic_qa import SyntheticQATask

    tasks: dict[str, Task] = {"squad_v2": SquadV2Task(), "synthetic_qa": SyntheticQATask()}
    tasks.update(TASKS)
    return tasks


def task_names() -> list[str]:
    return sorted(_registry())


def get_task(name: str) -> Task:
    """The task registered under ``name``; a ConfigError lists the known names."""
    tasks = _registry()
    if name not in tasks:
        raise ConfigError(f"unknown task '{name}'; known tasks: {', '.join(sorted(tasks))}")
    return tasks[name]
