"""What went wrong with an LLM provider, and whether it can work at all before a campaign starts.

Provider errors are classified by LiteLLM's exception classes: an authentication failure, an
unknown model or a refused connection will not mend by waiting, so only rate limits, server
errors (a connection dropped after it opened among them) and timeouts are retried.
``preflight`` checks, before any candidate runs, that the model's credentials are in the
environment and that the endpoint answers one tiny request.
"""

from __future__ import annotations

import os
import socket
from enum import Enum

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price table at import


class ErrorKind(str, Enum):
    AUTH = "auth"
    NOT_FOUND = "not found"
    CONNECTION = "connection"
    RATE_LIMIT = "rate limit"
    SERVER = "server"
    TIMEOUT = "timeout"
    BAD_REQUEST = "bad request"
    OTHER = "other"


TRANSIENT = frozenset({ErrorKind.RATE_LIMIT, ErrorKind.SERVER, ErrorKind.TIMEOUT})
HINTS = {
    ErrorKind.AUTH: "check the API key in the environment",
    ErrorKind.NOT_FOUND: "the provider does not know this model; check --model",
    ErrorKind.CONNECTION: "nothing answers there; start the server or fix --api-base",
    ErrorKind.RATE_LIMIT: "the provider is rate-limiting; try again later",
    ErrorKind.SERVER: "the provider's server failed; try again later",
    ErrorKind.TIMEOUT: "the endpoint did not answer in time",
    ErrorKind.BAD_REQUEST: "the provider refused the request",
    ErrorKind.OTHER: "",
}


class PreflightError(RuntimeError):
    """The LLM proposer cannot work as configured; one line."""


def classify(error: BaseException) -> ErrorKind:
    """The kind of a provider error, by LiteLLM's exception classes (subclasses first)."""
    import litellm

    order = (
        (litellm.Timeout, ErrorKind.TIMEOUT),  # a subclass of APIConnectionError
        (litellm.AuthenticationError, ErrorKind.AUTH),
        (litellm.PermissionDeniedError, ErrorKind.AUTH),
        (litellm.NotFoundError, ErrorKind.NOT_FOUND),
        (litellm.RateLimitError, ErrorKind.RATE_LIMIT),
        (litellm.APIConnectionError, ErrorKind.CONNECTION),
        (litellm.InternalServerError, ErrorKind.SERVER),
        (litellm.ServiceUnavailableError, ErrorKind.SERVER),
        (litellm.BadGatewayError, ErrorKind.SERVER),
        (litellm.BadRequestError, ErrorKind.BAD_REQUEST),
    )
    if _refused(error):  # LiteLLM reports some refused connections as a server error (500)
        return ErrorKind.CONNECTION
    for cls, kind in order:
        if isinstance(error, cls):
            return kind
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and status >= 500:
        return ErrorKind.SERVER
    return ErrorKind.OTHER


def _refused(error: BaseException) -> bool:
    """A connection that never opened, anywhere in the exception's chain (httpx, OS).

    Only a connect that failed: a connection dropped after it opened (a reset, or a kept-alive
    connection the server closed) reaches LiteLLM as the same ``APIConnectionError`` with
    ``httpx.RemoteProtocolError`` or ``ReadError`` under it, and is a server error worth a retry.
    """
    import httpx

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (httpx.ConnectError, ConnectionRefusedError, socket.gaierror)):
            return True
        current = current.__cause__ or current.__context__
    return False


def one_line(error: BaseException) -> str:
    text = str(error).splitlines()[0][:200] if str(error) else ""
    return f"{type(error).__name__}: {text}"


def api_key(api_base: str | None) -> str | None:
    """The key sent to an explicit ``--api-base`` (local servers need some key); None: the provider's own."""
    if not api_base:
        return None
    return os.environ.get("AFR_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or "sk-local-no-key"


def missing_credentials(model: str, api_base: str | None) -> list[str]:
    """Environment variables the model's provider needs and the environment lacks (LiteLLM knows which)."""
    if api_base:
        return []  # an explicit endpoint gets AFR_LLM_API_KEY, OPENAI_API_KEY or a placeholder
    import litellm

    try:
        found = litellm.validate_environment(model=model)
    except Exception:  # a model string LiteLLM cannot place: the tiny request will say more
        return []
    return list(found.get("missing_keys") or [])


def preflight(model: str, api_base: str | None = None, timeout: float = 30.0) -> None:
    """Raise ``PreflightError`` unless the model's credentials are set and its endpoint answers."""
    missing = missing_credentials(model, api_base)
    if missing:
        raise PreflightError(
            f"the LLM proposer cannot start: {model} needs {', '.join(missing)} in the environment "
            "(keys come from the environment only)"
        )
    import litellm

    litellm.suppress_debug_info = True
    kwargs = {
        "model": model,
        "messages": [{"role": "user", "content": "Reply with OK."}],
        "max_tokens": 4,
        "timeout": timeout,
        "max_retries": 0,
    }
    if api_base:
        kwargs.update(api_base=api_base, api_key=api_key(api_base))
    try:
        litellm.completion(**kwargs)
    except Exception as error:  # every provider failure becomes one line
        kind = classify(error)
        where = f" at {api_base}" if api_base else ""
        hint = HINTS[kind]
        raise PreflightError(
            f"the LLM proposer cannot start: {model}{where} failed a test request ({kind.value} error: "
            f"{one_line(error)}){'; ' + hint if hint else ''}"
        ) from None
