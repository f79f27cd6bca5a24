"""Every refusal of the API in one shape: ``{"error": {"code", "message", "details"}}``.

``code`` is for programs (stable, English), ``message`` for people (in the
reader's language, from ``dialer.api.messages``), ``details`` the specific
problems (one line each, e.g. one per invalid field). Handlers here render
``ApiError``, FastAPI's request validation errors and Starlette's HTTP errors
(unknown path, wrong method) the same way, so a page never has to parse two
error formats.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from dialer.api.messages import locale_of, register, text

log = logging.getLogger(__name__)

register(
    {
        "error.invalid_request": {
            "en": "The request is not valid: {count} problem(s).",
            "zh-CN": "请求无效：共 {count} 处问题。",
        },
        "error.not_found": {"en": "Nothing is here.", "zh-CN": "找不到该资源。"},
        "error.method_not_allowed": {
            "en": "This method is not allowed here.",
            "zh-CN": "此处不允许该请求方法。",
        },
        "error.http": {"en": "The request failed ({status}).", "zh-CN": "请求失败（{status}）。"},
        "error.internal": {
            "en": "Something went wrong on the server; it has been logged.",
            "zh-CN": "服务器出错，已记录。",
        },
        "validation.missing": {"en": "is required", "zh-CN": "必填"},
        "validation.json_invalid": {"en": "is not valid JSON", "zh-CN": "不是有效的 JSON"},
        "validation.extra_forbidden": {"en": "is not a known field", "zh-CN": "不是已知字段"},
        "validation.string_type": {"en": "must be text", "zh-CN": "必须是文本"},
        "validation.bool_type": {"en": "must be true or false", "zh-CN": "必须是 true 或 false"},
        "validation.number": {"en": "must be a number", "zh-CN": "必须是数字"},
        "validation.datetime": {
            "en": "must be an ISO 8601 date and time",
            "zh-CN": "必须是 ISO 8601 日期时间",
        },
        "validation.enum": {
            "en": "must be one of: {expected}",
            "zh-CN": "必须是以下之一：{expected}",
        },
        "validation.too_short": {"en": "is too short", "zh-CN": "太短"},
        "validation.too_long": {"en": "is too long", "zh-CN": "太长"},
        "validation.model_type": {"en": "must be a JSON object", "zh-CN": "必须是 JSON 对象"},
        "validation.other": {"en": "is not valid ({problem})", "zh-CN": "无效（{problem}）"},
    }
)

# Pydantic's error types, grouped under the message people read for them.
_VALIDATION_KEYS = {
    "missing": "validation.missing",
    "json_invalid": "validation.json_invalid",
    "extra_forbidden": "validation.extra_forbidden",
    "string_type": "validation.string_type",
    "bool_type": "validation.bool_type",
    "bool_parsing": "validation.bool_type",
    "int_type": "validation.number",
    "int_parsing": "validation.number",
    "int_from_float": "validation.number",
    "float_type": "validation.number",
    "float_parsing": "validation.number",
    "datetime_type": "validation.datetime",
    "datetime_parsing": "validation.datetime",
    "datetime_from_date_parsing": "validation.datetime",
    "enum": "validation.enum",
    "literal_error": "validation.enum",
    "string_too_short": "validation.too_short",
    "too_short": "validation.too_short",
    "string_too_long": "validation.too_long",
    "too_long": "validation.too_long",
    "model_type": "validation.model_type",
    "model_attributes_type": "validation.model_type",
    "dict_type": "validation.model_type",
}

_STATUS_CODES = {
    404: ("not_found", "error.not_found"),
    405: ("method_not_allowed", "error.method_not_allowed"),
}


class ApiError(Exception):
    """A refusal: HTTP ``status``, machine ``code``, message ``key`` (+ its ``params``)."""

    def __init__(
        self,
        status: int,
        code: str,
        key: str,
        details: list[str] | None = None,
        **params: object,
    ) -> None:
        super().__init__(f"{status} {code}: {key} {params}")
        self.status = status
        self.code = code
        self.key = key
        self.details = list(details or [])
        self.params = params


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[str] = []


class ErrorBody(BaseModel):
    """What every 4xx and 5xx response carries."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route, so the OpenAPI document shows the error body."""
    return {status: {"model": ErrorBody} for status in statuses}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[str] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": list(details)}}
    return JSONResponse(body, status_code=status, headers=headers)


def field_name(location: Sequence[int | str]) -> str:
    """``("body", "callback_at")`` -> ``callback_at``; query and path keep their place."""
    parts = [str(part) for part in location]
    if parts and parts[0] == "body":
        parts = parts[1:] or ["body"]
    return ".".join(parts)


def validation_details(errors: Sequence[Any], locale: str) -> list[str]:
    details = []
    for error in errors:
        key = _VALIDATION_KEYS.get(str(error.get("type", "")), "validation.other")
        expected = (error.get("ctx") or {}).get("expected", "")
        problem = text(key, locale, expected=expected, problem=error.get("msg", ""))
        details.append(f"{field_name(error.get('loc', ()))}: {problem}")
    return details


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    message = text(exc.key, locale_of(request), **exc.params)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.code, message, exc.details, headers)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    locale = locale_of(request)
    details = validation_details(exc.errors(), locale)
    message = text("error.invalid_request", locale, count=len(details))
    return error_response(422, "invalid_request", message, details)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    locale = locale_of(request)
    code, key = _STATUS_CODES.get(exc.status_code, ("http_error", "error.http"))
    return error_response(
        exc.status_code,
        code,
        text(key, locale, status=exc.status_code),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", text("error.internal", locale_of(request)))


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
