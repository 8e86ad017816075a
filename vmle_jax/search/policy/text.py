"""Every sentence the offline planner writes: hypotheses, reflections, rules and insights.

The policy decides with typed reasons (`state.Reason`: a code and its facts);
this module phrases them. Changing a sentence here touches no decision and no
test of the policy (tests assert on reason codes and kinds, not on prose).
"""

from __future__ import annotations

from typing import Sequence

# What a proposal is expected to do and risks, by the code of its first reason.
EXPECTED = {
    "playbook": "a strong first configuration: priors from the data's statistics",
    "scout": "within a few percent of the playbook's structure at a fraction of the cost",
    "own_start": "the yardstick the transferred start is judged by",
    "source_best": "what paid on a near data set pays here, moves and all",
    "spread": "capacity bought back at a fraction of the playbook's cost",
    "fits_left": "a result within the budget instead of none",
    "combine": "the gains add up",
    "explore": "higher validation NDCG@10 than the best",
    "width_rate": "the step the parent's rate gives per weight, at the new width",
    "rate_move": "higher validation NDCG@10 than the center",
    "retry_failed": "higher validation NDCG@10 than the center",
    "draw": "covers the rates between the single moves",
    "jump": "find a better basin",
    "random": "keeps the batch's lanes training",
    "tpe": "a region of the space the planner's one-dimension moves would not reach",
}
RISK = {
    "playbook": "a prior may not suit this data; the next batches test them",
    "scout": "too small a model for this data; the playbook's structure beside it says so",
    "own_start": "a lane the transferred start may not need; it costs one structure's bucket",
    "source_best": "another data set's optimum; the playbook's lanes beside it say so",
    "spread": "the cheaper objective or the extra block may not pay; the other structures say so",
    "fits_left": "the cheaper structure ranks below the best; the best stands",
    "combine": "the two changes may not compose",
    "explore": "the playbook's choice was right; the rate variants still refine it",
    "width_rate": "the old rate was right",
    "rate_move": "a worse rate; the other lanes cover the alternatives",
    "retry_failed": "a worse rate; the other lanes cover the alternatives",
    "draw": "a worse rate",
    "jump": "likely worse than the best",
    "random": "likely worse than the best",
    "tpe": "a draw from TPE's model: worse than the best more often than not",
}


def verb(direction: str, dim: str, old, new) -> str:
  """ "raise lr from 0.001 to 0.002", "set loss from 'bce' to 'softmax'"."""
  if direction == "set":
    return f"set {dim} from {old!r} to {new!r}"
  return f"{'raise' if direction == 'up' else 'lower'} {dim} from {old} to {new}"


def _playbook(f: dict) -> str:
  out = "the playbook's configuration for these statistics"
  if f["settled"]:
    out += " (" + ", ".join(f"{d}={v!r}" for d, v in f["settled"]) + ")"
  if f["applied"]:
    out += "; with the memory's rules applied on top: " + "; ".join(
        f"{d}={v!r} ({why})" for d, v, why in f["applied"]
    )
  if f["set_aside"]:
    out += "; set aside: " + "; ".join(f"{rule} ({why})" for rule, why in f["set_aside"])
  return out


def _scout(f: dict) -> str:
  changes = ", ".join(f"{d} {old!r} -> {new!r}" for d, old, new in f["changes"])
  return (
      f"a cheaper structure beside the playbook's under a budget in minutes ({changes}: what "
      f"makes a lane-epoch dear here, first; a window covers the median user's history, p50 "
      f"length {f['p50']:g}); the playbook's costs {f['ratio']:.1f}x its work per lane-epoch, "
      f"so if it ranks near, the minutes left buy {f['ratio']:.1f}x the trials"
  )


def _spread(f: dict) -> str:
  return (
      f"another structure in a first batch the minutes allow few rounds after: the scout with "
      f"{f['dim']} {f['old']!r} -> {f['new']!r}, still {f['ratio']:.1f}x cheaper than the "
      "playbook's per lane-epoch"
  )


def _fits_left(f: dict) -> str:
  changes = ", ".join(f"{d} {old!r} -> {new!r}" for d, old, new in f["changes"])
  return (
      f"the last minutes: a lane of the best's structure is priced at {f['own']:.1f} min with "
      f"{f['left']:.1f} left, so the nearest cheaper structure that fits ({changes}, "
      f"{f['cheap']:.1f} min a lane)"
  )


