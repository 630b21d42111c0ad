"""A study read back: the summary and front table (``summary``), the picks (``picks``),
figures, the HTML report, optuna-dashboard, the memory lines of ``nas study status``
(``memory``), the verdict that ends a run, and export with its model card.

No torch, no Ray: reading a study needs its storage and artifacts only.
"""

from nas.results.dashboard import (
    check_host,
    check_port,
    publish,
    serve,
)
from nas.results.export import (
    download_checkpoint,
    export_trials,
    resolve_artifact_root,
    select_trials,
)
from nas.results.memory import (
    memory_report,
    memory_summary,
)
from nas.results.report import (
    write_report,
)
from nas.results.summary import (
    front_record,
    front_text,
    rung_counts,
    rung_lines,
    summarize,
)
from nas.results.verdict import (
    verdict_text,
)

__all__ = [
    "check_host",
    "check_port",
    "download_checkpoint",
    "export_trials",
    "front_record",
    "front_text",
    "memory_report",
    "memory_summary",
    "publish",
    "resolve_artifact_root",
    "rung_counts",
    "rung_lines",
    "select_trials",
    "serve",
    "summarize",
    "verdict_text",
    "write_report",
]
