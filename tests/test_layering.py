"""DESIGN's "imports flow one way", as assertions on the source (plain ``ast``, nothing imported).

The packages of ``nas/`` and what each may not import are listed in :data:`FORBIDDEN`; a
package reaches another only through its face (``nas/PKG/__init__.py``), and a face only
re-exports. Each rule is checked on the real tree, then once against a copy of the tree
broken on purpose, so a rule that could never fail is caught too.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

NAS = Path(__file__).resolve().parents[1] / "nas"
PACKAGES = ("tasks", "students", "trial", "study", "search", "results", "cli")
HEAVY = ("torch", "transformers", "ray", "optuna")
# What each package may not import: third-party roots and nas packages.
FORBIDDEN: dict[str, set[str]] = {
    "tasks": {"torch", "ray", "optuna", *(p for p in PACKAGES if p != "tasks")},
    "students": {"ray", "optuna", "trial", "study", "search", "results", "cli"},
    "trial": {"ray", "optuna", "study", "search", "results", "cli"},
    "study": {
        "torch",
        "transformers",
        "ray",
        "tasks",
        "students",
        "trial",
        "search",
        "results",
        "cli",
    },
    "results": {"torch", "transformers", "ray", "students", "trial", "search", "cli"},
    "search": {"cli"},
    "cli": set(),
    # the shared top-level modules (config, errors, search_space, ...) import no package but
    # tasks (feasibility scores the no-answer baseline with the SQuAD metric)
    "": {"torch", "ray", *(p for p in PACKAGES if p != "tasks")},
}
OPTUNA_PRIVATE = ("_storage", "_trial_id", "_study_id")  # allowed in nas/study/ only


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted
    names: tuple[str, ...]  # for ``from X import a, b``
    line: int
    lazy: bool  # inside a function or under TYPE_CHECKING


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """``nas.trial.run`` -> ``trial``; ``nas.config`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in PACKAGES) else ""


def imports(path: Path, root: Path) -> Iterator[Import]:
    me = module_name(path, root)
    tree = ast.parse(path.read_text())
    lazy_nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or (
            isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        ):
            lazy_nodes.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        lazy = id(node) in lazy_nodes
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(me, alias.name, (), node.lineno, lazy)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = tuple(a.name for a in node.names)
            yield Import(me, node.module, names, node.lineno, lazy)


def tree_imports(root: Path) -> list[Import]:
    return [i for path in sorted(root.rglob("*.py")) for i in imports(path, root)]


def violations(root: Path) -> list[str]:
    """Every broken rule in the tree under ``root`` (the ``nas`` folder), one line each."""
    found = []
    all_imports = tree_imports(root)
    submodules = {p: {q.stem for q in (root / p).glob("*.py")} for p in PACKAGES}
    for imp in all_imports:
        mine = package_of(imp.module)
        top = imp.target.split(".")[0]
        theirs = package_of(imp.target) if top == "nas" else top
        where = f"{imp.module}:{imp.line} imports {imp.target}"
        if imp.module == "nas.__main__":  # ``python -m nas`` is the command line
            continue
        if theirs in FORBIDDEN[mine] and (top != "nas" or theirs != mine):
            found.append(f"{where}: {mine or 'nas/*.py'} may not import {theirs}")
        if top != "nas" or mine == "cli" and theirs == "cli":
            continue
        if theirs and theirs != mine and imp.target.count(".") > 1:
            found.append(f"{where}: another package's module; import from nas.{theirs}")
        if theirs and theirs != mine and imp.target == f"nas.{theirs}":
            subs = [n for n in imp.names if n in submodules[theirs]]
            if subs:
                found.append(f"{where}: submodule {subs[0]}; import names from the face")
        private = any(n.startswith("_") and not n.startswith("__") for n in imp.names)
        if private and not (mine == "cli" and imp.target == "nas.cli"):  # cli's own commands
            found.append(f"{where}: a private name {imp.names}")
    found += face_violations(root)
    found += private_optuna(root)
    found += cycles(all_imports)
    return found


def face_violations(root: Path) -> list[str]:
    """A face holds its docstring, re-exports from its own package and ``__all__``; nothing
    else, and every re-exported name is in ``__all__``."""
    found = []
    for pkg in PACKAGES:
        face = root / pkg / "__init__.py"
        if pkg == "cli":  # the command line's face is main(): the entry point itself
            continue
        tree = ast.parse(face.read_text())
        exported: set[str] = set()
        listed: set[str] = set()
        for i, node in enumerate(tree.body):
            if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"nas.{pkg}."):
                exported.update(a.asname or a.name for a in node.names)
            elif (
                isinstance(node, ast.Assign)
                and [ast.unparse(t) for t in node.targets] == ["__all__"]
                and isinstance(node.value, ast.List)
            ):
                listed = {ast.literal_eval(e) for e in node.value.elts}
            else:
                found.append(f"nas/{pkg}/__init__.py:{node.lineno}: a face only re-exports")
        if exported != listed:
            found.append(f"nas/{pkg}/__init__.py: __all__ differs by {exported ^ listed}")
    return found


def private_optuna(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.parent == root / "study":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in OPTUNA_PRIVATE:
                found.append(
                    f"{module_name(path, root)}:{node.lineno} uses Optuna's private "
                    f"{node.attr}; add a helper in nas/study/"
                )
    return found


def cycles(all_imports: list[Import]) -> list[str]:
    """Import cycles: between modules at import time, and between packages at all."""
    found = []
    eager: dict[str, set[str]] = {}
    packages: dict[str, set[str]] = {}
    for imp in all_imports:
        if imp.target.split(".")[0] != "nas":
            continue
        targets = ({imp.target} | {f"{imp.target}.{n}" for n in imp.names}) - {imp.module}
        if not imp.lazy:
            eager.setdefault(imp.module, set()).update(targets)
        mine, theirs = package_of(imp.module), package_of(imp.target)
        if mine and theirs and mine != theirs:
            packages.setdefault(mine, set()).add(theirs)
    for graph, kind in ((eager, "modules"), (packages, "packages")):
        cycle = _find_cycle(graph)
        if cycle:
            found.append(f"an import cycle between {kind}: {' -> '.join(cycle)}")
    return found


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_tree_keeps_every_rule() -> None:
    assert violations(NAS) == []


def test_every_package_has_its_rules() -> None:
    on_disk = {p.name for p in NAS.iterdir() if (p / "__init__.py").is_file()}
    assert on_disk == set(PACKAGES), "a new package needs its line in FORBIDDEN"


def _broken(tmp_path: Path, path: str, old: str, new: str) -> list[str]:
    copy = tmp_path / "nas"
    shutil.copytree(NAS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / path
    text = target.read_text()
    assert old in text, f"{old!r} not in {path}: update this test"
    target.write_text(text.replace(old, new, 1))
    return violations(copy)


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        # a heavy import where it may not be
        (
            "study/record.py",
            "import optuna\n",
            "import optuna\nimport torch\n",
            "may not import torch",
        ),
        ("trial/losses.py", "import torch\n", "import torch\nimport ray\n", "may not import ray"),
        # a package reaching up
        (
            "results/picks.py",
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nfrom nas.search import run_study\n",
            "may not import search",
        ),
        # around a face, into a private name, into Optuna's internals
        (
            "search/driver.py",
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nfrom nas.study.record import REASON\n",
            "another package's module",
        ),
        (
            "trial/run.py",
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nfrom nas.students.cost import _as_int\n",
            "a private name",
        ),
        (
            "results/summary.py",
            "def summarize(study: optuna.Study) -> Summary:\n",
            "def summarize(study: optuna.Study) -> Summary:\n    study._storage\n",
            "Optuna's private _storage",
        ),
        # a face with logic, a cycle
        ("study/__init__.py", '"""\n', '"""\n\nDEFAULT = 1\n', "a face only re-exports"),
        (
            "config.py",
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nimport nas.search_space\n",
            "an import cycle between modules",
        ),
    ],
)
def test_a_broken_rule_is_caught(
    tmp_path: Path, path: str, old: str, new: str, expected: str
) -> None:
    found = _broken(tmp_path, path, old, new)
    assert any(expected in line for line in found), found
