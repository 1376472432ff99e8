"""Downloads give way to creates: a prediction's files wait, briefly, while new ones are due."""

from __future__ import annotations

import anyio


class CreatesFirst:
    """Downloads give way while new predictions are waiting to be created.

    Predictions of a batch finish together, and each one's next create matters more than its
    files, whose links live an hour: a create sent late holds a place idle for the whole next
    prediction. So a download first waits (briefly, never long) until no task is between "my
    place came free" and "my create is on its way".
    """

    def __init__(self, patience: float = 0.25) -> None:
        self._waiting: set[str] = set()
        self._quiet = anyio.Event()
        self._quiet.set()
        self._patience = patience

    def starting(self, key: str) -> None:
        """The prediction of `key` will be created soon."""
        if not self._waiting:
            self._quiet = anyio.Event()
        self._waiting.add(key)

    def sent(self, key: str) -> None:
        """The prediction of `key` is being created (or will not be): nothing to wait for."""
        self._waiting.discard(key)
        if not self._waiting:
            self._quiet.set()

    async def give_way(self) -> None:
        """Wait until no create is pending, or for `patience` seconds at most."""
        if self._waiting:
            with anyio.move_on_after(self._patience):
                await self._quiet.wait()
