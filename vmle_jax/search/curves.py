"""Reading a trial's learning curve as an engineer would.

`diagnose(trial, max_epochs)` looks at the per-epoch validation NDCG@10 and
training loss and names what happened, with the move it suggests:

- under-trained: still rising at the last epoch of the cap -> a higher learning rate
  (or more epochs);
- over-fitting: an early peak, then a clear decline -> more dropout or decay, a
  lower rate or a narrower model;
- flat: neither the loss nor the metric moved -> the rate is far off (usually too low);
- diverged: a non-finite loss -> a lower rate;
- pruned: stopped behind the study's finished trials (nothing to learn from the shape);
- converged: a plateau reached within the cap.

Each diagnosis also names the moves it argues against (`Diagnosis.against`):
an under-trained curve argues against a deeper stack or a larger batch,
which climb slower within the same cap.
"""

from __future__ import annotations

import dataclasses

LABELS = ("under-trained", "over-fitting", "flat", "diverged", "pruned", "converged")

# Dimension moves each diagnosis suggests, most direct first.
SUGGESTS = {
    "under-trained": (("lr", "up"), ("dropout", "down")),
    "over-fitting": (("dropout", "up"), ("weight_decay", "up"), ("lr", "down"), ("hidden", "down")),
    "flat": (("lr", "up"),),
    "diverged": (("lr", "down"),),
    "pruned": (),
    "converged": (),
}
# Moves each diagnosis argues against: they would make the same problem worse
# (a deeper stack or a larger batch climbs slower per epoch; more capacity over-fits).
AGAINST = {
    "under-trained": (("lr", "down"), ("dropout", "up"), ("blocks", "up"), ("batch_size", "up")),
    "over-fitting": (("dropout", "down"), ("lr", "up"), ("hidden", "up"), ("blocks", "up")),
    "flat": (("lr", "down"),),
    "diverged": (("lr", "up"),),
    "pruned": (),
    "converged": (),
}


@dataclasses.dataclass(frozen=True)
class Diagnosis:
  label: str
  text: str
  suggests: tuple  # ((dimension, direction), ...)

  @property
  def against(self) -> tuple:
    """The (dimension, direction) moves this curve argues against."""
    return AGAINST[self.label]


def diagnose(trial: dict, max_epochs: int) -> Diagnosis | None:
  """The curve's shape for a finished trial (None when it has no validation points)."""
  status = trial.get("status")
  if status == "diverged":
    return Diagnosis(
        "diverged", "diverged (non-finite loss): the step is too large", SUGGESTS["diverged"]
    )
  curve = [p for p in trial.get("curve") or [] if "NDCG@10" in p]
  if not curve:
    return None
  values = [float(p["NDCG@10"]) for p in curve]
  epochs = [int(p["epoch"]) for p in curve]
  peak_i = max(range(len(values)), key=values.__getitem__)
  peak, last = values[peak_i], values[-1]
  losses = [float(p["loss"]) for p in trial.get("curve") or [] if p.get("loss") is not None]
  if status == "pruned":
    return Diagnosis(
        "pruned",
        f"pruned at epoch {epochs[-1]} at {peak:.4f}, behind the " "study's finished trials",
        SUGGESTS["pruned"],
    )
  loss_drop = (losses[0] - min(losses)) / abs(losses[0]) if len(losses) > 1 and losses[0] else 1
  if len(values) >= 3 and peak <= values[0] * 1.05 and loss_drop < 0.02:
    return Diagnosis(
        "flat",
        f"flat: validation NDCG@10 {values[0]:.4f} -> {peak:.4f} and the "
        f"loss fell {loss_drop:.1%} over {epochs[-1]} epochs: the rate is far off",
        SUGGESTS["flat"],
    )
  at_cap = epochs[-1] >= max_epochs
  earlier = values[max(0, len(values) - 3)]  # two evaluations back
  rising = last >= 0.995 * peak and last - earlier > 0.01 * peak  # still climbing at the end
  if at_cap and rising:
    return Diagnosis(
        "under-trained",
        f"still rising at the {max_epochs}-epoch cap "
        f"({earlier:.4f} -> {last:.4f}): under-trained",
        SUGGESTS["under-trained"],
    )
  if peak_i < len(values) - 1 and last < 0.97 * peak and epochs[peak_i] <= 0.7 * epochs[-1]:
    return Diagnosis(
        "over-fitting",
        f"peaked at epoch {epochs[peak_i]} ({peak:.4f}) and fell "
        f"to {last:.4f} by epoch {epochs[-1]}: over-fitting",
        SUGGESTS["over-fitting"],
    )
  return Diagnosis(
      "converged", f"plateau at {peak:.4f} from epoch {epochs[peak_i]}", SUGGESTS["converged"]
  )
