"""Trials of a study as Hugging Face folders with provenance, a model card and an index.

A completed trial's checkpoint lives in the artifact store (a folder or ``s3://BUCKET/PREFIX``,
see ``nas.artifacts``), one Optuna artifact per file, its ids in the trial's
``checkpoint_files`` user attribute and its root in ``artifact_root`` (see ``nas.runner``). An
export copies
those files into ``OUT/trial-<number>/``, completes ``nas.json`` with what the study knows
(values by metric name, constraints, storage), writes a model card ``README.md``, and lists the
trials in ``OUT/index.json`` and ``OUT/index.csv``. Every copied file is checked against the
size and sha256 recorded when it was stored (``nas.artifacts.verify_folder``). Everything is
built in a temporary folder beside ``OUT`` and renamed into place: a failed export (a missing
or changed file among them) leaves nothing behind, and ``force`` replaces an existing ``OUT``
only once the new one is complete.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import download_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial, TrialState

import nas
from nas.artifacts import (
    ARTIFACT_ROOT,
    CHECKPOINT_FILES,
    DEFAULT_ARTIFACT_ROOT,
    ArtifactRoot,
    open_store,
    parse_root,
    verify_folder,
)
from nas.errors import NasError
from nas.study import BASELINE_TAG, front_rows, mask_password, named_constraints

PROVENANCE = "nas.json"
MODEL_CARD = "README.md"
INDEX_JSON = "index.json"
INDEX_CSV = "index.csv"


class ExportError(NasError):
    """Trials cannot be exported: no such trial, a missing checkpoint, an existing folder."""


@dataclass(frozen=True)
class _Context:
    """What every exported trial of one export shares."""

    study: optuna.Study
    root: ArtifactRoot | None  # --artifact-root: overrides what each trial recorded
    storage: str  # password masked
    exported_at: str  # ISO 8601, UTC
    out: Path  # the destination as the user named it, for the load snippet
    stores: dict[str, Any]  # artifact root URL -> its open store


def resolve_artifact_root(
    cli: str | Path | None, study: optuna.Study, trial: FrozenTrial | None = None
) -> ArtifactRoot:
    """Where a trial's checkpoint is: ``--artifact-root``; else the root the trial recorded
    when it was stored; else the study config's ``artifact_root``; else ``.nas/artifacts``.

    Args:
        cli: The ``--artifact-root`` value, if given (a folder or ``s3://BUCKET/PREFIX``).
        study: The study; its ``config`` user attribute holds the run's ``artifact_root``.
        trial: The trial; its ``artifact_root`` user attribute is the root it was written to.

    Raises:
        ArtifactRootError: the value is neither a folder nor an ``s3://`` URL.
    """
    if cli:
        return parse_root(cli)
    recorded = trial.user_attrs.get(ARTIFACT_ROOT) if trial is not None else None
    if recorded:
        return parse_root(recorded, f"trial {trial.number if trial else '?'}: artifact_root")
    config = study.user_attrs.get("config")
    configured = config.get("artifact_root") if isinstance(config, dict) else None
    return parse_root(configured or DEFAULT_ARTIFACT_ROOT, "the study config's artifact_root")


def select_trials(study: optuna.Study, numbers: Sequence[int] | None) -> list[FrozenTrial]:
    """The trials to export: the feasible Pareto front, or the COMPLETE trials ``numbers``.

    Args:
        study: The study.
        numbers: Trial numbers (``--trials``); None for the front (smallest student first).

    Returns:
        The trials, in the order given (duplicates once).

    Raises:
        ExportError: The front is empty, or a number is no trial or not a COMPLETE one.
    """
    name = study.study_name
    if numbers is None:
        front = front_rows(study)
        if not front:
            raise ExportError(
                f"study '{name}' has an empty Pareto front (no feasible COMPLETE trial); run "
                "more trials, or pick trials with --trials N,M (see nas study status)"
            )
        return front
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    chosen = []
    for number in dict.fromkeys(numbers):
        trial = trials.get(number)
        if trial is None:
            last = f"0..{max(trials)}" if trials else "none"
            raise ExportError(
                f"--trials {number}: study '{name}' has no trial {number} (its trials: "
                f"{last}); pass numbers of COMPLETE trials (see nas study status {name})"
            )
        if trial.state != TrialState.COMPLETE:
            raise ExportError(
                f"--trials {number}: trial {number} of study '{name}' is {trial.state.name}, "
                "not COMPLETE, and has no checkpoint; pick a COMPLETE trial"
            )
        chosen.append(trial)
    return chosen


def export_trials(
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    out: Path,
    artifact_root: ArtifactRoot | str | Path | None,
    storage_url: str,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Write ``out/trial-<n>/`` for each trial, and ``out/index.json`` and ``out/index.csv``.

    Args:
        study: The study the trials belong to.
        trials: COMPLETE trials with a ``checkpoint_files`` user attribute.
        out: The export folder; it must not exist unless ``force``.
        artifact_root: Where every trial's checkpoint is (``--artifact-root``); None: where
            each trial recorded it (see :func:`resolve_artifact_root`).
        storage_url: The study's storage, recorded with its password masked.
        force: Replace an existing ``out`` (only once the new export is complete).

    Returns:
        The index rows, one per trial.

    Raises:
        ExportError: ``out`` exists without ``force``, or a checkpoint cannot be read.
    """
    if os.path.lexists(out) and not force:
        raise ExportError(
            f"--out {out} exists; choose a new folder, or pass --force to replace it"
        )
    if os.path.lexists(out):
        check_replaceable(Path(out), protected_paths(study, trials, storage_url, artifact_root))
    final = Path(out).resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    root = artifact_root
    if root is not None and not isinstance(root, ArtifactRoot):
        root = parse_root(root)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    context = _Context(study, root, mask_password(storage_url), now, Path(out), {})
    return _build_and_move(context, trials, final)


def _build_and_move(
    context: _Context, trials: Sequence[FrozenTrial], final: Path
) -> list[dict[str, Any]]:
    """Build the export in a fresh folder beside ``final``, then rename it there."""
    tmp = _fresh_folder(final, "new")
    try:
        rows = [_export_trial(context, trial, tmp) for trial in trials]
        _write_index(context, rows, tmp)
        _move_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows


def _export_trial(context: _Context, trial: FrozenTrial, into: Path) -> dict[str, Any]:
    folder = into / f"trial-{trial.number}"
    folder.mkdir()
    root = _download_checkpoint(context, trial, folder)
    record = _provenance(context, trial, folder / PROVENANCE, root)
    (folder / PROVENANCE).write_text(json.dumps(record, indent=2, default=str) + "\n")
    load_path = (context.out / folder.name).as_posix()
    config = _read_json(folder / "config.json", f"trial {trial.number}", root)
    card = model_card(record, _model_class(config), load_path)
    (folder / MODEL_CARD).write_text(card)
    return index_row(context.study, trial)


def download_checkpoint(
    study: optuna.Study, trial: FrozenTrial, folder: Path, artifact_root: str | None = None
) -> ArtifactRoot:
    """Copy a COMPLETE trial's checkpoint files into the existing ``folder``, checked against
    their records (``ChecksumError`` when one differs)."""
    context = _Context(
        study=study,
        root=parse_root(artifact_root) if artifact_root else None,
        storage="",
        exported_at="",
        out=folder,
        stores={},
    )
    return _download_checkpoint(context, trial, folder)


def _download_checkpoint(context: _Context, trial: FrozenTrial, folder: Path) -> ArtifactRoot:
    """Copy the trial's checkpoint files into ``folder`` and check them against their records;
    returns the root they came from."""
    root = context.root or resolve_artifact_root(None, context.study, trial)
    files = trial.user_attrs.get(CHECKPOINT_FILES)
    where = f"trial {trial.number} of study '{context.study.study_name}'"
    if not isinstance(files, dict) or "config.json" not in files:
        raise ExportError(
            f"{where} has no checkpoint ({CHECKPOINT_FILES} attribute missing or without "
            f"config.json; artifact root {root}); re-run the study or export another trial"
        )
    if root.url not in context.stores:
        context.stores[root.url] = open_store(root)
    for name, artifact_id in sorted(files.items()):
        if Path(name).name != name or name in (".", ".."):
            raise ExportError(f"{where}: checkpoint file name {name!r} is not a plain file name")
        try:
            download_artifact(
                artifact_store=context.stores[root.url],
                artifact_id=str(artifact_id),
                file_path=str(folder / name),
            )
        except (ArtifactNotFound, ValueError):
            raise ExportError(
                f"{where}: checkpoint file {name} (artifact {artifact_id}) is missing from the "
                f"artifact root {root}; pass --artifact-root with the folder or s3:// URL the "
                "study run stored its checkpoints in"
            ) from None
        except Exception as exc:  # noqa: BLE001 - OSError, botocore errors: one line each
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ExportError(
                f"{where}: cannot read checkpoint file {name} from the artifact root {root} "
                f"({first[:200]}); check that it is reachable (S3: credentials and "
                "AWS_ENDPOINT_URL in the environment)"
            ) from None
    verify_folder(trial, folder, where)
    return root


def _provenance(
    context: _Context, trial: FrozenTrial, path: Path, root: ArtifactRoot
) -> dict[str, Any]:
    """The trial's ``nas.json`` (as training wrote it) completed with what the study knows."""
    study = context.study
    record = _read_json(path, f"trial {trial.number}", root) if path.is_file() else {}
    for key, attr in (("task", "task"), ("teacher", "teacher"), ("data", "dataset")):
        record.setdefault(key, study.user_attrs.get(attr))
    record.update(
        study=study.study_name,
        trial=trial.number,
        values=dict(zip(metric_names(study), trial.values, strict=True)),
        directions=[d.name.lower() for d in study.directions],
        constraints=named_constraints(trial),
        feasible=is_feasible(trial),
        baseline=bool(trial.user_attrs.get(BASELINE_TAG)),
        n_params=trial.user_attrs.get("params"),
        trial_params=dict(trial.params),
        storage=context.storage,
        artifact_root=root.url,
        exported_at=context.exported_at,
        exported_by=f"nas {nas.__version__}",
    )
    record.update(held_out_record(study, trial.number))
    return record


def held_out_record(study: optuna.Study, number: int) -> dict[str, Any]:
    """What the study knows beyond the selection split: the trial's test-split metrics, the
    teacher's metrics on both splits, and the mean and spread over new seeds."""
    from nas.confirm import confirmed_points
    from nas.holdout import teacher_scores, test_scores

    out: dict[str, Any] = {
        "test_metrics": test_scores(study).get(number),
        "teacher_metrics": teacher_scores(study) or None,
    }
    confirmed = confirmed_points(study).get(number)
    if confirmed is not None:
        out["confirmed"] = {
            "seeds": list(confirmed.seeds),
            "selection": {k: confirmed.stats(k) for k in confirmed.selection},
            "test": {k: confirmed.stats(k, "test") for k in confirmed.test},
        }
    return out


def metric_names(study: optuna.Study) -> list[str]:
    """The study's objective names (``value0``... when the study never named them)."""
    return study.metric_names or [f"value{i}" for i in range(len(study.directions))]


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether every constraint of the trial holds (Optuna: a value <= 0 is feasible)."""
    return all(v <= 0 for v in trial.constraints.values())


def _read_json(path: Path, where: str, root: ArtifactRoot) -> dict[str, Any]:
    """A checkpoint's JSON object file (``config.json``, ``nas.json``), or one line saying
    that it is damaged."""
    try:
        value = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise ExportError(
            f"{where}: its {path.name} is not valid JSON ({why}); the artifact under {root} "
            "is damaged: export another trial"
        ) from None
    if not isinstance(value, dict):
        raise ExportError(
            f"{where}: its {path.name} holds a JSON {type(value).__name__}, not an object; the "
            f"artifact under {root} is damaged: export another trial"
        )
    return value


def _model_class(config: Mapping[str, Any]) -> str:
    """The ``transformers`` auto class that loads the checkpoint, from its ``architectures``."""
    names = config.get("architectures") or []
    architectures = " ".join(str(n) for n in names) if isinstance(names, list) else str(names)
    if "ForQuestionAnswering" in architectures:
        return "AutoModelForQuestionAnswering"
    if "ForSequenceClassification" in architectures:
        return "AutoModelForSequenceClassification"
    return "AutoModel"


def index_row(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """One row of the index: trial, folder, values and task metrics by name, params count,
    feasible, baseline flag, then the trial's params (``param:NAME`` if a name is taken)."""
    row: dict[str, Any] = {"trial": trial.number, "folder": f"trial-{trial.number}"}
    row.update(zip(metric_names(study), trial.values, strict=True))
    for key, value in sorted(trial.user_attrs.items()):
        if key.startswith("metric:"):
            row.setdefault(key.removeprefix("metric:"), value)
    row["n_params"] = trial.user_attrs.get("params")
    row["feasible"] = is_feasible(trial)
    row["baseline"] = bool(trial.user_attrs.get(BASELINE_TAG))
    row.update({k if k not in row else f"param:{k}": v for k, v in trial.params.items()})
    return row


def _write_index(context: _Context, rows: Sequence[Mapping[str, Any]], into: Path) -> None:
    study = context.study
    index = {
        "study": study.study_name,
        "storage": context.storage,
        "artifact_roots": sorted(context.stores),  # where the checkpoints were read from
        "exported_at": context.exported_at,
        "nas_version": nas.__version__,
        "objectives": dict(
            zip(metric_names(study), [d.name.lower() for d in study.directions], strict=True)
        ),
        "trials": list(rows),
    }
    (into / INDEX_JSON).write_text(json.dumps(index, indent=2, default=str) + "\n")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(into / INDEX_CSV, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def protected_paths(
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    storage_url: str,
    artifact_root: ArtifactRoot | str | Path | None,
) -> list[Path]:
    """Folders and files an export must never replace: the SQLite or journal file of the
    storage, and every local artifact root the trials' checkpoints live in."""
    out: list[Path] = []
    for prefix in ("sqlite:///", "journal:"):
        if storage_url.startswith(prefix) and storage_url[len(prefix) :] not in ("", ":memory:"):
            out.append(Path(storage_url[len(prefix) :]))
    if isinstance(artifact_root, ArtifactRoot):
        roots = [artifact_root]
    elif artifact_root:
        roots = [parse_root(artifact_root)]
    else:
        roots = [resolve_artifact_root(None, study, t) for t in trials]
        roots.append(resolve_artifact_root(None, study))
    out += [Path(root.url) for root in roots if not root.is_s3]
    return out


def check_replaceable(out: Path, protected: Sequence[Path]) -> None:
    """``--force`` replaces only a previous nas export, and never what holds the study.

    A previous export is a folder with ``index.json`` whose every entry is ``index.json``,
    ``index.csv`` or a ``trial-N`` folder with ``nas.json``. The current folder, any folder
    above it, and any folder holding (or inside) the storage file or an artifact root are
    refused, whatever they contain.

    Raises:
        ExportError: naming the folder, why it is not replaced and what to do instead.
    """
    final = out.resolve()
    cwd = Path.cwd().resolve()
    fix = "choose a new folder for --out"
    if final == cwd or cwd.is_relative_to(final):
        raise ExportError(
            f"--out {out} is the current folder or one above it; --force never replaces it: {fix}"
        )
    for path in protected:
        p = path.resolve()
        if p == final or p.is_relative_to(final) or final.is_relative_to(p):
            raise ExportError(
                f"--out {out} holds or lies inside {p}, which the study needs (its storage or "
                f"its checkpoints); --force never replaces it: {fix}"
            )
    if not final.is_dir():
        raise ExportError(
            f"--out {out} exists and is not a folder; --force replaces only a "
            f"previous nas export: {fix}"
        )
    entries = sorted(final.iterdir())
    foreign = [
        e.name
        for e in entries
        if e.name not in (INDEX_JSON, INDEX_CSV)
        and not (e.is_dir() and e.name.startswith("trial-") and (e / PROVENANCE).is_file())
    ]
    if not (final / INDEX_JSON).is_file() or foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        why = f"it holds {shown}" if foreign else f"it has no {INDEX_JSON}"
        raise ExportError(
            f"--out {out} is not a previous nas export ({why}); --force replaces only a folder "
            f"that nas export wrote: {fix}, or move those files away"
        )


def _fresh_folder(final: Path, role: str) -> Path:
    """A new hidden folder beside ``final`` (made with ``mkdir``, so the umask applies)."""
    folder = final.parent / f".{final.name}.{role}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` is set aside first, removed after."""
    if not os.path.lexists(final):
        os.rename(tmp, final)
        return
    aside = _fresh_folder(final, "old")
    os.rename(final, aside / final.name)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(aside / final.name, final)  # the old export comes back untouched
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def model_card(record: Mapping[str, Any], model_class: str, path: str) -> str:
    """A Hugging Face model card (``README.md``) for one exported trial.

    Args:
        record: The trial's completed ``nas.json``.
        model_class: The ``transformers`` auto class that loads it.
        path: The folder to load from, as shown in the snippet.

    Returns:
        Markdown with YAML front matter.
    """
    metrics = record.get("metrics") or {}
    lines = [
        *_card_header(record),
        *_section("Objectives (selection split)", "metric", record.get("values") or {}),
        *_section("Task metrics (selection split)", "metric", metrics.get("task") or {}),
        *_section(
            "Task metrics (test split: data no trial saw)",
            "metric",
            record.get("test_metrics") or {"(not scored yet)": "nas study front NAME --test"},
        ),
        *_held_out_lines(record),
        *_section("Trial parameters", "parameter", record.get("trial_params") or {}),
        *_load_snippet(model_class, path),
        *_provenance_lines(record),
    ]
    return "\n".join(lines)


def _card_header(record: Mapping[str, Any]) -> list[str]:
    role = " (the study's baseline)" if record.get("baseline") else ""
    summary = {
        "task": record.get("task"),
        "teacher": record.get("teacher"),
        "data": record.get("data"),
        "parameters": _count(record.get("n_params")),
        "feasible": "yes" if record.get("feasible") else "no",
    }
    return [
        "---",
        "library_name: transformers",
        f"tags: [distillation, nas, {record.get('task')}]",
        "---",
        "",
        f"# {record.get('study')}: trial {record.get('trial')}",
        "",
        f"A DistilBERT student distilled from `{record.get('teacher')}` by nas, trial "
        f"{record.get('trial')} of study `{record.get('study')}`{role}.",
        "",
        *_table(("item", "value"), summary),
        "",
    ]


def _section(title: str, key: str, rows: Mapping[str, Any]) -> list[str]:
    return [f"## {title}", "", *_table((key, "value"), rows), ""]


def _table(header: tuple[str, str], rows: Mapping[str, Any]) -> list[str]:
    cells = [f"| {k} | {_cell(v)} |" for k, v in rows.items()]
    return [f"| {header[0]} | {header[1]} |", "| --- | --- |", *cells]


def _cell(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _count(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) else str(value)


def _load_snippet(model_class: str, path: str) -> list[str]:
    return [
        "## How to load",
        "",
        "```python",
        f"from transformers import {model_class}, AutoTokenizer",
        "",
        f'model = {model_class}.from_pretrained("{path}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{path}")',
        "```",
        "",
    ]


def _held_out_lines(record: Mapping[str, Any]) -> list[str]:
    """The teacher's row and the confirmed spread, when the study has them."""
    lines: list[str] = []
    teacher = record.get("teacher_metrics") or {}
    if teacher:
        names = sorted(set(teacher.get("selection", {})) & set(teacher.get("test", {})))
        rows = {n: f"{teacher['selection'][n]:.4g} / {teacher['test'][n]:.4g}" for n in names}
        lines += _section("Teacher (selection / test)", "metric", rows)
    confirmed = record.get("confirmed")
    if confirmed:
        rows = {}
        for split in ("selection", "test"):
            for name, stats in (confirmed.get(split) or {}).items():
                if stats:
                    mean, spread, n = stats
                    rows[f"{name} ({split})"] = f"{mean:.4g} ± {spread:.2g} ({n} seeds)"
        lines += _section("Re-trained with new seeds", "metric", rows)
    return lines


def _provenance_lines(record: Mapping[str, Any]) -> list[str]:
    return [
        "## Provenance",
        "",
        f"- study: `{record.get('study')}` in `{record.get('storage')}`, "
        f"trial {record.get('trial')}",
        f"- constraints (<= 0 feasible): {record.get('constraints') or 'none'}",
        f"- trained with nas {record.get('nas_version', '?')}, python "
        f"{record.get('python', '?')}, torch {record.get('torch', '?')}",
        f"- exported by {record.get('exported_by')} at {record.get('exported_at')}",
        f"- full record: `{PROVENANCE}`",
        "",
    ]
