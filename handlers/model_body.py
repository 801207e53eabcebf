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


_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI component schemas of `models` (and the models they contain)."""
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def operation(
    summary: str,
    response: type[BaseModel] | None,
    *,
    status: int = 200,
    body: type[BaseModel] | None = None,
    path_params: tuple[str, ...] = (),
    errors: tuple[int, ...] = (401, 403, 404, 422),
    list_response: bool = False,
) -> dict[str, Any]:
    """One OpenAPI operation whose bodies are the given models' schemas."""
    content: dict[str, Any] = {}
    if response is not None:
        ref = {"$ref": f"#/components/schemas/{response.__name__}"}
        schema = {"type": "array", "items": ref} if list_response else ref
        content = {"content": {"application/json": {"schema": schema}}}
    op: dict[str, Any] = {"summary": summary, "responses": {str(status): {"description": "OK", **content}}}
    for code in errors:
        op["responses"][str(code)] = {
            "description": "error",
            "content": {"application/json": {"schema": _ERROR_REF}},
        }
    if body is not None:
        ref = {"$ref": f"#/components/schemas/{body.__name__}"}
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
    if path_params:
        text = {"type": "string"}
        op["parameters"] = [{"name": n, "in": "path", "required": True, "schema": text} for n in path_params]
    return op
