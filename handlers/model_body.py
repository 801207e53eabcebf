"""Request bodies declared as pydantic models: one helper turns a failed model into the
hub's typed 422 (`invalid`, every failed field listed in `details.errors`)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import ApiError

Model = TypeVar("Model", bound=BaseModel)


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def parse_body(model: type[Model], body: Any, prefix: str = "") -> Model:
    """`body` checked against `model`, or ApiError(422) naming every field at fault."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [
            {"field": field_path(e["loc"], prefix), "rule": e["type"], "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        first = errors[0]
        raise ApiError(
            422,
            "invalid",
            f"{first['field']}: {first['message']}",
            {"field": first["field"], "errors": errors},
        ) from None
