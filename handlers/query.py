"""Query-string values as model fields: a query parameter arrives as text, so numbers and
flags are read from text here, strictly (ASCII digits only: `str.isdigit()` would take
'¹', which `int()` then refuses), and the rest of each rule is the model's."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from annotated_types import Interval
from pydantic import BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

from hub.values import INT64_MAX

T = TypeVar("T")
_WHOLE = re.compile(r"^-?[0-9]{1,19}$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def query_model() -> ConfigDict:
    """Unknown parameters are ignored (caches and proxies add their own)."""
    return ConfigDict(strict=True, extra="ignore", populate_by_name=True)


def _whole(value: Any) -> Any:
    if isinstance(value, str):
        if not _WHOLE.match(value):
            raise PydanticCustomError("type", "must be a whole number")
        return int(value)
    return value


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word not in _TRUE + _FALSE:
            raise PydanticCustomError("type", "must be true or false")
        return word in _TRUE
    return value


QueryInt = Annotated[T, BeforeValidator(_whole)]
Flag = Annotated[bool, BeforeValidator(_flag)]
# The id of a stored row in a path (`/templates/{template_id}`): a bigserial.
RowId = QueryInt[Annotated[int, Interval(ge=1, le=INT64_MAX)]]
