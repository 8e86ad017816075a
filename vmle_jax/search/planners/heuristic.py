"""The offline planner: a deterministic, memory-driven coordinate search. Not an LLM.

What it does, in order, for each batch (every proposal is one change from the
current best config, except the transfer jump):

0. once per study, when the memory holds transferable rules: all of them at
   once (the configuration the evidence from other data sets points to);
1. applies the rules of the backbone's cognition summary and of earlier
   studies' insights that this study has not tested yet (transfer);
2. continues the move that last improved the best (momentum);
3. tries every dimension not yet covered, in the direction an experienced
   engineer would try first (e.g. more dropout on sparse data);
4. tries the remaining neighbours of the best, with step sizes that shrink
   on a dimension each time two moves along it fail to pay.

Its reflections and rules are computed from the evidence ("raising dropout
improved 3 of 4 trials on beauty"), never invented. It is deterministic: the
same memory and trials give the same proposals, which makes studies resumable
and reproducible.
"""

from __future__ import annotations


import numpy as np

from vmle_jax.memory.summaries import expected_gain
from vmle_jax.search.planners.base import Answer
from vmle_jax.search.space import Choice, Float, Int, LogFloat, SearchSpace, SpaceError

MIN_GAIN = 0.005  # relative validation gain that counts as an improvement

# Dimensions in the order an engineer would try them: the direction to try
# first, and for each direction why it may help and what it risks.
PRIORS = {
    "lr": ("up", {"up": ("a larger step often reaches a better optimum within the epoch budget",
                         "instability or divergence"),
                  "down": ("a smaller step settles into a sharper optimum",
                           "slow convergence within the epoch budget")}),
    "dropout": ("up", {"up": ("more dropout regularises; sparse data overfits quickly",
                              "underfitting and slower convergence"),
                       "down": ("less dropout lets the model fit more signal",
                                "overfitting")}),
    "tie_embeddings": ("set", {}),
    "num_negatives": ("up", {"up": ("more negatives bring the sampled loss closer to the full "
                                    "softmax", "a slower step"),
                             "down": ("fewer negatives make a faster, noisier step",
                                      "a weaker training signal")}),
    "hidden": ("up", {"up": ("a wider model has more capacity for item relations",
                             "overfitting on sparse data and a slower step"),
                      "down": ("a narrower model overfits less on sparse data",
                               "too little capacity")}),
    "weight_decay": ("up", {"up": ("decay shrinks rarely seen item embeddings and curbs "
                                   "overfitting", "underfitting"),
                            "down": ("less decay keeps more of what was learned",
                                     "overfitting")}),
    "attn_dropout": ("up", {"up": ("attention dropout regularises the mixing of past items",
                                   "noisier attention"),
                            "down": ("cleaner attention over the recent items",
                                     "overfitting to item pairs")}),
    "blocks": ("down", {"down": ("short sequences rarely need depth; fewer blocks overfit less",
                                 "less capacity for long-range patterns"),
                        "up": ("more blocks compose longer-range patterns",
                               "overfitting and a slower step")}),
    "loss": ("set", {}),
    "max_len": ("down", {"down": ("most users are short; a shorter window cuts noise and cost",
                                  "losing long histories"),
                         "up": ("a longer window keeps long histories", "more padding noise")}),
    "batch_size": ("down", {"down": ("smaller batches add gradient noise that can regularise",
                                     "slower epochs"),
                            "up": ("larger batches give steadier gradients and faster epochs",
                                   "fewer updates per epoch")}),
    "heads": ("up", {"up": ("more heads attend to several past items at once", "thinner heads"),
                     "down": ("fewer, wider heads", "less diverse attention")}),
    "ffn_mult": ("up", {"up": ("a wider feed-forward layer adds capacity", "overfitting"),
                        "down": ("a narrower feed-forward layer overfits less",
                                 "less capacity")}),
    "temperature": ("down", {"down": ("a lower temperature sharpens the softmax over "
                                      "normalised scores", "over-confident, unstable training"),
                             "up": ("a higher temperature smooths the softmax",
                                    "weaker separation of the positive")}),
    "linear_dim": ("up", {"up": ("wider U and V carry more of each attended item",
                                 "overfitting"),
                          "down": ("narrower U and V overfit less", "less capacity")}),
    "attention_dim": ("up", {"up": ("wider Q and K resolve finer item relations",
                                    "noisier attention"),
                             "down": ("narrower Q and K overfit less", "coarser attention")}),
    "norm": ("set", {}),
    "positions": ("set", {}),
    "l2_norm": ("set", {}),
    "ffn": ("set", {}),
    "beta2": ("set", {}),
}
SET_REASONS = {
    "loss": ("the loss decides how strongly negatives are pushed down",
             "a worse fit if the loss suits the data less"),
    "norm": ("the LayerNorm placement changes optimisation stability", "instability"),
    "tie_embeddings": ("separate output embeddings decouple the input and output roles: a tied "
                       "table scores the items just seen highly, which costs ranking quality "
                       "when nothing is filtered and repeats are rare", "twice the item parameters"),
    "beta2": ("the Adam second-moment horizon changes step sizes on rare items", "noisier steps"),
    "positions": ("another positional scheme may suit how much order matters in this data",
                  "losing a useful positional signal"),
    "l2_norm": ("normalised vectors with a temperature decouple popularity from the score",
                "the temperature then needs tuning"),
    "ffn": ("a gated feed-forward layer (SwiGLU) is often more expressive", "more parameters"),
}


