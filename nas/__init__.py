"""nas: multi-objective architecture and hyperparameter search for distilling BERT teachers."""

from __future__ import annotations

__version__ = "0.1.0"
