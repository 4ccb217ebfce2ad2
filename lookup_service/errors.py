"""JSON errors `{"error": {"code", "message"}}` for every failure; no stack trace ever reaches a client."""

from __future__ import annotations

import logging

from flask import Flask, Response
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from lookup_service.schemas import ErrorDetail, ErrorResponse

logger = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    422: "invalid_parameter",
    503: "not_ready",
}


class ApiError(Exception):
    """Raised by a view to answer with an error status and body."""

    def __init__(self, status: int, code: str, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.run_id = run_id


def error_response(status: int, code: str, message: str) -> Response:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message))
    return Response(body.model_dump_json(), status=status, mimetype="application/json")


def validation_message(exc: ValidationError) -> str:
    """`field: problem; ...` for a path or query parameter pydantic rejected."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors())


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        response = error_response(exc.status, exc.code, exc.message)
        if exc.run_id:
            response.headers["X-Run-Id"] = exc.run_id
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        response = error_response(exc.code, HTTP_CODES.get(exc.code, "http_error"), exc.description or "")
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")
