"""How an HTTP endpoint declares its contract, once, for the request handling and for
`/openapi.json` alike.

    @operation("Create (schedule) a session", SessionOut, status=201, roles=WRITERS, errors=(CONFLICT,))
    async def create_session(principal: Principal, body: SessionCreate) -> dict[str, Any]: ...

The handler's parameters say what it needs, by name, and are resolved in this order:
the caller (`principal`; every operation not marked `public` authenticates, 401/403),
the session of the path (`record`, 404), ids of the path (any other name, annotated with
its type; a malformed id is 404), the query (`query`, a model; 422) and the JSON body
(`body`, a model, optional when annotated `Model | None`; 400/413/422). Every failed
rule of a model is listed in the 422. The statuses an operation answers follow from
what it declares, plus its own `errors` (such as 409). Writes, and reads declared
`expensive`, are metered against the caller's HTTP budget (`handlers.http_limits`, 429).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin, get_type_hints

from pydantic import AliasChoices, BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from hub.connection import Principal
from hub.errors import ErrorCode, Forbidden, NotFound
from hub.node import Hub
from hub.safe_json import text_problem
from hub.store import SessionRecord
from hub.validation import invalid, parse, problems
from hub.values import SESSION_ID_RE

from .auth import bearer_token, can_open
from .errors import json_response, read_json_object
from .http_limits import Expensive, HttpLimits

Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Operation:
    summary: str
    response: Any  # the success body's model (or type); None: not JSON
    status: int
    roles: tuple[str, ...] | None
    public: bool
    touches_store: bool
    errors: tuple[ErrorCode, ...]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_optional: bool = False
    loads_session: bool = False
    path: dict[str, Any] = field(default_factory=dict)  # path parameter -> its type
    media_type: str = "application/json"
    description: str = ""
    other: dict[int, Any] = field(default_factory=dict)  # statuses answered with their own body
    expensive: Expensive = False  # costs a unit of the caller's HTTP budget (handlers/http_limits.py)

    def error_codes(self) -> list[ErrorCode]:
        """Every error code this operation can answer."""
        codes = set(self.errors)
        if not self.public:
            codes |= {ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN}
        if self.loads_session or self.path:
            codes.add(ErrorCode.NOT_FOUND)
        if self.query is not None:
            codes.add(ErrorCode.INVALID)
        if self.body is not None:
            codes |= {ErrorCode.INVALID_JSON, ErrorCode.TOO_LARGE, ErrorCode.INVALID}
        if self.touches_store:
            codes.add(ErrorCode.UNAVAILABLE)
        return sorted(codes, key=list(ErrorCode).index)


def operation_of(endpoint: Any) -> Operation | None:
    found: Operation | None = getattr(endpoint, "__operation__", None)
    return found


def _optional_model(annotation: Any) -> tuple[Any, bool]:
    """(model, optional) of `Model` or `Model | None`."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0], len(args) < len(get_args(annotation))
    return annotation, False


