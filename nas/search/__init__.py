"""The Ray side of ``nas study run``: the driver (``driver``), the Searcher that asks and tells
the Optuna study (``searcher``), the trainable each Ray worker runs (``worker``), the memory
pre-flight (``preflight``), ending trials and runs (``stopping``) and the test-split scoring
of the front when a run ends (``holdout``).
"""

from nas.search.driver import (
    RunOptions,
    confirm_study,
    run_study,
)
from nas.search.holdout import (
    score_front,
)

__all__ = [
    "RunOptions",
    "confirm_study",
    "run_study",
    "score_front",
]
