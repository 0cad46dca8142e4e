"""The one exceptions module: every error trm-otel raises on purpose.

    >>> from trm_otel.errors import ConfigError
    >>> err = ConfigError([("slo.default.p95_ms", "Input should be greater than 0")])
    >>> print(err)
    slo.default.p95_ms: Input should be greater than 0

Hierarchy::

    Exception
     └── TrmOtelError              catch-all for errors raised by trm-otel
          └── ConfigError          (also a ValueError) bad configuration; one
                                   (key path, message) pair per problem

Configuration is validated by pydantic models; :meth:`ConfigError.from_validation_error`
is the single place where pydantic's error locations become the dotted key
paths users see (``receivers.otlp.protocols.grpc.endpoint: ...``), so every
model, whatever module defines it, reports problems the same way.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pydantic

__all__ = ["ConfigError", "TrmOtelError"]

Loc = tuple[int | str, ...]
KnownKeysHint = type[pydantic.BaseModel] | Callable[[Loc], Iterable[str] | None] | None


class _Auto:
    """Sentinel: find the validated model by the error's title."""

    def __repr__(self) -> str:
        return "AUTO"


AUTO: Any = _Auto()


class TrmOtelError(Exception):
    """Base of every exception trm-otel raises deliberately.

    Lets an application wrap ``configure()`` in one ``except`` without also
    swallowing unrelated bugs.
    """


class ConfigError(TrmOtelError, ValueError):
    """Invalid configuration, with every problem and where it is.

    ``problems`` is a tuple of ``(key_path, message)`` pairs; ``str(err)``
    is one ``key.path: message`` line per problem, so a user fixing a config
    file sees all mistakes at once instead of one per run. It is also a
    ``ValueError`` so code that validates generically keeps working.
    """

    problems: tuple[tuple[str, str], ...]

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple((str(path), str(message)) for path, message in problems)
        super().__init__(self._render())

    def _render(self) -> str:
        if not self.problems:
            return "invalid configuration"
        return "\n".join(f"{path}: {message}" if path else message for path, message in self.problems)

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self) -> tuple[Any, ...]:
        # The default pickling would call ConfigError(message); keep the pairs.
        return (type(self), (self.problems,))

    @classmethod
    def from_validation_error(
        cls,
        err: pydantic.ValidationError,
        key_path: str = "",
        known_keys_hint: KnownKeysHint = AUTO,
    ) -> ConfigError:
        """Translate a pydantic error into key-path problems.

        ``key_path`` is where the validated value sits in the whole config
        (``"processors.latency"``), prefixed to every location. Unknown keys
        (``extra_forbidden``) get ``unknown key`` plus the closest known key
        at that spot; the known keys come from ``known_keys_hint``: a model
        class to walk, a callable ``loc -> keys``, ``None`` for no
        suggestions, or by default the model named by the error's title when
        exactly one loaded model has that name. Walking the model also drops
        pydantic's union-member tags (``function-after[...]``) from paths,
        since users never typed them.
        """
        model = _resolve_model(err, known_keys_hint)
        problems: list[tuple[str, str]] = []
        for item in err.errors(include_url=False):
            loc: Loc = tuple(item.get("loc", ()))
            shown, candidates = _walk(model, loc) if model is not None else (loc, None)
            message = _message(item)
            if item.get("type") == "extra_forbidden" and shown:
                known: Iterable[str] | None = None
                if callable(known_keys_hint) and not isinstance(known_keys_hint, type):
                    known = known_keys_hint(loc[:-1])
                elif candidates is not None:
                    known = candidates
                message = _unknown_key_message(str(shown[-1]), known)
            if shown and shown[-1] == "[key]":
                # The element before ``[key]`` is a mapping key, even when an int.
                shown = shown[:-2] + tuple(str(p) for p in shown[-2:-1])
                message = f"key: {message}"
            problem = (_join(key_path, shown), message)
            if problem not in problems:
                problems.append(problem)
        return cls(problems)


def _message(item: Mapping[str, Any]) -> str:
    """pydantic's message minus the ``Value error, `` noise of custom validators."""
    message = str(item.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _unknown_key_message(key: str, known: Iterable[str] | None) -> str:
    if known:
        close = difflib.get_close_matches(key, sorted(set(known)), n=1, cutoff=0.6)
        if close:
            return f"unknown key (did you mean {close[0]!r}?)"
    return "unknown key"


_PLAIN_KEY = re.compile(r"^[^.\[\]\"]+$")


def _join(key_path: str, loc: Loc) -> str:
    """``a.b[0].c``; keys that would read ambiguously are quoted (``a["x.y"]``)."""
    out = key_path
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


# --- finding and walking the validated model ---------------------------------


def _resolve_model(err: pydantic.ValidationError, hint: KnownKeysHint) -> type[pydantic.BaseModel] | None:
    if isinstance(hint, type) and issubclass(hint, pydantic.BaseModel):
        return hint
    if hint is not AUTO:
        return None
    matches = {cls for cls in _all_models() if cls.__name__ == err.title}
    return matches.pop() if len(matches) == 1 else None


def _all_models() -> Iterable[type[pydantic.BaseModel]]:
    seen: set[type] = set()
    stack: list[type] = [pydantic.BaseModel]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
                yield sub


_TAG = re.compile(r"^[a-z][\w-]*\[.*\]$")


def _walk(model: type[pydantic.BaseModel], loc: Loc) -> tuple[Loc, set[str] | None]:
    """Follow ``loc`` through the model's annotations.

    Returns the location without union tags and the keys known at the
    parent of its last element (``None`` when the walk lost track).
    """
    shown: list[int | str] = []
    current: list[Any] = [model]
    parent_keys: set[str] | None = None
    for part in loc:
        current = _expand(current)
        if len(current) > 1 and isinstance(part, str) and _is_union_tag(part, current):
            narrowed = [t for t in current if getattr(t, "__name__", None) and t.__name__ in part]
            current = narrowed or current
            continue
        parent_keys = _keys_of(current)
        shown.append(part)
        current = [t for c in current for t in _step(c, part)]
    return tuple(shown), parent_keys


def _expand(candidates: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = list(reversed(candidates))
    while stack:
        tp = stack.pop()
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            stack.append(typing.get_args(tp)[0])
        elif origin is typing.Union or origin is types.UnionType:
            stack.extend(reversed([a for a in typing.get_args(tp) if a is not type(None)]))
        elif tp not in out:
            out.append(tp)
    return out


def _is_union_tag(part: str, candidates: list[Any]) -> bool:
    return bool(_TAG.match(part)) or any(getattr(t, "__name__", None) == part for t in candidates)


def _keys_of(candidates: list[Any]) -> set[str] | None:
    keys: set[str] = set()
    found = False
    for tp in candidates:
        if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
            found = True
            for name, info in tp.model_fields.items():
                keys.add(name)
                if isinstance(info.alias, str):
                    keys.add(info.alias)
                if isinstance(info.validation_alias, str):
                    keys.add(info.validation_alias)
    return keys if found else None


def _step(tp: Any, part: int | str) -> list[Any]:
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        for name, info in tp.model_fields.items():
            if part in (name, info.alias, info.validation_alias):
                return [info.annotation]
        return []
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    if isinstance(origin, type) and issubclass(origin, Mapping) and len(args) == 2:
        return [] if part == "[key]" else [args[1]]
    if isinstance(origin, type) and issubclass(origin, (list, tuple, set, frozenset, Sequence)) and args:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return [args[part]] if isinstance(part, int) and 0 <= part < len(args) else []
        return [args[0]]
    return []
