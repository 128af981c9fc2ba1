"""Token buckets of the ESPI per-client rate limit, shared by every worker process and node (RFC 6585 §4).

One row per OAuth client: the tokens left and when they were last refilled (epoch seconds). Workers do not write
this row on every request: :mod:`gateway.web.rate_limit` takes tokens from it in batches and spends them locally.
"""

from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.storage.base import Base

__all__ = ["RateLimitBucket"]


class RateLimitBucket(Base):
    """The shared token bucket of one client (``key`` is the client id)."""

    __tablename__ = "rate_limit_bucket"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[float] = mapped_column(Float)
    """Epoch seconds of the last refill (the clock of the node that took tokens last)."""
