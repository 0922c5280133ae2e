"""Adaptive concurrency: a cap on in-flight requests that halves on 429 and grows back."""

from __future__ import annotations

import asyncio
import time


class AdaptiveLimiter:
    """An async semaphore whose size adapts, additive-increase / multiplicative-decrease.

    A rate limit halves ``limit`` (at most once per ``cooldown`` seconds, so one burst of 429s
    counts once); every ``limit`` successes in a row add one, up to ``max_limit``.
    """

    def __init__(self, max_limit: int = 32, *, min_limit: int = 1, cooldown: float = 1.0) -> None:
        if max_limit < 1:
            raise ValueError("max_limit must be at least 1")
        self.max_limit = max_limit
        self.min_limit = min_limit
        self.limit = max_limit
        self.cooldown = cooldown
        self.active = 0
        self._successes = 0
        self._last_cut = -float("inf")
        self._condition: asyncio.Condition | None = None

    @property
    def _cond(self) -> asyncio.Condition:
        # Created on first use, inside the running event loop.
        if self._condition is None:
            self._condition = asyncio.Condition()
        return self._condition

    async def acquire(self) -> None:
        """Wait for a free slot."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.active < self.limit)
            self.active += 1

    async def release(self, *, rate_limited: bool = False, ok: bool = True) -> None:
        """Give a slot back, saying how the request went."""
        async with self._cond:
            self.active -= 1
            if rate_limited:
                now = time.monotonic()
                if now - self._last_cut >= self.cooldown:
                    self.limit = max(self.min_limit, self.limit // 2)
                    self._last_cut = now
                self._successes = 0
            elif ok:
                self._successes += 1
                if self._successes >= self.limit and self.limit < self.max_limit:
                    self.limit += 1
                    self._successes = 0
            # Wake only as many waiters as there are free slots: waking all of them on every
            # release costs O(waiters) per request.
            self._cond.notify(max(0, self.limit - self.active))
