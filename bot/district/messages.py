"""Turning a validation error into words a district administrator can act on."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import (
    BaseModel,
)

from bot.district.fields import Loc


def _format_key(loc: Iterable[str | int]) -> str:
    """``('departments', 2, 'code')`` → ``departments[2].code``."""
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            key += f".{text}" if key else text
    return key


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (types.UnionType, typing.Union):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    if origin is tuple:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation


def _model_at(root: type[BaseModel], loc: Loc) -> Any:
    """The model or type that the file holds at ``loc`` under ``root`` (to suggest keys)."""
    current: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current


def _friendly_message(
    root: type[BaseModel], error_type: str, loc: Loc, message: str, value: object
) -> str:
    if error_type == "missing":
        target = _model_at(root, loc)
        if len(loc) == 1 and isinstance(target, type) and issubclass(target, BaseModel):
            return f"missing required table [{loc[0]}]"
        return f"missing required key {loc[-1]!r}"
    if error_type == "extra_forbidden":
        name = str(loc[-1])
        parent = _model_at(root, loc[:-1])
        allowed: list[str] = []
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            allowed = list(parent.model_fields)
        close = difflib.get_close_matches(name, allowed, n=1)
        if close:
            return f"unknown key {name!r} (did you mean {close[0]!r}?)"
        if allowed:
            return f"unknown key {name!r} (allowed here: {', '.join(allowed)})"
        return f"unknown key {name!r}"
    if error_type in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a table, got {_describe(value)}"
    if error_type in ("tuple_type", "list_type"):
        return f"expected an array, got {_describe(value)}"
    if message.startswith("Input should be a valid "):
        noun = message.removeprefix("Input should be a valid ").split(",")[0]
        article = "an" if noun[:1] in "aeiou" else "a"
        return f"expected {article} {noun}, got {_describe(value)}"
    if message.startswith("Input should be "):
        # Enumerations: "Input should be 'report', 'say' or 'help'".
        return f"expected {message.removeprefix('Input should be ')}, got {_describe(value)}"
    return message


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)
