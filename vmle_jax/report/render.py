"""Draws a comparison: PNG curves (matplotlib), report.md and a self-contained report.html."""

from __future__ import annotations

import base64
import html
import json
import math
import os
import textwrap
import warnings

import numpy as np

from vmle_jax.report.data import NO_CAP, StudyRun, clock_rules, comparison_table, minutes_cap
from vmle_jax.search.budget import format_minutes

# (key, header, format, key of the spread shown as "± std" or None)
COLUMNS = [
    ("strategy", "strategy", None, None),
    ("seeds", "seeds", "{:d}", None),
    ("trials", "trials", "{:d}", None),
    ("best_valid_ndcg10", "best val NDCG@10", "{:.4f}", "best_valid_ndcg10_std"),
    ("test_ndcg10", "test NDCG@10", "{:.4f}", "test_ndcg10_std"),
    ("test_hr10", "test HR@10", "{:.4f}", None),
    ("trials_to_target", "trials to target", "{:.1f}", "trials_to_target_std"),
    ("reached", "seeds reaching it", "{:d}", None),
    ("batches_to_target", "batches to target", "{:.1f}", None),
    ("lane_epochs_to_target", "lane-epochs to target", "{:.0f}", None),
    ("lane_epochs", "lane-epochs per study", "{:.0f}", None),
    ("minutes_to_target", "minutes to target (seeds reaching it)", "{:.1f}", None),
    ("planner_minutes", "planner minutes per study", "{:.2f}", None),
    ("trials_per_hour", "trials/hour", "{:.1f}", None),
]


def _fmt(value, spec, spread=None):
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "-"
  text = spec.format(value) if spec else str(value)
  if spread is not None and spec:
    text += " ± " + spec.format(spread)
  return text


