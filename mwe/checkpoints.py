"""Checkpoints: named points in long work where installed hooks run.

Nothing is installed in normal use. The tests install a hook that kills the process at a chosen
point (after the 7th generator call, at the end of dedupe, after the 5th stored score batch), to
show that a rerun loses nothing that was paid for and pays for nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable

#: A hook gets the checkpoint's name and, inside a stage, how many calls or batches it has done
#: (``None`` at the end of the stage).
Hook = Callable[[str, int | None], None]

_hooks: list[Hook] = []


def add_hook(hook: Hook) -> Callable[[], None]:
    """Run ``hook`` at every checkpoint from now on; returns a function that removes it."""
    _hooks.append(hook)
    return lambda: _hooks.remove(hook)


def checkpoint(
    name: str, count: int | None = None, settle: Callable[[], None] | None = None
) -> None:
    """Pass checkpoint ``name``. When a hook is installed, ``settle`` first writes whatever is
    still buffered (the call cache), so that the hook sees the work as a crash would leave it."""
    if not _hooks:
        return
    if settle is not None:
        settle()
    for hook in _hooks:
        hook(name, count)