def operation(
    summary: str,
    response: Any,
    *,
    status: int = 200,
    roles: tuple[str, ...] | None = None,
    public: bool = False,
    touches_store: bool = True,
    errors: tuple[ErrorCode, ...] = (),
    media_type: str = "application/json",
    other: dict[int, Any] | None = None,
    token_in_query: bool = False,
    expensive: Expensive = False,
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    def declare(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        hints = get_type_hints(handler, include_extras=True)
        plan: list[tuple[str, str, Any]] = []
        declared: dict[str, Any] = {"path": {}}
        for name in inspect.signature(handler).parameters:
            if name in ("request", "principal"):
                plan.append((name, name, None))
            elif name == "record":
                plan.append((name, name, None))
                declared["loads_session"] = True
            elif name == "query":
                plan.append((name, name, hints[name]))
                declared["query"] = hints[name]
            elif name == "body":
                model, optional = _optional_model(hints[name])
                plan.append((name, "body", (model, optional)))
                declared.update(body=model, body_optional=optional)
            else:
                plan.append((name, "path", TypeAdapter(hints[name])))
                declared["path"][name] = hints[name]
        described = Operation(
            summary,
            response,
            status,
            roles,
            public,
            touches_store and not public,
            errors,
            media_type=media_type,
            description=inspect.getdoc(handler) or "",
            other=other or {},
            expensive=expensive,
            **declared,
        )
        order = {"request": 0, "principal": 1, "record": 2, "path": 3, "query": 4, "body": 5}
        plan.sort(key=lambda step: order[step[1]])

        async def endpoint(request: Request) -> Response:
            principal = None if public else caller(request, roles, token_in_query)
            limits: HttpLimits = request.app.state.http_limits
            with limits.metered(request, principal, expensive):  # 429 beyond the budget
                values: dict[str, Any] = {}
                for name, kind, spec in plan:
                    if kind == "request":
                        values[name] = request
                    elif kind == "principal":
                        values[name] = principal
                    elif kind == "record":
                        assert principal is not None
                        values[name] = await load_session(request, principal)
                    elif kind == "path":
                        values[name] = path_value(request, name, spec)
                    elif kind == "query":
                        values[name] = parse_query(request, spec)
                    else:
                        values[name] = await parse_body(request, *spec)
                result = await handler(**values)
            if isinstance(result, Response):
                return result
            if isinstance(result, BaseModel):
                result = result.model_dump(mode="json")
            return json_response(result, status)

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        endpoint.__operation__ = described  # type: ignore[attr-defined]
        return endpoint

    return declare


# what the steps read


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def caller(request: Request, roles: tuple[str, ...] | None = None, token_in_query: bool = False) -> Principal:
    """Who calls: the Bearer token; with `token_in_query`, also `?token=` (for a browser's
    EventSource, which cannot set headers)."""
    token = bearer_token(request) or (request.query_params.get("token") if token_in_query else None)
    principal: Principal = request.app.state.auth.from_request(request, token)
    if roles is not None and principal.role not in roles:
        needed = " or ".join(roles)
        raise Forbidden(f"role '{principal.role}' may not do this; it needs {needed}")
    return principal


async def load_session(request: Request, principal: Principal) -> SessionRecord:
    session_id = request.path_params["session_id"]
    record = None
    # Another account's session, or one outside the token's list, is simply not there;
    # neither is an id no session can have (PostgreSQL text cannot even hold NUL).
    if can_open(principal, session_id) and SESSION_ID_RE.match(session_id):
        record = await hub_of(request).store.get_session(principal.account_id, session_id)
    if record is None:
        raise NotFound(f"session '{session_id[:100]}' not found")
    return record


def path_value(request: Request, name: str, adapter: TypeAdapter[Any]) -> Any:
    raw = request.path_params[name]
    try:
        return adapter.validate_python(raw)
    except ValidationError:
        raise NotFound(f"{name.removesuffix('_id')} '{raw[:50]}' not found") from None


def query_names(model: type[BaseModel]) -> dict[str, str]:
    """Every name a query parameter of `model` may be given under -> its field."""
    names: dict[str, str] = {}
    for name, info in model.model_fields.items():
        names[info.alias or name] = name
        if isinstance(info.validation_alias, AliasChoices):
            names.update({str(choice): name for choice in info.validation_alias.choices})
    return names


def parse_query(request: Request, model: type[BaseModel]) -> Any:
    return parse_params(request.query_params, model, "query parameter ")


def parse_params(params: QueryParams, model: type[BaseModel], what: str = "") -> Any:
    """The query string as `model`: unknown names are ignored, an empty value is absent,
    and a refusal names every broken rule (Invalid)."""
    known = query_names(model)
    raw: dict[str, str] = {}
    for name, value in params.multi_items():
        if name not in known or value == "":
            continue
        problem = text_problem(value)
        if problem is not None:
            found = [{"field": name, "rule": "storable", "message": problem}]
            raise invalid(found, f"{what}'{name}' {problem}")
        raw[name] = value
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        found = problems(exc)
        first = found[0]
        raise invalid(found, f"{what}'{first['field']}' {first['message']}") from None


async def parse_body(request: Request, model: type[BaseModel], optional: bool) -> Any:
    if optional and request.headers.get("content-length") in (None, "0"):
        return None
    data = await read_json_object(request, hub_of(request).settings.max_body_bytes)
    return parse(model, data)
