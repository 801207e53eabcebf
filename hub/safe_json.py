"""What may be stored: decoded JSON that PostgreSQL and our encoder both accept.

Two things parse as valid JSON yet cannot be written, and would otherwise fail the whole
group-commit batch they land in (hurting every neighbour in it):

- the NUL character (`\\u0000`): PostgreSQL `text` and `jsonb` cannot hold it;
- nesting deeper than orjson can encode again (it stops at 254 levels).

Both are refused up front as `invalid`, naming where the problem is.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 32  # far deeper than any event or record needs; well under orjson's limit


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    if "\x00" in value:
        return "must not contain the NUL character (\\u0000)"
    return None


def json_problem(value: Any, where: str = "data", max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """(path, reason) of the first part of `value` that cannot be stored, or None.

    Iterative, so that a hostile document cannot exhaust the Python stack either.
    """
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return path, problem
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                return path, f"is nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str) and "\x00" in key:
                        return path, "has a key containing the NUL character (\\u0000)"
                    stack.append((child, f"{path}.{key}"[:200], depth + 1))
            else:
                for index, child in enumerate(item):
                    stack.append((child, f"{path}[{index}]"[:200], depth + 1))
    return None


def raw_is_storable(raw: str | bytes) -> bool:
    """True when a JSON document, as received, cannot hold anything `json_problem` would
    refuse: a NUL reaches decoded text only through the `\\u0000` escape, and a document
    with fewer brackets than `MAX_DEPTH` cannot nest that deep. The inbound fast path; False
    only means "look closer"."""
    if isinstance(raw, str):
        return "\\u0000" not in raw and raw.count("{") + raw.count("[") < MAX_DEPTH
    return b"\\u0000" not in raw and raw.count(b"{") + raw.count(b"[") < MAX_DEPTH
