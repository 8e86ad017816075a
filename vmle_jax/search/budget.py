"""A study's budget in trials, minutes, lane-epochs or planner tokens, and what is left of it.

Every strategy is held to the same budget by the study loop: it stops at the
trial cap, at the minutes or lane-epochs spent, or (with a compute budget)
before a batch that its own measurements say cannot fit; a last batch that
would overrun is cut to the trials that fit. The estimate of a
batch is the study's measured seconds per lane-epoch times the lane-epochs a
trial has taken so far (pruned and early-stopped lanes included), plus the
planner's seconds per batch; a study with no finished trial yet has no
estimate, and its first batch always runs. Once proposed, a batch is priced
lane by lane (`fit_to_price`: search/cost.py's price times the epochs a trial
is expected to train) and cut to the lanes that finish in the minutes left.
The agent reads the same estimate to know how many batches it has left
(search/agent.py).

Every second of a study's wall-clock is charged: besides each bucket's and
each batch's planner time, the loop records the rest (start-up, bookkeeping,
a bucket a kill left unfinished) as `charges` in the study's settings, which
`spent_seconds` adds. A trial cap of None means no cap (the default under a
compute budget: the minutes bind, not a trial count the user never set).
"""

from __future__ import annotations

import dataclasses

from vmle_jax.memory.records import Trial


@dataclasses.dataclass(frozen=True)
class Budget:
  """The limits of one study: a trial cap, and optionally minutes, lane-epochs, tokens."""

  trials: int | None = 16  # None: no cap (a compute budget binds)
  minutes: float | None = None
  lane_epochs: int | None = None
  tokens: int | None = None  # LLM planners: stop when the study has used this many

  @classmethod
  def from_dict(cls, d: dict | None) -> "Budget":
    """The budget a study stored (keys added since it was made take their defaults)."""
    d = d or {}
    trials = d.get("trials", cls.trials)
    return cls(
        trials=None if trials is None else int(trials),
        minutes=d.get("minutes"),
        lane_epochs=d.get("lane_epochs"),
        tokens=d.get("tokens"),
    )

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @property
  def in_compute(self) -> bool:
    """Whether minutes or lane-epochs bind (the trial count is then only a cap)."""
    return self.minutes is not None or self.lane_epochs is not None

  def describe(self) -> str:
    parts = [] if self.trials is None else [f"{self.trials} trials"]
    if self.minutes is not None:
      parts.append(f"{format_minutes(self.minutes)} min")
    if self.lane_epochs is not None:
      parts.append(f"{self.lane_epochs} lane-epochs")
    if self.tokens is not None:
      parts.append(f"{self.tokens} tokens")
    return " / ".join(parts) or "no limit"

  def trials_left(self, done: int) -> int | None:
    """Trials the cap still allows after `done` (None: no cap)."""
    return None if self.trials is None else max(0, self.trials - done)


def format_minutes(minutes: float) -> str:
  """Minutes as a person writes them: 20, 2.5, 1,000,000,000 (not 1e+09)."""
  return f"{minutes:g}" if minutes < 1e5 else f"{minutes:,.0f}"


def elapsed_seconds(trials: list[Trial]) -> float:
  """Seconds spent training and planning: one bucket_seconds per bucket plus the planner time
  per batch (what `spent_seconds` adds the study's other charges to)."""
  per_bucket = {t.bucket: t.bucket_seconds or 0.0 for t in trials}
  per_batch = {t.batch: t.planner_seconds or 0.0 for t in trials}
  return float(sum(per_bucket.values()) + sum(per_batch.values()))


def charged_seconds(study: dict | None) -> float:
  """The study's wall-clock outside its buckets and planner calls, as the loop recorded it
  (start-up, bookkeeping, a killed run's unfinished bucket)."""
  charges = ((study or {}).get("settings") or {}).get("charges") or []
  return float(sum(c.get("seconds") or 0.0 for c in charges))


def spent_seconds(study: dict | None, trials: list[Trial]) -> float:
  """Every second the study has cost so far: training, planning and its other charges."""
  return elapsed_seconds(trials) + charged_seconds(study)


def lane_epochs(trials: list[Trial]) -> int:
  """Epochs every trial actually trained (pruned and stopped lanes count what they ran)."""
  return int(sum(t.epochs or 0 for t in trials))


@dataclasses.dataclass(frozen=True)
class BatchEstimate:
  """What the study's own measurements say the next batch of `n` trials will cost."""

  seconds: float
  lane_epochs: float
  seconds_per_lane_epoch: float
  epochs_per_trial: float


def estimate_batch(trials: list[Trial], n: int) -> BatchEstimate | None:
  """The next batch's cost from the study's finished trials; None before the first bucket."""
  trained = [t for t in trials if (t.epochs or 0) > 0]
  if not trained:
    return None
  epochs = lane_epochs(trained)
  buckets = {t.bucket: t.bucket_seconds or 0.0 for t in trained}
  per_epoch = sum(buckets.values()) / epochs
  per_trial = epochs / len(trials)
  batches = {t.batch for t in trials}
  planner = sum({t.batch: t.planner_seconds or 0.0 for t in trials}.values()) / max(1, len(batches))
  return BatchEstimate(
      seconds=n * per_trial * per_epoch + planner,
      lane_epochs=n * per_trial,
      seconds_per_lane_epoch=per_epoch,
      epochs_per_trial=per_trial,
  )


