"""Trials of a study as Hugging Face folders with provenance, a model card and an index.

A completed trial's checkpoint lives in the artifact store (a folder or ``s3://BUCKET/PREFIX``,
see ``nas.study.artifacts``), one Optuna artifact per file, its ids in the trial's
``checkpoint_files`` user attribute and its root in ``artifact_root`` (see
``nas.search.searcher``). An export copies
those files into ``OUT/trial-<number>/``, completes ``nas.json`` with what the study knows
(values by metric name, constraints, storage), writes a model card ``README.md``, and lists the
trials in ``OUT/index.json`` and ``OUT/index.csv``. Every copied file is checked against the
size and sha256 recorded when it was stored (``nas.study.artifacts.verify_folder``). Everything is
built in a temporary folder beside ``OUT`` and renamed into place: a failed export (a missing
or changed file among them) leaves nothing behind, and ``force`` replaces an existing ``OUT``
only once the new one is complete. ``nas.json`` and ``index.json`` list each folder's other
files with their size and sha256, an ONNX graph written by ``convert`` (``nas export --onnx``)
included.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import optuna
from optuna.artifacts import download_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial, TrialState

import nas
from nas.errors import NasError
from nas.family_shapes import FAMILY_FILE
from nas.results.card_facts import (
    hub_dataset,
    hub_id,
    label_names,
    max_length,
    model_class,
    source_license,
    study_data,
)
from nas.results.model_card import (
    CLASSIFIER_CLASS,
    FAMILY_CLASS,
    PROVENANCE,
    CardFacts,
    model_card,
)
from nas.study import (
    ARTIFACT_ROOT,
    CHECKPOINT_FILES,
    DATASET,
    DEFAULT_ARTIFACT_ROOT,
    DEVICE,
    LATENCY,
    METRIC_PREFIX,
    N_PARAMS,
    TASK,
    TEACHER,
    ArtifactRoot,
    config_snapshot,
    digest,
    front_rows,
    is_baseline,
    is_feasible,
    mask_password,
    metric_names,
    named_constraints,
    open_store,
    parse_root,
    verify_folder,
)

MODEL_CARD = "README.md"
INDEX_JSON = "index.json"
INDEX_CSV = "index.csv"
# A conversion run in each trial folder before its nas.json and card are written (the CLI's
# --onnx: nas.students.export_onnx); it adds one file and returns its record for nas.json.
Convert = Callable[[Path], Mapping[str, Any]]


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
    convert: Convert | None = None  # e.g. the ONNX export; None: the checkpoint files only
    files: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # for the index


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
    config = config_snapshot(study)
    configured = config.get("artifact_root") if config is not None else None
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
    convert: Convert | None = None,
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
        convert: Run in each trial folder once its checkpoint files are in place; it writes
            one more file (``model.onnx``) and returns its record, kept as ``nas.json``'s
            ``"onnx"``. Its error fails the whole export (nothing is written).

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
    context = _Context(study, root, mask_password(storage_url), now, Path(out), {}, convert)
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
    where = f"trial {trial.number}"
    record = _provenance(context, trial, folder / PROVENANCE, root)
    family = (folder / FAMILY_FILE).is_file()  # a bilstm/cnn/bow student, not a HF folder
    config = _read_json(folder / (FAMILY_FILE if family else "config.json"), where, root)
    klass = FAMILY_CLASS if family else model_class(config)
    data, has_data = study_data(context.study)
    labels: tuple[str, ...] = ()
    if family:
        labels = label_names(record, data, record.get("task"), int(config.get("num_labels") or 0))
        record["export_changes"] += _name_family_labels(folder, config, labels)
        record["family"] = config.get("family")
    elif klass == CLASSIFIER_CLASS:
        # transformers leaves id2label out of config.json for its default of 2 labels
        n_labels = len(config.get("id2label") or {}) or int(config.get("num_labels") or 2)
        labels = label_names(record, data, record.get("task"), n_labels)
        record["export_changes"] += _name_labels(folder, config, labels)
    length, length_from = max_length(data, has_data, config)
    if length is not None:
        record["export_changes"] += _set_max_length(folder, length, where, root)
    onnx = dict(context.convert(folder)) if context.convert is not None else None
    if onnx is not None:
        record["onnx"] = onnx
    record["files"] = context.files[folder.name] = folder_files(folder)
    source = record.get("student_source")
    facts = CardFacts(
        model_class=klass,
        path=_snippet_path(context.out, folder.name),
        data=data,
        dataset=hub_dataset(record.get("task"), data) if has_data else None,
        base_model=hub_id(source) or hub_id(record.get("teacher")),
        license=source_license(source),
        label_names=labels,
        max_length=length,
        max_length_from=length_from,
        onnx=str(onnx["file"]) if onnx is not None else None,
    )
    record = redact_paths(record)
    (folder / PROVENANCE).write_text(json.dumps(record, indent=2, default=str) + "\n")
    (folder / MODEL_CARD).write_text(model_card(record, facts))
    return index_row(context.study, trial)


def folder_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file of an exported folder but ``nas.json`` and ``README.md`` (written after,
    from this listing): name -> size and sha256."""
    out = {}
    for path in sorted(folder.iterdir()):
        if path.name not in (PROVENANCE, MODEL_CARD) and path.is_file():
            with open(path, "rb") as handle:
                sha256, size = digest(handle)
            out[path.name] = {"size": size, "sha256": sha256}
    return out


