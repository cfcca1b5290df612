"""Errors the API answers with. Each carries its HTTP status and a stable ``code``; the message
says what the client should do. app.py turns them into JSON responses."""

from __future__ import annotations

from collections.abc import Sequence

from .models import InvalidTrades, Problem, TradeProblem, Unavailable


class IngestError(Exception):
    status = 500
    code = "InternalError"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> Problem:
        return Problem(code=self.code, detail=self.detail)


class UnauthorizedError(IngestError):
    status = 401
    code = "Unauthorized"

    def __init__(self) -> None:
        super().__init__("send a valid API key in the X-API-Key header")


class RateLimitedError(IngestError):
    status = 429
    code = "RateLimited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"rate limit of this API key exceeded; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


class MalformedBodyError(IngestError):
    """The body is not JSON (or not NDJSON): nothing was read as a trade."""

    status = 400
    code = "MalformedBody"


class PayloadTooLargeError(IngestError):
    """Over MAX_BODY_BYTES or MAX_TRADES_PER_REQUEST: split the request."""

    status = 413
    code = "PayloadTooLarge"

    def __init__(self, detail: str) -> None:
        # The rest of an oversized body is never read, so the connection cannot be reused.
        super().__init__(detail, headers={"Connection": "close"})


class UnsupportedMediaTypeError(IngestError):
    """A content type other than JSON or NDJSON (the message names the two)."""

    status = 415
    code = "UnsupportedMediaType"


class InvalidTradesError(IngestError):
    """One or more trades broke the contract; ``problems`` lists each by index and field, and
    nothing of the request was put (all or nothing)."""

    status = 422
    code = "InvalidTrades"

    def __init__(self, detail: str, problems: Sequence[TradeProblem]) -> None:
        super().__init__(detail)
        self.problems = list(problems)

    def body(self) -> InvalidTrades:
        return InvalidTrades(code=self.code, detail=self.detail, errors=self.problems)


class UnavailableError(IngestError):
    """503: nothing or only part of the request is durable; ``ids`` lists what is."""

    status = 503
    code = "KinesisUnavailable"

    def __init__(
        self,
        detail: str,
        *,
        accepted: Sequence[str],
        not_accepted: Sequence[str],
        retry_after: int,
        code: str | None = None,
    ) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
        self.accepted = list(accepted)
        self.not_accepted = list(not_accepted)
        if code is not None:
            self.code = code

    def body(self) -> Unavailable:
        return Unavailable(
            code=self.code,
            detail=self.detail,
            accepted=len(self.accepted),
            ids=self.accepted,
            not_accepted=self.not_accepted,
        )


class InvalidQueryError(IngestError):
    """A read's query parameters cannot be answered: a bad symbol, range or limit, or a cursor
    that is not one this API gave for the same symbol and range. The message says which."""

    status = 422
    code = "InvalidQuery"


class NoTradesError(IngestError):
    status = 404
    code = "NoTrades"  # the symbol has no trade in the hot store (yet, or past its TTL)


class StoreUnavailableError(IngestError):
    """503: the hot store refused or did not answer a read; nothing is wrong with the request."""

    status = 503
    code = "HotStoreUnavailable"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