def stop_reason(
    budget: Budget,
    trials: list[Trial],
    elapsed: float,
    tokens: int,
    want: int,
    priced: bool = False,
) -> str | None:
  """Why the study proposes no batch of `want` trials now, or None to go on.

  `elapsed` is the study's wall-clock so far (training and planning, summed over
  resumed runs). A compute budget also stops before a batch the estimate says
  would overrun it, so no strategy is credited with minutes it was not given;
  with `priced` lanes (the loop prices each proposal and drops what cannot
  finish: fit_to_price) the minutes are left to that, since a cheap lane may fit
  where the study's mean trial does not.
  """
  if budget.trials is not None and len(trials) >= budget.trials:
    return f"trial budget of {budget.trials} reached"
  if budget.minutes is not None and elapsed >= 60 * budget.minutes:
    return f"time budget of {format_minutes(budget.minutes)} min reached"
  spent_epochs = lane_epochs(trials)
  if budget.lane_epochs is not None and spent_epochs >= budget.lane_epochs:
    return f"lane-epoch budget of {budget.lane_epochs} reached"
  if budget.tokens is not None and tokens >= budget.tokens:
    return f"token budget of {budget.tokens} reached"
  est = estimate_batch(trials, want)
  if est is None:
    return None
  if budget.minutes is not None and not priced and elapsed + est.seconds > 60 * budget.minutes:
    return (
        f"the next batch of {want} would not fit the time budget: about {est.seconds / 60:.1f} "
        f"min ({est.seconds_per_lane_epoch:.1f} s per lane-epoch, measured) with "
        f"{budget.minutes - elapsed / 60:.1f} of {format_minutes(budget.minutes)} min left"
    )
  if budget.lane_epochs is not None and spent_epochs + est.lane_epochs > budget.lane_epochs:
    return (
        f"the next batch of {want} would not fit the lane-epoch budget: about "
        f"{est.lane_epochs:.0f} lane-epochs with {budget.lane_epochs - spent_epochs} of "
        f"{budget.lane_epochs} left"
    )
  return None


def next_batch_size(
    budget: Budget,
    trials: list[Trial],
    elapsed: float,
    tokens: int,
    want: int,
    priced: bool = False,
) -> tuple[int, str | None]:
  """(trials to propose now, why none): all `want`, or under a compute budget the most that
  still fit (the last batch is cut to what is left rather than leaving it unspent; every
  strategy alike), or 0 with the reason the study stops. `priced`: see stop_reason."""
  reason = stop_reason(budget, trials, elapsed, tokens, want, priced)
  if reason is None:
    return want, None
  for k in range(want - 1, 0, -1):
    if stop_reason(budget, trials, elapsed, tokens, k, priced) is None:
      return k, None
  return 0, stop_reason(budget, trials, elapsed, tokens, 1, priced)  # why not even one fits


def trials_left(
    budget: Budget, trials: list[Trial], lanes: int, charged: float = 0.0
) -> int | None:
  """How many more trials the budget is expected to allow: the trial cap, and once compute
  binds what the study's measured cost per trial says still fits (`charged`: the study's
  seconds outside buckets and planner calls); None when nothing bounds it yet (no cap, no
  measurement)."""
  left = budget.trials_left(len(trials))
  if not budget.in_compute:
    return left
  est = estimate_batch(trials, lanes)
  if est is None:
    return left
  fit = [] if left is None else [left]
  if budget.minutes is not None:
    per_trial = est.seconds_per_lane_epoch * est.epochs_per_trial
    spent = elapsed_seconds(trials) + charged
    remaining = 60 * budget.minutes - spent - (est.seconds - lanes * per_trial)
    fit.append(int(max(0.0, remaining) // max(per_trial, 1e-9)))
  if budget.lane_epochs is not None:
    remaining = budget.lane_epochs - lane_epochs(trials)
    fit.append(int(max(0.0, remaining) // max(est.epochs_per_trial, 1e-9)))
  return min(fit) if fit else None


@dataclasses.dataclass(frozen=True)
class PricedBatch:
  """A proposed batch priced lane by lane against the minutes left: the lanes kept (indices
  in proposal order), those dropped, and the kept lanes' expected seconds."""

  kept: list[int]
  dropped: list[int]
  seconds: float
  lane_seconds: list[float]


def fit_to_price(
    lane_seconds: list[float], seconds_left: float, at_least_one: bool = False
) -> PricedBatch:
  """The lanes (in proposal order) whose expected seconds fit in `seconds_left` beside the
  lanes kept before them; a dear lane is skipped, a cheaper one after it may still fit.
  `at_least_one` keeps the cheapest lane when none fits (a study's first batch: a budget
  smaller than one trial still trains one, and the loop says it will overrun)."""
  kept, dropped, total = [], [], 0.0
  for i, s in enumerate(lane_seconds):
    if total + s <= seconds_left:
      kept.append(i)
      total += s
    else:
      dropped.append(i)
  if not kept and at_least_one and lane_seconds:
    cheapest = min(range(len(lane_seconds)), key=lambda i: lane_seconds[i])
    kept, dropped = [cheapest], [i for i in dropped if i != cheapest]
    total = lane_seconds[cheapest]
  return PricedBatch(kept, dropped, total, list(lane_seconds))


def expected_epochs(trials: list[Trial], max_epochs: int) -> float:
  """Epochs a trial of this study is expected to train: the study's mean so far (pruned and
  early-stopped lanes included), else the epoch cap (no measurement yet: the cautious
  figure, as a lane that keeps improving trains to the cap)."""
  est = estimate_batch(trials, 1)
  return est.epochs_per_trial if est is not None else float(max_epochs)
