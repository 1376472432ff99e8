"""A run's budget: what the run folder spent, what predictions in flight hold, what fits next.

Before each create (or each prediction picked up in flight) the runner reserves the most that
prediction can cost (`batchrun.cost.Price.ceiling`); a reservation that would take what was spent
plus what is reserved past the budget is refused, and the run creates nothing more. When a
prediction ends, its reservation becomes what it cost. So however many are in flight, what is
spent never passes the budget (as far as the user's prices say what things cost).

    budget = Budget(limit=25.0, spent=index.spent)
    if budget.reserve(work, ceiling): ...      # False: stop creating
    budget.settle(work, cost)                  # when it ended
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batchrun.cost import over


@dataclass
class Budget:
    """The run folder's spending, kept by the run (one event loop: no lock needed)."""

    limit: float | None = None  # USD; None: no budget, only counted
    spent: float = 0.0  # the folder's, every run together
    spent_now: float = 0.0  # this run's part of it
    reserved: float = 0.0
    # When it refused a reservation: what was spent and reserved then, and what was asked.
    refused_at: tuple[float, float, float] | None = None
    _held: dict[int, float] = field(default_factory=dict)

    @property
    def reached(self) -> bool:
        """Whether a create was refused for the budget."""
        return self.refused_at is not None

    def reserve(self, holder: object, ceiling: float) -> bool:
        """Hold `ceiling` USD for `holder`'s prediction; False (nothing held) if it won't fit."""
        if self.limit is not None and over(self.spent + self.reserved + ceiling, self.limit):
            if self.refused_at is None:
                self.refused_at = (self.spent, self.reserved, ceiling)
            return False
        self._held[id(holder)] = ceiling
        self.reserved += ceiling
        return True

    def settle(self, holder: object, cost: float) -> None:
        """`holder`'s prediction ended having cost `cost`: what it held becomes spent."""
        self.release(holder)
        self.spent += cost
        self.spent_now += cost

    def release(self, holder: object) -> None:
        """Let go of what `holder` held (nothing was spent, or it was settled already)."""
        held = self._held.pop(id(holder), 0.0)
        self.reserved = max(0.0, self.reserved - held)