def reason(dim: str, direction: str) -> tuple[str, str]:
  """(why it may help, what it risks) for moving `dim` in `direction`."""
  if direction == "set":
    return SET_REASONS.get(dim, (f"another {dim} may suit this data better",
                                 "a worse fit"))
  notes = PRIORS.get(dim, ("up", {}))[1]
  return notes.get(direction, (f"moving {dim} {direction} may help", "a worse fit"))


def _direction(old, new) -> str:
  if isinstance(old, (bool, str)) or isinstance(new, (bool, str)):
    return "set"
  return "up" if new > old else "down"


def _move_key(dimension: str, direction: str, value=None) -> tuple:
  return (dimension, direction, value if direction == "set" else None)


def trial_move(trial: dict) -> tuple | None:
  """(dimension, direction, value) of a trial's single change, from its proposal."""
  p = trial.get("proposal") or {}
  if not p.get("dimension") or "direction" not in p or p.get("one_change") is False:
    return None  # several changes at once: no single move to credit
  return _move_key(p["dimension"], p["direction"], p.get("new_value"))


def improved(trial: dict) -> bool | None:
  """Whether a trial beat its parent by MIN_GAIN (None when it has no parent)."""
  p = trial.get("proposal") or {}
  parent = p.get("parent_value")
  if parent is None:
    return None
  value = trial.get("value")
  return value is not None and value > parent * (1 + MIN_GAIN)


