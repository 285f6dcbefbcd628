"""Why a page could not be fetched, in sentences a person can act on."""

from __future__ import annotations

from backend.errors import AppError


class FetchError(AppError):
    """A URL could not be fetched; `detail` says why and what to do about it."""

    status_code = 422
    code = "fetch_failed"

    def __init__(self, detail: str, *, http_status: int | None = None) -> None:
        super().__init__(detail)
        self.http_status = http_status

    @property
    def reason(self) -> str:
        """The sentence for a person (the same as `detail`)."""
        return self.detail


class AddressRefused(FetchError):
    """The URL points somewhere Parley must never connect to (SSRF protection)."""

    code = "address_refused"


class PageTooLarge(FetchError):
    code = "page_too_large"


class UnsupportedContent(FetchError):
    """The server answered with a content type the caller does not read."""

    code = "unsupported_content"
