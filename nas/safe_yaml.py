"""YAML for files people write (studies, search spaces): safe, bounded, one-line errors.

PyYAML's SafeLoader builds no objects but plain values, yet an alias (``*a``) shares its
anchor's value, so a few hundred bytes of nested aliases (a "billion laughs") stand for a
billion values that ``repr``, ``dataclasses.asdict`` or JSON then build. The loader here counts
the values a document stands for and refuses it past :data:`MAX_YAML_VALUES`.
"""

from __future__ import annotations

from typing import Any

import yaml

from nas.errors import ConfigError

# A YAML file's values with every alias expanded: a study file has about a hundred, a 650-byte
# "billion laughs" alias bomb a billion.
MAX_YAML_VALUES = 100_000
MAX_YAML_DEPTH = 64  # nesting of lists and mappings


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML safely and boundedly: aliases may expand to at most :data:`MAX_YAML_VALUES`
    values, nesting at most :data:`MAX_YAML_DEPTH` levels. Every error is one line naming
    ``where`` (the file) and the line."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = ": ".join(p for p in (exc.context, exc.problem) if p) or "invalid syntax"
        raise ConfigError(f"{where}: not valid YAML ({problem}{at}); fix the syntax") from None
    except yaml.YAMLError as exc:  # _TooLarge and the scanner's unmarked errors
        raise ConfigError(f"{where}: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:  # an integer literal longer than Python converts, a bad date
        text = str(exc).splitlines()[0][:120]
        raise ConfigError(f"{where}: a value cannot be read ({text}); fix it") from None


class _TooLarge(yaml.YAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that counts the values its document would have with every alias expanded
    and refuses it past MAX_YAML_VALUES (PyYAML shares an alias's node, but everything that
    walks the result, `repr` included, expands it), a recursive alias, and deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> its value count, aliases expanded
        self._open: list[str | None] = []  # anchors of the nodes being composed, outermost first
        self._values = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise _TooLarge(
                    f"the alias *{event.anchor} refers to a value that contains it (line "
                    f"{_line(event)}); write the value out without the alias"
                )
            node = super().compose_node(parent, index)
            self._count(_expanded(node, self._sizes), event)
            return node
        if len(self._open) >= MAX_YAML_DEPTH:
            raise _TooLarge(
                f"values nest deeper than {MAX_YAML_DEPTH} levels (line "
                f"{_line(event)}); a study file needs a few"
            )
        self._open.append(getattr(event, "anchor", None))
        try:
            node = super().compose_node(parent, index)
        finally:
            self._open.pop()
        self._count(1, event)
        return node

    def _count(self, values: int, event: Any) -> None:
        self._values += values
        if self._values > MAX_YAML_VALUES:
            raise _TooLarge(
                f"its aliases expand to over {MAX_YAML_VALUES:,} values (line "
                f"{_line(event)}: an alias bomb?); write the values out, with "
                "fewer * references"
            )


def _expanded(node: Any, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for with its aliases expanded (memoised by node)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded(k, sizes) + _expanded(v, sizes) for k, v in node.value)
    else:
        size = 1
    sizes[id(node)] = size
    return size


def _line(event: Any) -> int:
    mark = getattr(event, "start_mark", None)
    return int(mark.line) + 1 if mark is not None else 0