class HeuristicPlanner:
  """See the module docstring."""

  name = "heuristic"
  is_llm = False

  def describe(self) -> str:
    return ("planner: heuristic (offline, deterministic coordinate search over the memory; "
            "not an LLM)")

  # ---------------------------------------------------------------- proposals
  def propose(self, context: dict, n: int, feedback: list[str]) -> Answer:
    del feedback  # its proposals are valid by construction
    space: SearchSpace = context["search_space"]
    best = context.get("best")
    base = dict(best["config"]) if best else space.default_config().to_dict()
    trials = context.get("trials", [])
    taken = set(context.get("done", ()))
    tested = {trial_move(t) for t in trials if trial_move(t)}
    failures = {}
    for t in trials:
      move = trial_move(t)
      if move and improved(t) is False:
        failures[move[0]] = failures.get(move[0], 0) + 1
    sparse = (context.get("dataset", {}).get("stats", {}).get("density", 1.0) or 1.0) < 1e-3
    out: list[dict] = []

    def add(dim, new_value, source):
      if len(out) >= n or dim not in space.dims:
        return
      old = base.get(dim)
      if new_value == old:
        return
      try:
        cfg = space.validate({**{k: base[k] for k in space.dims}, dim: new_value})
      except SpaceError:
        return
      key = cfg.canonical_json()
      if key in taken:
        return
      taken.add(key)
      direction = _direction(old, new_value)
      why, risk = reason(dim, direction)
      out.append({
          "changes": {dim: new_value},
          "dimension": dim,
          "hypothesis": f"{_verb(direction, dim, old, new_value)}: {why} ({source})",
          "expected_effect": "higher validation NDCG@10 than the current best",
          "risk": risk,
      })

    # 0. Transfer jump, once per study: every transferred rule at once, i.e. the
    #    configuration the evidence from other data sets points to, before the rules
    #    are tested one by one (a single rule rarely carries the whole gain).
    rules = _rules_to_apply(context)
    if rules and not any((t.get("proposal") or {}).get("kind") == "transfer_jump"
                         for t in trials):
      jump = _transfer_jump(space, base, rules)
      key = jump and space.validate({**{k: base[k] for k in space.dims}, **jump}).canonical_json()
      if key and key not in taken:
        taken.add(key)
        out.append({"changes": jump, "dimension": None, "kind": "transfer_jump",
                    "hypothesis": "apply every rule of the cognition summary and earlier insights "
                                  f"at once ({', '.join(sorted(jump))}): the configuration that "
                                  "won elsewhere is the best first guess here",
                    "expected_effect": "a large first gain over the default",
                    "risk": "rules learned on other data may not compose here"})

    # 1. Transfer: summary rules and earlier insights not yet tested here.
    for rule in rules:
      key = rule["key"]
      dim, direction = key.get("dimension"), key.get("direction")
      if dim not in space.dims or _move_key(dim, direction, key.get("value")) in tested:
        continue
      value = key.get("value") if direction == "set" else _step(
          space.dims[dim], base[dim], direction, failures.get(dim, 0) // 2)
      if value is not None:
        add(dim, value, f"memory: {rule['rule']}")

    # 2. Momentum: keep going in the direction that last moved the best.
    if best and best.get("proposal"):
      p = best["proposal"]
      dim, direction = p.get("dimension"), p.get("direction")
      if dim in space.dims and direction in ("up", "down"):
        value = _step(space.dims[dim], base[dim], direction, failures.get(dim, 0) // 2)
        if value is not None:
          add(dim, value, f"trial {best['number']} improved the best by moving {dim} {direction}")

    # 3. Coverage: every dimension not tried yet, first direction from the priors.
    coverage = context.get("coverage", {})
    order = [d for d in PRIORS if d in space.dims] + [d for d in space.dims if d not in PRIORS]
    for dim in order:
      if coverage.get(dim, 0) == 0:
        for direction, value in _neighbours(space.dims[dim], base[dim], 0,
                                            _first_direction(dim, sparse)):
          add(dim, value, f"{dim} is not covered yet")
          if any(p["dimension"] == dim for p in out):
            break

    # 4. The remaining neighbours of the best, steps shrinking with failures.
    for extra in range(3):
      for dim in order:
        shrink = failures.get(dim, 0) // 2 + extra
        for direction, value in _neighbours(space.dims[dim], base[dim], shrink,
                                            _first_direction(dim, sparse)):
          add(dim, value, f"neighbour of the best (step level {shrink})")

    # 5. Nothing left near the best: a seeded two-dimension jump (exploration).
    rng = np.random.default_rng(len(trials))
    tries = 0
    while len(out) < n and tries < 200:
      tries += 1
      dims = rng.choice(list(space.dims), size=min(2, len(space.dims)), replace=False)
      changes = {d: space.dims[d].sample(rng) for d in dims}
      try:
        cfg = space.validate({**{k: base[k] for k in space.dims}, **changes})
      except SpaceError:
        continue
      if cfg.canonical_json() in taken:
        continue
      taken.add(cfg.canonical_json())
      out.append({"changes": {k: _plain(v) for k, v in changes.items()},
                  "dimension": str(dims[0]),
                  "hypothesis": "exploration: the neighbourhood of the best is exhausted, so "
                                "jump along two dimensions",
                  "expected_effect": "find a better basin", "risk": "likely worse than the best"})
    return Answer(content={"proposals": out})

  # ---------------------------------------------------------------- reflection
  def reflect(self, context: dict, batch: list[dict]) -> Answer:
    reflections = []
    for t in batch:
      p = t.get("proposal") or {}
      parent = p.get("parent_value")
      value = t.get("value")
      if t["status"] == "diverged":
        text = f"{_describe_change(p)}: diverged ({t.get('error') or 'non-finite loss'})."
      elif parent is None or value is None:
        text = f"baseline: validation NDCG@10 {value if value is not None else float('nan'):.4f}."
      else:
        rel = (value - parent) / parent if parent else 0.0
        verdict = ("supports the hypothesis" if improved(t)
                   else "no gain: the hypothesis is not supported")
        text = (f"{_describe_change(p)}: validation NDCG@10 {parent:.4f} -> {value:.4f} "
                f"({rel:+.1%}), {verdict}.")
      reflections.append({"trial": t["number"], "text": text})
    return Answer(content={"reflections": reflections,
                           "rules": evidence_rules(context.get("trials", []),
                                                   context.get("dataset", {}).get("name", "?"),
                                                   context.get("backbone", "?"))})


def evidence_rules(trials: list[dict], dataset: str, backbone: str) -> list[dict]:
  """One rule per (dimension, direction) tried in the study, from the counts of gains."""
  groups: dict[tuple, dict] = {}
  for t in trials:
    move, gain = trial_move(t), improved(t)
    if move is None or gain is None:
      continue
    g = groups.setdefault(move, {"support": [], "contradict": []})
    g["support" if gain else "contradict"].append(t["number"])
  rules = []
  for (dim, direction, value), g in groups.items():
    s, c = len(g["support"]), len(g["contradict"])
    what = {"up": f"raising {dim}", "down": f"lowering {dim}",
            "set": f"setting {dim}={value}"}[direction]
    verb = "improved" if s >= c else "helped in only"
    rules.append({"rule": f"{what} {verb} {s} of {s + c} trials on {dataset} ({backbone})",
                  "dimension": dim, "direction": direction, "value": value,
                  "supporting_trials": g["support"], "contradicting_trials": g["contradict"]})
  return rules


def _rules_to_apply(context: dict) -> list[dict]:
  """Summary rules, then other studies' insights: only those with more support than contradiction."""
  rules = []
  summary = context.get("summary") or {}
  for r in summary.get("rules", []):
    if r.get("support", 0) > r.get("contradict", 0):
      rules.append(r)
  for ins in context.get("insights", []):
    if len(ins.get("support", [])) > len(ins.get("contradict", [])) and not ins.get("this_study"):
      rules.append(ins)
  # Summary rules carry their effect size: the move that paid most goes first.
  return sorted(rules, key=lambda r: (-expected_gain(r), -float(r.get("confidence", 0.0))))


def _transfer_jump(space: SearchSpace, base: dict, rules: list[dict]) -> dict:
  """The changes of every applicable rule at once (first rule wins per dimension);
  rules whose change does not validate with the others are left out."""
  changes: dict = {}
  for rule in rules:
    key = rule["key"]
    dim, direction = key.get("dimension"), key.get("direction")
    if dim not in space.dims or dim in changes:
      continue
    value = key.get("value") if direction == "set" else _step(space.dims[dim], base[dim],
                                                              direction, 0)
    if value is None or value == base.get(dim):
      continue
    try:
      space.validate({**{k: base[k] for k in space.dims}, **changes, dim: value})
    except SpaceError:
      continue
    changes[dim] = _plain(value)
  return changes if len(changes) >= 2 else {}


def _first_direction(dim: str, sparse: bool) -> str:
  prior = PRIORS.get(dim, ("up",))[0]
  if dim in ("dropout", "weight_decay", "attn_dropout") and not sparse:
    return "down"
  return prior


def _step(dim, value, direction: str, shrink: int):
  for d, v in _neighbours(dim, value, shrink, direction):
    if d == direction:
      return v
  return None


def _neighbours(dim, value, shrink: int, first: str):
  """[(direction, value)] one step away from `value`, the `first` direction first."""
  out = []
  if isinstance(dim, Choice):
    values = list(dim.values)
    ordered = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if value not in values:
      return []
    if ordered:
      i = values.index(value)
      if i + 1 < len(values):
        out.append(("up", values[i + 1]))
      if i > 0:
        out.append(("down", values[i - 1]))
    else:
      out = [("set", v) for v in values if v != value]
  elif isinstance(dim, Int):
    step = dim.step
    out = [(d, value + s * step) for d, s in (("up", 1), ("down", -1))
           if dim.low <= value + s * step <= dim.high]
  elif isinstance(dim, LogFloat):
    factor = 2.0 ** (1.0 / 2 ** shrink)
    for d, v in (("up", value * factor), ("down", value / factor)):
      v = float(f"{min(max(v, dim.low), dim.high):.4g}")
      if v != value:
        out.append((d, v))
  elif isinstance(dim, Float):
    delta = (dim.high - dim.low) / 8 / 2 ** shrink
    for d, v in (("up", value + delta), ("down", value - delta)):
      v = float(f"{min(max(v, dim.low), dim.high):.4g}")
      if v != value:
        out.append((d, v))
  out.sort(key=lambda dv: dv[0] != first)
  return out


def _verb(direction, dim, old, new) -> str:
  if direction == "set":
    return f"set {dim} from {old!r} to {new!r}"
  return f"{'raise' if direction == 'up' else 'lower'} {dim} from {old} to {new}"


def _describe_change(p: dict) -> str:
  if not p.get("dimension"):
    return "this config"
  return f"{p['dimension']} {p.get('old_value')!r} -> {p.get('new_value')!r}"


def _plain(v):
  return v.item() if isinstance(v, np.generic) else v
