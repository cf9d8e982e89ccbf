"""Form fields as both SDK encodings send them: bracket fields folded into one mapping, and JSON in
a field parsed within bounds (size, depth) before anything recurses into it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

# JSON in form fields: nesting and size past anything a client sends (a parser never recurses deep).
MAX_JSON_DEPTH = 16
MAX_JSON_CHARS = 16 << 10
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


def parse_json(text: str, what: str, max_chars: int = MAX_JSON_CHARS) -> Any:
    """Parse JSON from a form field; too deep, too long or unparseable raises ValueError (a 400).
    ``max_chars`` may let long strings in (references); what is outside them stays small, so no
    field unpacks into millions of objects."""
    if len(text) > max_chars:
        raise ValueError(f"{what} is longer than {max_chars} characters")
    skeleton = _STRINGS.sub('""', text)  # at C speed, however long the strings
    if len(skeleton) > MAX_JSON_CHARS:
        raise ValueError(f"{what} has more than {MAX_JSON_CHARS} characters outside its strings")
    if json_depth(skeleton) > MAX_JSON_DEPTH:
        raise ValueError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON for {what}: {exc.msg}") from None
    except ValueError:  # an integer past Python's digit limit
        raise ValueError(f"{what} holds a number too long to read") from None


def json_depth(text: str) -> int:
    """The deepest nesting of brackets outside strings (before parsing, so it cannot recurse)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def fold_form_fields(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Fold multipart text fields into one mapping: ``a[b]=v`` -> ``{"a": {"b": v}}``,
    ``a[]=v`` (or a repeated ``a``) -> a list."""
    result: dict[str, Any] = {}
    for key, value in items:
        if key.endswith("[]"):
            result.setdefault(key[:-2], []).append(value)
        elif "[" in key and key.endswith("]"):
            name, _, sub = key[:-1].partition("[")
            target = result.setdefault(name, {})
            if isinstance(target, dict):
                target[sub] = value
        elif key in result:
            existing = result[key]
            result[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            result[key] = value
    return result