def _curves(runs: list[StudyRun], axis: str, path: str, title: str, target) -> tuple[float, float]:
  """Best-so-far per strategy (mean and the seeds' range) against trials, wall-clock minutes
  or lane-epochs, written to `path`; returns the x-axis limits."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6.4, 3.8))
  for strategy in sorted({r.strategy for r in runs}):
    rs = [r for r in runs if r.strategy == strategy and r.values]
    if not rs:
      continue
    if axis == "trials":
      n = max(len(r.values) for r in rs)
      grid = np.arange(1, n + 1)
      ys = [np.array([r.best_at_batch_ends()[min(i, len(r.values)) - 1] for i in grid]) for r in rs]
    else:
      ends = {
          r.name: [e / 60 for e in r.ends] if axis == "minutes" else r.lane_epoch_ends() for r in rs
      }
      grid = np.linspace(0, max(max(ends[r.name]) for r in rs), 200)
      ys = []
      for r in rs:
        bsf = r.best_so_far()
        y = np.full(len(grid), np.nan)
        for i, g in enumerate(grid):
          done = [b for b, e in zip(bsf, ends[r.name]) if e <= g]
          y[i] = max(done) if done else np.nan
        ys.append(y)
    ys = np.array(ys, dtype=float)
    ys[np.isinf(ys)] = np.nan
    if axis != "trials":  # from when every seed has a value (a late seed made the mean dip)
      ys[:, np.isnan(ys).any(axis=0)] = np.nan
    with warnings.catch_warnings():  # before a strategy's first trial ends: all NaN
      warnings.simplefilter("ignore", RuntimeWarning)
      mean, low, high = np.nanmean(ys, 0), np.nanmin(ys, 0), np.nanmax(ys, 0)
    steps = "steps-post" if axis == "trials" else "default"
    (line,) = ax.plot(grid, mean, label=f"{strategy} (n={len(rs)})", drawstyle=steps)
    if len(rs) > 1:
      ax.fill_between(
          grid,
          low,
          high,
          alpha=0.2,
          color=line.get_color(),
          step="post" if steps != "default" else None,
      )
  if target is not None:
    ax.axhline(target, color="grey", ls="--", lw=1, label="target")
  # The budget line where the budget was in effect (a 1e9-minute "budget" would flatten the
  # curves into the left edge); the x-axis spans what the studies used.
  budget = {
      "minutes": minutes_cap(runs, max((r.budget_minutes or 0 for r in runs), default=0) or None),
      "lane_epochs": max((r.budget_lane_epochs or 0 for r in runs), default=0),
  }.get(axis)
  if budget:
    ax.axvline(budget, color="black", ls=":", lw=1, label="budget")
  ax.set_xlabel(
      {
          "trials": "trials (results counted at the end of each batch)",
          "minutes": "wall-clock minutes (a trial counts when its result existed)",
          "lane_epochs": "lane-epochs (epochs trained, summed over trials)",
      }[axis]
  )
  ax.set_ylabel("best validation NDCG@10")
  ax.set_title(textwrap.fill(title, 80), fontsize=10)  # long titles were cut at the edge
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  limits = ax.get_xlim()
  plt.close(fig)
  return limits


def verdict(table: dict, agent_prefix: str = "agent") -> list[str]:
  """Plain sentences on where the agent gains over the (seeded) baselines and where not, by
  the budget the comparison ran under: what each had found when a compute budget ran out,
  else trials to the target."""
  if table.get("equal_budget"):
    return _budget_verdict(table["equal_budget"], agent_prefix)
  rows = table["strategies"]
  out = []
  for a, o in _pairs(rows, agent_prefix):
    ra, ro = rows[a], rows[o]
    ta, to = ra["trials_to_target"], ro["trials_to_target"]
    reach = f"{ra['reached']}/{ra['seeds']} vs {ro['reached']}/{ro['seeds']} seeds reached it"
    if ta is None or to is None:
      speed = "no target"
    elif ta < to:
      speed = (
          f"{a} reached the target in fewer trials ({ta:.1f} vs {to:.1f}, "
          f"{ta / to:.0%} of {o}'s; {reach})"
      )
    elif ta > to:
      speed = f"no gain: {o} reached the target in fewer trials ({to:.1f} vs {ta:.1f}; {reach})"
    else:
      speed = f"no gain: both took {ta:.1f} trials ({reach})"
    va, vo = ra["best_valid_ndcg10"], ro["best_valid_ndcg10"]
    quality = (
        ""
        if va is None or vo is None
        else f"; best validation NDCG@10 {va:.4f} vs {vo:.4f}" + (" (no gain)" if va < vo else "")
    )
    out.append(f"{a} vs {o}: {speed}{quality}.")
  return out


def secondary(table: dict, agent_prefix: str = "agent") -> list[str]:
  """Under a compute budget, the measures it does not decide (trials to the target, the best
  over the whole study), as figures beside the verdict, never as a contrary one."""
  if not table.get("equal_budget"):
    return []
  rows = table["strategies"]
  out = []
  for a, o in _pairs(rows, agent_prefix):
    ra, ro = rows[a], rows[o]
    ta, to = ra["trials_to_target"], ro["trials_to_target"]
    va, vo = ra["best_valid_ndcg10"], ro["best_valid_ndcg10"]
    out.append(
        f"{a} vs {o}: trials to the whole-study target "
        + ("-" if ta is None or to is None else f"{ta:.1f} vs {to:.1f}")
        + f" ({ra['reached']}/{ra['seeds']} vs {ro['reached']}/{ro['seeds']} seeds reached it)"
        + ("" if va is None or vo is None else f"; best over the whole study {va:.4f} vs {vo:.4f}")
        + "."
    )
  return out


def _pairs(rows: dict, agent_prefix: str = "agent") -> list[tuple[str, str]]:
  """(agent, baseline) for every agent and every other strategy of a table."""
  agents = [s for s in rows if s.startswith(agent_prefix)]
  return [(a, o) for a in agents for o in rows if not o.startswith(agent_prefix)]


def _at_budget(eq: dict, a: str, o: str) -> dict:
  """Agent `a` against `o` at the budget: seeds where a's best at the budget is at least o's
  (a seed where a found nothing within the budget is no win), means, minutes to the target.
  The equal-budget lines and the verdict both read it, so they cannot disagree."""
  rows = eq["strategies"]
  seeds = sorted(set(rows[a]["per_seed"]) & set(rows[o]["per_seed"]))
  wins = sum(
      1
      for k in seeds
      if rows[a]["per_seed"][k] is not None
      and rows[a]["per_seed"][k] >= (rows[o]["per_seed"][k] or 0.0)
  )
  ba, bo = rows[a]["best_at_budget"], rows[o]["best_at_budget"]
  ma, mo = rows[a]["minutes_to_target"], rows[o]["minutes_to_target"]
  text = (
      f"best at the budget at least {o}'s on {wins}/{len(seeds)} seeds"
      + ("" if ba is None or bo is None else f" ({ba:.4f} vs {bo:.4f} on average)")
      + (
          ""
          if ma is None or mo is None
          else f"; minutes to the target {ma:.1f} vs {mo:.1f}"
          + (" (fewer)" if ma < mo else " (no gain)")
      )
  )
  return {"wins": wins, "seeds": len(seeds), "ba": ba, "bo": bo, "text": text}


def _budget_verdict(eq: dict, agent_prefix: str = "agent") -> list[str]:
  """The verdict at the budget: the agent gains where its best at the budget is at least the
  rival's on most seeds and on average."""
  out = []
  for a, o in _pairs(eq["strategies"], agent_prefix):
    r = _at_budget(eq, a, o)
    if r["ba"] is None or r["bo"] is None:
      word = "no verdict (a strategy found nothing within the budget)"
    elif 2 * r["wins"] > r["seeds"] and r["ba"] >= r["bo"]:
      word = "gain"
    elif 2 * r["wins"] < r["seeds"] and r["ba"] <= r["bo"]:
      word = "no gain"
    else:
      word = "mixed"
    out.append(f"{a} vs {o} at {budget_text(eq)} per study: {word}: {r['text']}.")
  return out