def few_rounds(f: dict) -> str:
  """Why the first batch spreads its lanes over structures."""
  return (
      f"the minutes buy about {f['rounds']:.1f} batch{'es' if f['rounds'] >= 1.5 else ''} of "
      f"this structure at {f['lane_minutes']:.1f} min a lane ({f['source']} price), fewer than "
      f"{f['few']}: the first batch spreads its lanes over {f['structures']} structures instead "
      "of rate variants of one"
  )


def _combine(f: dict) -> str:
  return (
      f"combine: set {f['dim']} {f['old']!r} -> {f['new']!r} in the best configuration; the "
      f"same change improved trial {f['trial']} over its parent ({f['gain']:+.1%})"
  )


def _explore(f: dict) -> str:
  before = (
      f", {f['prior_confidence']:.2f} before the failed alternatives"
      if f["confidence"] != f["prior_confidence"]
      else ""
  )
  curve = f"; the best trial's curve suggests it ({f['curve']})" if f["curve"] else ""
  return (
      f"{verb(f['direction'], f['dim'], f['old'], f['new'])} from the best (trial "
      f"{f['best']}): the playbook is least sure about {f['dim']} (confidence "
      f"{f['confidence']:.2f}{before}; {f['why']}){curve}"
  )


def _rate_move(f: dict) -> str:
  curve = f" (the best trial's curve: {f['curve']})" if f["curve"] else ""
  return f"{verb(f['direction'], f['dim'], f['old'], f['new'])} on {f['where']}: {f['why']}{curve}"


def _retry_failed(f: dict) -> str:
  return (
      f"{verb(f['direction'], f['dim'], f['old'], f['new'])}: failed before in this study, "
      "tried again on this structure"
  )


MAIN = {
    "playbook": _playbook,
    "own_start": lambda f: (
        f"the playbook's own configuration beside the start the memory's {f['rules']} rule(s) "
        "moved: they were learned on other data, and this lane says within one batch whether "
        "they carry here"
    ),
    "source_best": lambda f: (
        f"the best configuration found on {f['dataset']} (validation NDCG@10 "
        f"{float(f['value'] or 0):.4f} there), the nearest data set in the summary (distance "
        f"{f['distance']}): what paid there may be several moves at once"
        + (f" ({', '.join(f['changed'])} differ from the start above)" if f["changed"] else "")
    ),
    "scout": _scout,
    "spread": _spread,
    "fits_left": _fits_left,
    "combine": _combine,
    "explore": _explore,
    "width_rate": lambda f: f"lr scaled to the new width ({f['lr']:g} x {f['law']})",
    "rate_move": _rate_move,
    "retry_failed": _retry_failed,
    "draw": lambda f: "a draw in the region around the center (rates only)",
    "jump": lambda f: (
        "exploration: the neighbourhood of the best is exhausted, so jump along two dimensions"
    ),
    "random": lambda f: "a random draw from the space: the planners failed on this batch",
    "tpe": lambda f: (
        f"TPE's proposal from this study's {f['trials']} finished trials ({f['changed']} "
        "dimensions away from the best): a lane of every later batch explores as TPE does"
    ),
}


def set_aside(f: dict) -> str:
  """Why no structural move was proposed, in one clause per reason."""
  parts = [f"{move}: the best trial is {label}" for move, label in f["against"].items()]
  if f["unfit"]:
    parts.append(f"{', '.join(f['unfit'][:3])}: its batch would not finish in the minutes left")
  sure, after = f["sure"], f["batches_after"]
  if sure:
    follow = (
        "no batch would follow to build on a change"
        if after <= 0
        else f"only {after} batch{'es' if after != 1 else ''} would follow"
    )
    parts.append(
        f"{', '.join(sure[:4])}"
        + (f" and {len(sure) - 4} more" if len(sure) > 4 else "")
        + f": the playbook is at least {f['threshold']:.0%} sure of each and {follow}"
    )
  return "; ".join(parts)


def moved(changes: Sequence[tuple[str, object]]) -> str:
  """A structural move in a few words: "hidden -> 256, max_len -> 200"."""
  return ", ".join(f"{d} -> {v!r}" for d, v in changes[:2]) or "the structure"


def width_law(power: float, old: int, new: int) -> str:
  """A width law's factor: sqrt(128/256), 128/256."""
  if power == 0.5:
    return f"sqrt({old}/{new})"
  return f"{old}/{new}" if power == 1.0 else f"({old}/{new})**{power:g}"


