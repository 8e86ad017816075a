"""The experiments' groups: each data set x backbone, its strategies, seeds, schedule and budget.

bench/experiment.py runs them; bench/transfer.py --budget=minutes runs its
transfer arms under exactly the equal-minutes groups' settings, so that its
agent-alone and TPE arms are the experiment's own studies.
"""

from __future__ import annotations

import dataclasses

# The experiment's design: which registered strategies (search/strategies.py STRATEGIES) each
# group compares.
ALL4 = ("agent", "grid", "random", "tpe")
AGENT_RANDOM_TPE = ("agent", "random", "tpe")
# At equal minutes: the seeded control (TPE started from the playbook's first batch) beside
# them measures what the agent's later batches add over its first; agent-tpe (half of each
# later batch from TPE) is the agent taking what TPE does better, first run where
# tpe-playbook beat the agent (ml-100k/HSTU).
EQUAL_MINUTES_ARMS = ("agent", "agent-tpe", "random", "tpe", "tpe-playbook")


@dataclasses.dataclass(frozen=True)
class Group:
  """One data set x backbone of the experiment and how it is run."""

  dataset: str
  backbone: str
  strategies: tuple
  seeds: tuple
  max_epochs: int
  patience: int
  trials: int = 16
  lanes: int = 4
  minutes: float | None = None  # equal-compute groups: every strategy's minutes
  lane_epochs: int | None = None
  early_stop: str = "median"
  tag: str = ""  # a second group on the same data x backbone (another budget): its name

  @property
  def key(self) -> str:
    return f"{self.dataset}/{self.backbone}" + (f"-{self.tag}" if self.tag else "")


SCALES = {
    "cpu": (
        Group("ml-100k", "sasrec", ALL4, (0, 1, 2, 3, 4), 8, 3),
        Group("ml-100k", "hstu", ALL4, (0, 1, 2), 8, 3),
        Group("toys", "sasrec", AGENT_RANDOM_TPE, (0, 1, 2), 5, 2),
        Group("beauty", "sasrec", AGENT_RANDOM_TPE, (0, 1), 5, 2),
    ),
    "gpu": tuple(
        Group(d, b, ALL4, (0, 1, 2), 100, 10, trials=48, lanes=16)
        for d in ("beauty", "sports", "toys")
        for b in ("sasrec", "hstu")
    ),
}
CAP = 256  # the trial cap of the first equal-compute groups (it never bound); later: none
EQUAL_MINUTES = {
    "cpu": (
        Group("ml-100k", "sasrec", EQUAL_MINUTES_ARMS, (0, 1, 2, 3, 4), 8, 3, CAP, 4, 20.0),
        Group("toys", "sasrec", EQUAL_MINUTES_ARMS, (0, 1, 2), 5, 2, CAP, 4, 45.0),
        # Sports (18k items, 36k users): 40 minutes buy about 16 TPE trials on one core (Toys'
        # TPE trained 47 trials in 45 minutes; a Sports lane-epoch costs 2-3 times a Toys one).
        Group("sports", "sasrec", EQUAL_MINUTES_ARMS, (0, 1, 2), 5, 2, None, 4, 40.0),
        # The same data at about 5 TPE trials: one or two agent batches fit.
        Group("sports", "sasrec", EQUAL_MINUTES_ARMS, (0, 1, 2), 5, 2, None, 4, 12.0, tag="small"),
        Group("ml-100k", "hstu", EQUAL_MINUTES_ARMS, (0, 1, 2), 8, 3, None, 4, 20.0),
    ),
    "gpu": tuple(
        Group(d, b, AGENT_RANDOM_TPE, (0, 1, 2), 100, 10, CAP, 16, 120.0)
        for d in ("beauty", "sports", "toys")
        for b in ("sasrec", "hstu")
    ),
}