def budget_text(eq: dict) -> str:
  """The shared budget in words; a minutes budget no study came near reads as no cap."""
  parts = []
  if eq["minutes"] and eq.get("minutes_cap", eq["minutes"]) is None:
    parts.append(
        f"no minutes cap (--budget_minutes={format_minutes(eq['minutes'])} is over "
        f"{NO_CAP:g}x the longest study's {eq.get('longest_minutes', 0.0):.1f} minutes)"
    )
  elif eq["minutes"]:
    parts.append(f"{format_minutes(eq['minutes'])} minutes")
  if eq["lane_epochs"]:
    parts.append(f"{eq['lane_epochs']} lane-epochs")
  return " / ".join(parts)


def counting_note(counted: dict[str, int]) -> str:
  """Which rule placed the trials in time, with how many studies each applied to."""
  total = sum(counted.values())
  rules = {
      "own finish": "at its own finish (its lanes ran one after another)",
      "batch end": "at its batch's end (vmapped lanes finish together)",
      "mixed": "batch by batch, by how its lanes ran",
  }
  return (
      "Minutes and lane-epochs count each trial when its result existed: "
      + "; ".join(
          f"{text} in {counted[k]} of {total} studies"
          for k, text in rules.items()
          if counted.get(k)
      )
      + "."
  )


