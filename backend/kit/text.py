"""String types for request bodies: PostgreSQL text cannot hold NUL, so refuse it up front."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value


PlainText = Annotated[str, AfterValidator(_no_nul)]
