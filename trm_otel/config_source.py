r"""Where a config comes from: YAML text with positions, and ``${env:VAR}`` expansion.

    >>> data, positions, problems = read_yaml("api:\n  endpoint: 127.0.0.1:8080\n", "trm-otel.yaml")
    >>> positions.find("api.endpoint")
    (2, 3)

Kept apart from the models in :mod:`trm_otel.config` because it is about
the file, not the settings: PyYAML silently keeps the last of two equal keys
and forgets where anything was, so problems could not say "line 4"; this
module walks the node tree to report duplicate keys and to map a key path
back to its line and column.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

from trm_otel.errors import ConfigError

__all__ = ["Positions", "expand_env", "located", "read_yaml"]

Loc = tuple[int | str, ...]  # a location in the input, as pydantic reports it


# --- ${env:VAR} ---------------------------------------------------------------

_SUBSTITUTION = re.compile(r"\$\$\{|\$\{([^}]*)(\})?")
_ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.DOTALL)


def expand_env(value: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> Any:
    """``value`` with ``${env:VAR}`` / ``${env:VAR:-default}`` replaced in every string value.

    A default is used when the variable is unset or empty (the shell's
    ``:-``). ``$${`` is a literal ``${``. Problems are appended with their
    location instead of raised, so one run reports every missing variable.
    """
    if isinstance(value, str):
        return _expand_string(value, loc, problems)
    if isinstance(value, Mapping):
        return {k: expand_env(v, (*loc, k if isinstance(k, str) else str(k)), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, (*loc, i), problems) for i, v in enumerate(value)]
    return value


def _expand_string(text: str, loc: Loc, problems: list[tuple[Loc, str]]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        if match.group(2) is None:
            problems.append((loc, f"unterminated '${{' in {text!r} (write '$${{' for a literal '${{')"))
            return match.group(0)
        ref = _ENV_REF.match(match.group(1))
        if ref is None:
            bare = _ENV_REF.match(f"env:{match.group(1)}")
            hint = f"did you mean '${{env:{match.group(1)}}}'?" if bare else "use ${env:VAR} or ${env:VAR:-default}"
            problems.append((loc, f"unsupported substitution {match.group(0)!r} ({hint})"))
            return match.group(0)
        name, default = ref.group(1), ref.group(2)
        found = os.environ.get(name)
        if default is not None and not found:
            return default
        if found is None:
            problems.append((loc, f"environment variable {name} is not set (set it, or write ${{env:{name}:-default}})"))
            return ""
        return found

    return _SUBSTITUTION.sub(replace, text)


# --- YAML and problem locations ----------------------------------------------


class Positions:
    """Line and column of every key in the file, looked up by rendered key path."""

    _SEGMENT = re.compile(r'\["(.*?)"\]|\[(\d+)\]|\.?([^.\[\]"]+)')

    def __init__(self, root: yaml.Node | None) -> None:
        self._root = root

    def find(self, path: str) -> tuple[int, int]:
        """1-based (line, column) of ``path``, or of its nearest ancestor in the file."""
        node = self._root
        if node is None:
            return (1, 1)
        mark = node.start_mark
        for quoted, index, plain in self._SEGMENT.findall(path):
            if isinstance(node, yaml.MappingNode):
                key = quoted or plain or index
                pairs = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key]
                if not pairs:
                    break
                mark, node = pairs[-1][0].start_mark, pairs[-1][1]  # the last one wins, as in PyYAML
            elif isinstance(node, yaml.SequenceNode) and index and int(index) < len(node.value):
                node = node.value[int(index)]
                mark = node.start_mark
            else:
                break
        return (mark.line + 1, mark.column + 1)


def _duplicate_keys(node: yaml.Node | None, loc: Loc, seen: set[int], out: list[tuple[Loc, str]]) -> None:
    """Keys given twice in one mapping: PyYAML keeps the last silently, a classic lost setting."""
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            if key.value in lines:
                out.append(((*loc, key.value), f"duplicate key (first at line {lines[key.value]})"))
            else:
                lines[key.value] = key.start_mark.line + 1
            _duplicate_keys(value, (*loc, key.value), seen, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _duplicate_keys(item, (*loc, index), seen, out)


def read_yaml(text: str, source: str) -> tuple[Any, Positions, list[tuple[Loc, str]]]:
    """The document, its key positions and its duplicate keys; :class:`ConfigError` for anything YAML refuses.

    The loader is created inside the ``try``: PyYAML checks the characters
    when it is built and refuses control characters (a NUL byte, say) with
    a ``ReaderError`` that carries an offset, not a line.
    """
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        duplicates: list[tuple[Loc, str]] = []
        _duplicate_keys(node, (), set(), duplicates)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        message = f"invalid YAML: {', '.join(part for part in (err.context, err.problem) if part)}"
        raise ConfigError([(where, message)]) from None
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        char = f"U+{err.character:04X}" if isinstance(err.character, int) else repr(err.character)
        message = f"invalid YAML: character {char} is not allowed (write it as an escape in a double-quoted string)"
        raise ConfigError([(f"{source}:{line}:{column}", message)]) from None
    except yaml.YAMLError as err:
        raise ConfigError([(source, f"invalid YAML: {err}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, Positions(node), duplicates


def located(problems: list[tuple[str, str]], source: str, positions: Positions | None) -> list[tuple[str, str]]:
    """Each key path prefixed by where it is: ``file:line:col`` (in file order) or just ``source``."""
    if positions is None:
        return [(": ".join(part for part in (source, path) if part), message) for path, message in problems]
    placed = sorted(((positions.find(path), path, message) for path, message in problems), key=lambda p: p[0])
    return [
        (": ".join(part for part in (f"{source}:{line}:{column}", path) if part), message)
        for (line, column), path, message in placed
    ]