def equal_budget_lines(table: dict) -> list[str]:
  """The equal-compute comparison and table: what each strategy had found when the shared
  budget ran out, seed by seed, and its minutes and lane-epochs to the target."""
  eq = table.get("equal_budget")
  if not eq:
    return []
  rows = eq["strategies"]
  out = [
      f"## At equal compute: {budget_text(eq)} per study",
      "",
      "Target: 98% of the best validation NDCG@10 any study had found within the budget"
      + ("" if eq["target"] is None else f" ({eq['target']:.4f})")
      + ".",
      "",
  ]
  for a, o in _pairs(rows):
    out.append(f"- {a} vs {o}: {_at_budget(eq, a, o)['text']}.")
    to = eq.get("minutes_to_best_of", {}).get(o, {})
    if to.get(a) and to.get(o):

      def seeds_of(s: str) -> str:
        return ", ".join("-" if m is None else f"{m:.1f}" for _, m in sorted(to[s].items()))

      out.append(
          f"  Minutes to {o}'s own best at the budget, seed by seed (- never): "
          f"{a} {seeds_of(a)}; {o} {seeds_of(o)}."
      )
  if eq["target"] is not None:
    out += [
        "",
        "Minutes to the target, seed by seed (- never within the budget): "
        + "; ".join(
            f"{s} "
            + ", ".join(
                "-" if m is None else f"{m:.1f}"
                for _, m in sorted(r["minutes_to_target_per_seed"].items())
            )
            for s, r in rows.items()
        )
        + ".",
    ]
  out += [
      "",
      "| strategy | best val NDCG@10 at the budget | per seed | seeds reaching target | "
      "minutes to target | lane-epochs to target | trials | minutes used | lane-epochs used |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  for s, r in rows.items():
    per_seed = ", ".join(
        f"s{k} " + ("-" if v is None else f"{v:.4f}") for k, v in r["per_seed"].items()
    )
    out.append(
        f"| {s} | {_fmt(r['best_at_budget'], '{:.4f}', r['best_at_budget_std'])} | "
        f"{per_seed} | {r['reached']}/{r['seeds']} | {_fmt(r['minutes_to_target'], '{:.1f}')} | "
        f"{_fmt(r['lane_epochs_to_target'], '{:.0f}')} | {_fmt(r['trials'], '{:.1f}')} | "
        f"{_fmt(r['minutes_used'], '{:.1f}')} | {_fmt(r['lane_epochs_used'], '{:.0f}')} |"
    )
  overran = eq.get("overran") or {}
  if eq.get("minutes") is not None and overran:
    out += [
        "",
        "Batches that ended past the budget (their late results do not count): "
        + "; ".join(f"{s} {n} in {k} studies" for s, (n, k) in overran.items())
        + ".",
    ]
  stops = {k: v for k, v in (eq.get("stops") or {}).items() if v}
  if stops:
    out += ["", "Why each study stopped:", ""]
    out += [f"- {name}: {why}" for name, why in sorted(stops.items())]
  out += [
      "",
      *([counting_note(eq["counted_at"])] if eq.get("counted_at") else []),
      "Minutes and lane-epochs used are counted to the last result within the budget; a "
      "result that came past it does not count. A seed that never reached the target counts "
      "as the budget plus one (minute, lane-epoch), or as what it spent plus one where that "
      "quantity had no budget, so stopping early does not look fast.",
      "",
  ]
  return out


def console_lines(table: dict) -> list[str]:
  """What the console shows: the verdict of the budget the comparison ran under (the report's
  `## Verdict`), then each strategy's figures, the budget's first."""
  eq = table.get("equal_budget")
  out = ["verdict: " + v for v in verdict(table)]
  for strategy, row in table["strategies"].items():
    ttt = row["trials_to_target"]
    trials = (
        f"trials to target {'-' if ttt is None else f'{ttt:.1f}'} "
        f"({row['reached']}/{row['seeds']} seeds; unreached count as budget+1)"
    )
    if eq:
      e = eq["strategies"][strategy]
      mtt = e["minutes_to_target"]
      head = (
          f"best val NDCG@10 at the budget {e['best_at_budget'] or float('nan'):.4f}  "
          f"minutes to target {'-' if mtt is None else f'{mtt:.1f}'} "
          f"({e['reached']}/{e['seeds']} seeds)  secondary: {trials}"
      )
    else:
      head = f"best val NDCG@10 {row['best_valid_ndcg10'] or float('nan'):.4f}  {trials}"
    out.append(
        f"{strategy:18s} {head}  lane-epochs {row['lane_epochs'] or 0:.0f}  test NDCG@10 "
        f"{row['test_ndcg10'] or float('nan'):.4f}"
    )
  return out


def write_report(
    runs: list[StudyRun],
    outdir: str,
    title: str,
    device: str = "",
    target_fraction: float = 0.98,
    notes: list[str] = (),
) -> dict:
  """Writes report.md, report.html, report.json and the two PNGs; returns the table."""
  os.makedirs(outdir, exist_ok=True)
  table = comparison_table(runs, target_fraction)
  target = table["target"]
  _curves(
      runs,
      "trials",
      os.path.join(outdir, "best_vs_trials.png"),
      f"{title}: best-so-far vs trials",
      target,
  )
  _curves(
      runs,
      "minutes",
      os.path.join(outdir, "best_vs_minutes.png"),
      f"{title}: best-so-far vs wall-clock",
      target,
  )
  _curves(
      runs,
      "lane_epochs",
      os.path.join(outdir, "best_vs_lane_epochs.png"),
      f"{title}: best-so-far vs lane-epochs",
      target,
  )
  header = "| " + " | ".join(c[1] for c in COLUMNS) + " |"
  runs_json = [
      {
          "name": r.name,
          "strategy": r.strategy,
          "seed": r.seed,
          "values": r.values,
          "ends": r.ends,
          "batches": r.batches,
          "epochs": r.epochs,
          "budget": r.budget,
      }
      for r in runs
  ]
  lines = [f"# {title}", ""]
  if device:
    lines += [
        f"Device: {device}. Total wall-clock: "
        f"{sum(r.seconds for r in runs) / 60:.1f} min over {len(runs)} studies.",
        "",
    ]
  lines += equal_budget_lines(table)
  if table.get("equal_budget"):
    lines += [
        "## Secondary measures: counted in trials and over the whole study",
        "",
        "Trials to the target and the best over the whole study, whatever minutes they cost: "
        "figures beside the verdict, which is the budget's (above).",
        "",
    ]
  lines += [
      f"Target: {target_fraction:.0%} of the best validation NDCG@10 any strategy found"
      + (f" ({table['best_any']:.4f} -> {target:.4f})." if target is not None else "."),
      "Grid, random and TPE evaluate the space's default configuration first; the agent "
      "starts from its playbook (priors from the data's statistics). Trials are counted at "
      "the end of each batch (where a strategy hears its results). "
      + counting_note(clock_rules(runs))
      + " A seed that never reaches the target counts as the budget plus one (trials, "
      "batches and lane-epochs), so means cover every seed. Values are mean ± standard "
      "deviation over seeds; lane-epochs are the epochs every trial actually trained (pruned "
      "and early-stopped lanes stop costing compute); wall-clock includes planner time.",
      "",
      header,
      "|" + "---|" * len(COLUMNS),
  ]
  for strategy, row in table["strategies"].items():
    cells = [strategy] + [
        _fmt(row[k], spec, row.get(sd) if sd else None) for k, _, spec, sd in COLUMNS[1:]
    ]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "## Verdict", ""] + [f"- {v}" for v in verdict(table)]
  more = secondary(table)
  if more:
    lines += ["", "Secondary measures (not a verdict):", ""] + [f"- {v}" for v in more]
  lines += list(notes)
  lines += [
      "",
      "![best-so-far vs trials](best_vs_trials.png)",
      "",
      "![best-so-far vs wall-clock minutes](best_vs_minutes.png)",
      "",
      "![best-so-far vs lane-epochs](best_vs_lane_epochs.png)",
      "",
  ]
  md = "\n".join(lines)
  with open(os.path.join(outdir, "report.md"), "w") as f:
    f.write(md)
  with open(os.path.join(outdir, "report.json"), "w") as f:
    json.dump({"title": title, "table": table, "runs": runs_json}, f, indent=2)
  with open(os.path.join(outdir, "report.html"), "w") as f:
    f.write(_html(md, outdir))
  return table


