"""Gemini's error bodies: {"error": {"code", "message", "status", "details"}}."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ApiError(Exception):
    code: int
    status: str
    message: str
    details: list = field(default_factory=list)

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "status": self.status, "details": self.details}}


def invalid_argument(message: str = "Request contains an invalid argument.") -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def bad_api_key() -> ApiError:
    message = "API key not valid. Please pass a valid API key."
    return ApiError(
        400,
        "INVALID_ARGUMENT",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message},
        ],
    )


def missing_api_key() -> ApiError:
    return ApiError(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    )


def file_denied(file_id: str) -> ApiError:
    return ApiError(
        403, "PERMISSION_DENIED", f"You do not have permission to access the File {file_id} or it may not exist."
    )


def file_not_active(file_id: str) -> ApiError:
    return ApiError(
        400, "FAILED_PRECONDITION", f"The File {file_id} is not in an ACTIVE state and usage is not allowed."
    )


def model_not_found(model: str, version: str, method: str) -> ApiError:
    return ApiError(
        404, "NOT_FOUND", f"models/{model} is not found for API version {version}, or is not supported for {method}."
    )


def not_found(message: str = "Requested entity was not found.") -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def rate_limited(retry_delay: float) -> ApiError:
    delay = f"{retry_delay:g}s"
    return ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. "
        f"Please retry in {retry_delay:.1f}s.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
        ],
    )


def internal() -> ApiError:
    return ApiError(500, "INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting")


def unavailable() -> ApiError:
    return ApiError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