def hypothesis(reasons: Sequence) -> str:
  """A proposal's hypothesis from its reasons: the first is the main clause, the others
  annotate it (its price, what the minutes left set aside, why the best is refined)."""
  out = MAIN[reasons[0].code](reasons[0].facts)
  for r in reasons[1:]:
    if r.code == "per_cost":
      out += (
          f"; it costs {r.facts['ratio']:.1f}x the best's time per lane-epoch, ranked by gain "
          "per cost"
      )
    elif r.code == "unfit":
      out += (
          f"; set aside: {'; '.join(r.facts['moves'][:3])}: its batch would not finish in the "
          "minutes left"
      )
    elif r.code == "few_rounds":
      out += "; " + few_rounds(r.facts)
    elif r.code == "refine_instead":
      out = (
          f"refine the best: no structural move is worth a batch now ({set_aside(r.facts)}). {out}"
      )
  return out


# ------------------------------------------------------------------ reflections


def change(p: dict) -> str:
  """A proposal note's change in a few words: "dropout 0.2 -> 0.35 (+1 more)"."""
  if not p.get("changed"):
    return "this config"
  if not p.get("dimension"):
    return f"{len(p['changed'])} changes"
  more = "" if p.get("one_change", True) else f" (+{len(p['changed']) - 1} more)"
  return f"{p['dimension']} {p.get('old_value')!r} -> {p.get('new_value')!r}{more}"


def reflection(
    p: dict,
    status: str,
    error: str | None,
    parent: float | None,
    own: float | None,
    value: float | None,
    gain: float | None,
    supported: bool,
    credited_from: int | None,
    curve: str | None,
) -> str:
  """A trial's reflection: its change, the outcome against its parent and its curve. `own`
  is the trial's value, `value` what its move is credited with (its structure's best rate
  variant in the batch, trial `credited_from`; else its own)."""
  if status == "diverged":
    text = f"{change(p)}: diverged ({error or 'non-finite loss'})."
  elif parent is None or value is None:
    shown = own if own is not None else float("nan")
    text = f"{change(p)}: validation NDCG@10 {shown:.4f} (no parent to compare"
    if credited_from is not None and value is not None:
      text += f"; its structure reached {value:.4f} at its best rate, trial {credited_from}"
    text += ")."
  else:
    at_best_rate = f" at its best rate (trial {credited_from})" if credited_from is not None else ""
    verdict = "supports the hypothesis" if supported else "no gain: the hypothesis is not supported"
    text = (
        f"{change(p)}: validation NDCG@10 {parent:.4f} -> {value:.4f}{at_best_rate} "
        f"({gain or 0.0:+.1%}), {verdict}."
    )
  return text + (f" Curve: {curve}." if curve else "")


def set_aside_note(rules: Sequence[str]) -> str:
  """What a reflection adds when its trial contradicts memory rules the study applied."""
  if not rules:
    return ""
  listed = "; ".join(f"'{r}'" for r in rules)
  return f" It contradicts the memory's rule {listed}: set aside from the next batch on."


def rule_sentence(
    move, support: int, contradict: int, dataset: str, backbone: str, start=None
) -> str:
  """A tested rule from its counts: "raising dropout improved 3 of 4 trials on toys (...)"."""
  dim = move.dimension
  what = {"up": f"raising {dim}", "down": f"lowering {dim}", "set": f"setting {dim}={move.value}"}[
      move.direction
  ]
  verdict = "improved" if support >= contradict else "helped in only"
  where = f"; playbook start {dim}={start!r}" if start is not None else ""
  return (
      f"{what} {verdict} {support} of {support + contradict} trials on {dataset} "
      f"({backbone}{where})"
  )


def curve_sentence(
    count: int, numbers: Sequence[int], label: str, epochs: int, dataset: str, dim: str, up: bool
) -> str:
  """A curve insight: "curve: 5 trial(s) (1, 2, ...) under-trained within 8 epochs on ..."."""
  listed = ""
  if numbers:
    shown = ", ".join(str(n) for n in numbers[:8]) + (" ..." if len(numbers) > 8 else "")
    listed = f" ({shown})"
  return (
      f"curve: {count} trial(s){listed} {label} within {epochs} epochs on {dataset}: "
      f"{'raise' if up else 'lower'} {dim}"
  )