def _snippet_path(out: Path, name: str) -> str:
    """The exported folder as the card's snippet loads it: as the user named ``--out`` when
    relative, relative to the current folder when inside it, else relative to ``--out``."""
    if not out.is_absolute():
        return (out / name).as_posix()
    try:
        return (out.resolve() / name).relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return name


def _name_labels(folder: Path, config: dict[str, Any], labels: Sequence[str]) -> list[str]:
    """Write the label names into ``config.json`` when it has only LABEL_i names."""
    current = [str(v) for _, v in sorted((config.get("id2label") or {}).items(), key=_key)]
    if (
        not labels
        or current == list(labels)
        or (current and current != [f"LABEL_{i}" for i in range(len(current))])
    ):
        return []
    config["id2label"] = {str(i): name for i, name in enumerate(labels)}
    config["label2id"] = {name: i for i, name in enumerate(labels)}
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return [f"config.json: id2label/label2id name the labels {list(labels)}"]


def _name_family_labels(folder: Path, config: dict[str, Any], labels: Sequence[str]) -> list[str]:
    """Write the label names, in logit order, into a family student's ``nas_family.json``
    (``labels``), which a deployment reads without nas; ``LABEL_i`` when the names are unknown
    (as transformers names them)."""
    names = list(labels) or [f"LABEL_{i}" for i in range(int(config.get("num_labels") or 0))]
    if not names or config.get("labels") == names:
        return []
    config["labels"] = names
    (folder / FAMILY_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return [f"{FAMILY_FILE}: labels name the logits {names}"]


def _key(item: tuple[Any, Any]) -> int:
    return int(item[0]) if str(item[0]).isdigit() else -1


def _set_max_length(folder: Path, length: int, where: str, root: ArtifactRoot) -> list[str]:
    """Set ``model_max_length`` in ``tokenizer_config.json`` (the tokenizer default is 1e30)."""
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return []
    tokenizer = _read_json(path, where, root)
    old = tokenizer.get("model_max_length")
    if old == length:
        return []
    tokenizer["model_max_length"] = length
    path.write_text(json.dumps(tokenizer, indent=2, ensure_ascii=False) + "\n")
    shown = f"{old:.3g}" if isinstance(old, int | float) else repr(old)
    return [f"tokenizer_config.json: model_max_length {shown} -> {length}"]


_ABSOLUTE = re.compile(r"(?<![\w.~:/}\-])/(?:[^\s/'\"`,;()\[\]{}<>]+/)*([^\s/'\"`,;()\[\]{}<>]+)")


def redact_paths(value: Any) -> Any:
    """``value`` with every absolute local path written ``<local>/NAME`` (in strings, and in
    the strings of nested dicts and lists); URLs, hub ids and relative paths are kept."""
    if isinstance(value, str):
        for prefix in ("sqlite:///", "journal:"):
            rest = value[len(prefix) :]
            if value.startswith(prefix) and rest.startswith("/"):
                return f"{prefix}<local>/{PurePosixPath(rest).name}"
        return _ABSOLUTE.sub(lambda m: f"<local>/{m.group(1)}", value)
    if isinstance(value, Mapping):
        return {k: redact_paths(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_paths(v) for v in value]
    return value


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
    # a DistilBERT student's config.json, or a bilstm/cnn/bow student's nas_family.json
    if not isinstance(files, dict) or not {"config.json", FAMILY_FILE} & set(files):
        raise ExportError(
            f"{where} has no checkpoint ({CHECKPOINT_FILES} attribute missing or without "
            f"config.json or {FAMILY_FILE}; artifact root {root}); re-run the study or "
            "export another trial"
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
    for key, attr in (("task", TASK), ("teacher", TEACHER), ("data", DATASET)):
        record.setdefault(key, study.user_attrs.get(attr))
    record.update(
        study=study.study_name,
        trial=trial.number,
        values=dict(zip(metric_names(study), trial.values, strict=True)),
        directions=[d.name.lower() for d in study.directions],
        constraints=named_constraints(trial),
        feasible=is_feasible(trial),
        baseline=is_baseline(trial),
        n_params=trial.user_attrs.get(N_PARAMS),
        family=trial.params.get("family", "distilbert"),
        latency_ms=trial.user_attrs.get(LATENCY),  # median batch-1 latency, on latency_device
        latency_device=trial.user_attrs.get(DEVICE),
        trial_params=dict(trial.params),
        storage=context.storage,
        artifact_root=root.url,
        exported_at=context.exported_at,
        exported_by=f"nas {nas.__version__}",
        export_changes=[],  # what the export changed in the checkpoint's files
    )
    record.update(held_out_record(study, trial.number))
    return record


def held_out_record(study: optuna.Study, number: int) -> dict[str, Any]:
    """What the study knows beyond the selection split: the trial's test-split metrics, the
    teacher's metrics on both splits, and the mean and spread over new seeds."""
    from nas.study import confirmed_points, teacher_scores, test_scores

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


def index_row(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """One row of the index: trial, folder, values and task metrics by name, params count,
    feasible, baseline flag, then the trial's params (``param:NAME`` if a name is taken)."""
    row: dict[str, Any] = {"trial": trial.number, "folder": f"trial-{trial.number}"}
    row.update(zip(metric_names(study), trial.values, strict=True))
    for key, value in sorted(trial.user_attrs.items()):
        if key.startswith(METRIC_PREFIX):
            row.setdefault(key.removeprefix(METRIC_PREFIX), value)
    row["n_params"] = trial.user_attrs.get(N_PARAMS)
    row["latency_ms"] = trial.user_attrs.get(LATENCY)
    row["feasible"] = is_feasible(trial)
    row["baseline"] = is_baseline(trial)
    row.update({k if k not in row else f"param:{k}": v for k, v in trial.params.items()})
    return row


def _write_index(context: _Context, rows: Sequence[Mapping[str, Any]], into: Path) -> None:
    study = context.study
    index = {
        "study": study.study_name,
        "storage": redact_paths(context.storage),
        # where the checkpoints were read from (local folders redacted)
        "artifact_roots": redact_paths(sorted(context.stores)),
        "exported_at": context.exported_at,
        "nas_version": nas.__version__,
        "objectives": dict(
            zip(metric_names(study), [d.name.lower() for d in study.directions], strict=True)
        ),
        "trials": list(rows),
        # trial folder -> file -> size and sha256 (nas.json and README.md left out)
        "files": context.files,
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
