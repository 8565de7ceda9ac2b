"""``PageContext``: what every tab of one page shares, built once by ``page.build_page``.

The run store, the job manager, the model cache and whether the server was started offline.  Each tab builder gets
it and binds its buttons to methods of a small actions class holding it (``GenerateActions``, ``EvaluateActions``,
``SharePanel``, ``TrainActions``), so a handler can be called in a test without building a page.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..jobs import JobManager
from ..store import RunStore


class LazyModelCache:
    """A ``generation.ModelCache`` made on first use, so building the page does not import torch."""

    def __init__(self, capacity: int = 4):
        self.capacity, self._cache = capacity, None

    def get(self, spec):
        if self._cache is None:
            from ..generation import ModelCache

            self._cache = ModelCache(self.capacity)
        return self._cache.get(spec)


@dataclass(frozen=True)
class PageContext:
    """One page's shared state: its runs, its training slot, its loaded models, and the offline switch."""

    store: RunStore
    jobs: JobManager
    models: LazyModelCache
    offline: bool = False

    @classmethod
    def create(cls, store: RunStore, offline: bool = False, cache_capacity: int = 4) -> PageContext:
        """A context over ``store`` with a fresh job manager and model cache (what ``build_page`` makes)."""
        return cls(store, JobManager(store.root), LazyModelCache(cache_capacity), offline)
