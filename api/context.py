"""What every route needs: settings, the engine, Optuna's storage (built on first use)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from optuna.storages import BaseStorage
from sqlalchemy.engine import Engine

from storage.engine import make_engine
from storage.optuna_storage import make_optuna_storage
from studyd.settings import Settings

# Importances are recomputed only when a study's complete-trial count changes.
IMPORTANCE_CACHE_SIZE = 64


@dataclass
class AppContext:
    """Per-app state, held on `app.state.context` (no module-level globals)."""

    settings: Settings
    engine: Engine
    _optuna_storage: BaseStorage | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _importances: OrderedDict[tuple[int, int], Any] = field(default_factory=OrderedDict)

    @classmethod
    def from_settings(cls, settings: Settings) -> AppContext:
        return cls(settings=settings, engine=make_engine(settings.database_url))

    def optuna_storage(self) -> BaseStorage:
        """Optuna's storage on the same database, built lazily: the API starts with it down."""
        with self._lock:
            if self._optuna_storage is None:
                self._optuna_storage = make_optuna_storage(self.settings.database_url)
            return self._optuna_storage

    def cached_importances(self, key: tuple[int, int]) -> Any:
        with self._lock:
            return self._importances.get(key)

    def cache_importances(self, key: tuple[int, int], value: Any) -> None:
        with self._lock:
            self._importances[key] = value
            while len(self._importances) > IMPORTANCE_CACHE_SIZE:
                self._importances.popitem(last=False)

    def close(self) -> None:
        self.engine.dispose()
        storage = self._optuna_storage
        if storage is not None and hasattr(storage, "engine"):
            storage.engine.dispose()


def context(request: Request) -> AppContext:
    """FastAPI dependency: the app's context."""
    return request.app.state.context