def _html(md: str, outdir: str) -> str:
  """A self-contained page: the markdown's table and text, images embedded as data URIs."""
  body = []
  in_table = False
  for line in md.splitlines():
    if line.startswith("|"):
      cells = [c.strip() for c in line.strip("|").split("|")]
      if set("".join(cells)) <= set("-"):
        continue
      tag = "th" if not in_table else "td"
      if not in_table:
        body.append("<table>")
        in_table = True
      body.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
      continue
    if in_table:
      body.append("</table>")
      in_table = False
    if line.startswith("!["):
      alt, src = line[2:].split("](")
      with open(os.path.join(outdir, src.rstrip(")")), "rb") as img:
        data = base64.b64encode(img.read()).decode()
      body.append(f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>')
    elif line.startswith("# "):
      body.append(f"<h1>{html.escape(line[2:])}</h1>")
    elif line.startswith("## "):
      body.append(f"<h2>{html.escape(line[3:])}</h2>")
    elif line.startswith("- "):
      body.append(f"<li>{html.escape(line[2:])}</li>")
    elif line.strip():
      body.append(f"<p>{html.escape(line)}</p>")
  if in_table:
    body.append("</table>")
  style = (
      "body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
      "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px}"
      "img{max-width:100%}"
  )
  return (
      f"<!doctype html><html><head><meta charset='utf-8'><title>vmle-jax report</title>"
      f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
  )


def plot_training_curve(curve: list[dict], path: str, title: str) -> None:
  """Loss and validation NDCG@10 per epoch of one trial (vmle-train's curve.png)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6.4, 3.6))
  epochs = [p["epoch"] for p in curve]
  ax.plot(epochs, [p["loss"] for p in curve], color="C0", label="training loss")
  ax.set_xlabel("epoch")
  ax.set_ylabel("training loss", color="C0")
  evals = [p for p in curve if "NDCG@10" in p]
  if evals:
    ax2 = ax.twinx()
    ax2.plot(
        [p["epoch"] for p in evals],
        [p["NDCG@10"] for p in evals],
        color="C1",
        marker=".",
        label="validation NDCG@10",
    )
    ax2.set_ylabel("validation NDCG@10", color="C1")
  ax.set_title(textwrap.fill(title, 80), fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_study(values: list[float | None], path: str, title: str) -> None:
  """Each trial's validation NDCG@10 and the best so far (vmle-sweep / vmle-tune)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6.4, 3.6))
  xs = np.arange(1, len(values) + 1)
  ys = np.array([np.nan if v is None else v for v in values], float)
  ax.scatter(xs, ys, s=12, color="C0", label="trial")
  best = np.fmax.accumulate(np.where(np.isnan(ys), -np.inf, ys))
  ax.plot(xs, np.where(np.isinf(best), np.nan, best), color="C1", label="best so far")
  ax.set_xlabel("trials run (trial number + 1: numbers start at 0)")
  ax.set_ylabel("validation NDCG@10")
  ax.set_title(textwrap.fill(title, 80), fontsize=10)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
