"""The gateway's collaborators, built once per process and handed to resources through their constructors."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import Settings
from gateway.metrics import Metrics
from gateway.security.digests import SecretDigester
from gateway.security.passwords import PasswordHasher
from gateway.storage.engine import make_engine, make_session_factory

__all__ = ["Services"]


@dataclasses.dataclass(frozen=True, slots=True)
class Services:
    """Long-lived objects shared by the web app, the CLI and the workers."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    passwords: PasswordHasher
    digester: SecretDigester
    metrics: Metrics = dataclasses.field(default_factory=Metrics)

    @classmethod
    def build(cls, settings: Settings, *, engine: Engine | None = None) -> Services:
        """Create the collaborators for ``settings``; tests pass their own ``engine``."""
        engine = engine or make_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            statement_timeout_ms=settings.statement_timeout_ms,
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_session_factory(engine),
            passwords=PasswordHasher(
                time_cost=settings.password_time_cost, memory_cost_kib=settings.password_memory_cost_kib
            ),
            digester=SecretDigester(settings.secret_key, previous_keys=settings.previous_secret_keys),
        )
