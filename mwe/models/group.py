"""The cached models of one run (a rollout, a red-teaming run): one :class:`LM` per distinct
model string, so a model playing several roles is loaded and rate-limited once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from mwe.checkpoints import checkpoint
from mwe.models.cache import CallStore
from mwe.models.lm import LM
from mwe.models.registry import get_backend


class ModelGroup:
    """The models of one run, by model string. Every new (paid) call of any of them passes
    the checkpoint ``stage`` with the run's count of calls so far, after the queued cache
    entries are written (where the crash tests kill a run)."""

    def __init__(
        self,
        specs: Iterable[str],
        calls: CallStore,
        *,
        stage: str,
        run_id: int | None,
        max_concurrency: int,
        base_url: str | None = None,
    ) -> None:
        extra = {"base_url": base_url} if base_url else {}
        self.stage, self.calls = stage, 0
        self.lms: dict[str, LM] = {}
        for spec in dict.fromkeys(specs):
            lm = LM(
                get_backend(spec, **extra), calls, max_concurrency=max_concurrency, run_id=run_id
            )
            lm.after_call = self._after_call
            self.lms[spec] = lm

    def set_run(self, run_id: int) -> None:
        """Book every call from now on to run ``run_id``."""
        for lm in self:
            lm.run_id = run_id

    def __getitem__(self, spec: str) -> LM:
        return self.lms[spec]

    def __iter__(self) -> Iterator[LM]:
        return iter(self.lms.values())

    def _after_call(self) -> None:
        self.calls += 1
        checkpoint(self.stage, self.calls, self.flush)

    def flush(self) -> None:
        """Write every queued cache entry."""
        for lm in self:
            lm.cache.flush()

    async def aflush(self) -> None:
        """Write every queued cache entry, off the event loop."""
        await asyncio.gather(*(lm.cache.aflush() for lm in self))

    async def aclose(self) -> None:
        """Write what is queued and close the models' clients."""
        for lm in self:
            await lm.aclose()
