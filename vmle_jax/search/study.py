"""One study: a strategy proposes, the engine trains buckets of lanes, the store remembers.

`run_study` is the loop shared by `vmle-sweep` (grid, random, TPE) and the
agent: ask the strategy for up to `lanes` proposals, group them by static
signature into buckets, register each bucket's trials in one transaction,
train it, write every lane's outcome in one transaction, tell the strategy.
It stops at the trial cap, at the minutes or lane-epochs spent, or when not
even one more trial fits them by its own measurements; a last batch that would
overrun is cut to what fits (search/budget.py). A killed study resumes: trials
a dead process left `running` are marked `interrupted` (kept, ids never reused)
and proposed again, finished ones are kept, and the strategy replays its
finished batches. Test metrics are computed once, for the study's best config.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import threading
import time
import uuid
from typing import Callable

import jax
import numpy as np

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.data.dataset import SequenceDataset
from vmle_jax.engine import distributed
from vmle_jax.engine.checkpoint import load_params, params_meta, save_params
from vmle_jax.engine.lanes import Engine, format_eta
from vmle_jax.memory.records import Trial, best_trial
from vmle_jax.memory.store import Store, StoreError
from vmle_jax.search.budget import (
    Budget,
    elapsed_seconds,
    expected_epochs,
    fit_to_price,
    format_minutes,
    next_batch_size,
    spent_seconds,
    trials_left,
)
from vmle_jax.search.cost import measured_price, structure
from vmle_jax.search.pruning import make_pruner
from vmle_jax.search.space import SearchSpace
from vmle_jax.search.strategies import Proposal, Strategy
from vmle_jax.training import protocol_note


@dataclasses.dataclass(frozen=True)
class StudySpec:
  """What a study is: its name, data set, backbone, strategy, budget and lanes."""

  name: str
  backbone: str = "sasrec"
  strategy: str = "random"
  budget_trials: int | None = 16  # None: no cap (a compute budget binds)
  budget_minutes: float | None = None
  budget_tokens: int | None = None  # LLM planners: stop when the study has used this many
  budget_lane_epochs: int | None = None
  lanes: int = 8
  seed: int = 0
  dims: tuple[str, ...] | None = None  # searched dimensions (None: the backbone's default space)
  group: str | None = None  # comparison group (vmle-compare): studies reported together
  early_stop: str = "none"  # a key of search/pruning.py RULES

  @property
  def budget(self) -> Budget:
    return Budget(
        trials=self.budget_trials,
        minutes=self.budget_minutes,
        lane_epochs=self.budget_lane_epochs,
        tokens=self.budget_tokens,
    )


def group_buckets(proposals: list[Proposal]) -> list[list[Proposal]]:
  """Proposals grouped by static signature, in order of first appearance."""
  buckets: dict[TrialConfig, list[Proposal]] = {}
  for p in proposals:
    buckets.setdefault(p.config.static_signature(), []).append(p)
  return list(buckets.values())


# What a resumed study may change with --override, and the flags that name each setting.
OVERRIDABLE = ("budget", "schedule", "lanes", "early_stop")
SETTING_FLAGS = {
    "strategy": "--strategy",
    "budget": "--budget_trials/--budget_minutes/--budget_lane_epochs/--budget_tokens",
    "schedule": "--epochs/--patience/... (schedule flags)",
    "lanes": "--lanes",
    "early_stop": "--early_stop",
    "seed": "--seed",
    "space": "--dims and the config flags",
    "base": "the config flags",
    "dataset": "--dataset",
}


def study_settings(spec: StudySpec, space: SearchSpace, schedule: Schedule) -> tuple[dict, dict]:
  """(budget, settings) as a study stores them."""
  settings = {
      "seed": spec.seed,
      "lanes": spec.lanes,
      "schedule": dataclasses.asdict(schedule),
      "space": space.describe(),
      "base": space.base.to_dict(),
      "group": spec.group,
      "early_stop": spec.early_stop,
  }
  return spec.budget.to_dict(), settings


def setting_changes(
    study: dict, spec: StudySpec, budget: dict, settings: dict, dataset_id: int
) -> dict[str, tuple]:
  """{setting: (stored, given)} for every setting a resume would change."""
  changes = {}
  if study["dataset_id"] != dataset_id:
    changes["dataset"] = (f"data set #{study['dataset_id']}", "another data set")
  if study["strategy"] != spec.strategy:
    changes["strategy"] = (study["strategy"], spec.strategy)
  if Budget.from_dict(study["budget"]).to_dict() != budget:  # keys added since: defaults
    changes["budget"] = (study["budget"], budget)
  stored = dict(study["settings"])
  if "schedule" in stored:  # fields added since the study was made keep their defaults
    defaults = dataclasses.asdict(Schedule())
    stored["schedule"] = _comparable({**defaults, **stored["schedule"]})
  given = {**settings, "schedule": _comparable(settings["schedule"])}
  for key in ("schedule", "lanes", "early_stop", "seed", "space", "base"):
    if key in stored and stored[key] != given[key]:
      old, new = stored[key], given[key]
      if isinstance(old, dict) and isinstance(new, dict):
        differ = [k for k in {**old, **new} if old.get(k) != new.get(k)]
        old, new = {k: old.get(k) for k in differ}, {k: new.get(k) for k in differ}
      changes[key] = (old, new)
  return changes


# Schedule fields that change how a bucket runs, never what it computes: free on resume.
EXECUTION_ONLY = ("lane_execution",)


def _comparable(schedule: dict) -> dict:
  return {k: v for k, v in schedule.items() if k not in EXECUTION_ONLY}


def open_study(
    store: Store,
    spec: StudySpec,
    data: SequenceDataset,
    space: SearchSpace,
    schedule: Schedule,
    resume: bool,
    log: Callable[[str], None],
    overrides: tuple[str, ...] = (),
) -> dict:
  """Creates the study, or (with resume) reopens it with the settings it was created with.

  A resume whose flags differ from the stored settings is refused, naming each
  difference, unless `overrides` lists it (budget, schedule, lanes, early_stop;
  recorded in the study). Unfinished trials are handled once this process owns
  the study (see `run_study`).
  """
  dataset_id = store.upsert_dataset(data.fingerprint())
  study = store.study(spec.name)
  budget, settings = study_settings(spec, space, schedule)
  if study is None:
    if resume:
      raise StoreError(
          f"--resume: there is no study {spec.name!r} in {store.path} (see "
          "`vmle-memory studies`); leave out --resume to start it"
      )
    sid = store.create_study(spec.name, dataset_id, spec.backbone, spec.strategy, budget, settings)
    return store.study(sid)
  if not resume:
    raise StoreError(
        f"study {spec.name!r} already exists in {store.path}; pass --resume to "
        "continue it or choose another --study name"
    )
  bad = [o for o in overrides if o not in OVERRIDABLE]
  if bad:
    raise StoreError(
        f"--override: {', '.join(bad)} cannot change on resume (only "
        f"{', '.join(OVERRIDABLE)}); start a new --study instead"
    )
  changes = setting_changes(study, spec, budget, settings, dataset_id)
  refused = {k: v for k, v in changes.items() if k not in overrides}
  if refused:
    lines = "; ".join(
        f"{k} ({SETTING_FLAGS.get(k, k)}): stored {_short(old)}, given " f"{_short(new)}"
        for k, (old, new) in refused.items()
    )
    hint = [k for k in refused if k in OVERRIDABLE]
    raise StoreError(
        f"--resume of study {spec.name!r} would change its settings: {lines}. "
        + (
            f"Pass --override={','.join(hint)} to change them, or give the " "stored values."
            if hint
            else "Give the stored values or start a new " "--study."
        )
    )
  if changes:
    store.update_study_settings(
        study["id"],
        budget if "budget" in changes else None,
        {k: settings[k] for k in changes if k != "budget"},
        {k: {"from": old, "to": new} for k, (old, new) in changes.items()},
    )
    log(f"resuming study {spec.name!r} with new settings: {', '.join(changes)}")
    study = store.study(study["id"])
  return study


def _short(value) -> str:
  text = repr(value)
  return text if len(text) <= 120 else text[:117] + "..."


def bucket_checkpoint_dir(workdir: str | None, schedule: Schedule, configs) -> str | None:
  """Where a bucket's mid-training checkpoint lives (named by its configs), if enabled."""
  if not workdir or not schedule.checkpoint_every:
    return None
  key = hashlib.sha1("|".join(c.canonical_json() for c in configs).encode()).hexdigest()[:16]
  return os.path.join(workdir, "buckets", key)


def follow(engine: Engine) -> dict:
  """A follower process of a multi-host study: trains what the leader broadcasts."""
  while True:
    msg = distributed.broadcast_json(None)
    if msg["op"] == "stop":
      return {}
    configs = [TrialConfig.from_dict(d) for d in msg["configs"]]
    result = engine.train(
        configs, label=msg.get("label", ""), checkpoint_dir=msg.get("checkpoint_dir")
    )
    if msg["op"] == "test":
      engine.evaluate(result, "test")


def run_study(
    spec: StudySpec,
    data: SequenceDataset,
    store: Store | None,
    strategy: Strategy,
    space: SearchSpace,
    schedule: Schedule = Schedule(),
    engine: Engine | None = None,
    resume: bool = False,
    workdir: str | None = None,
    log: Callable[[str], None] = print,
    engine_log: bool = True,
    overrides: tuple[str, ...] = (),
    started: float | None = None,
) -> dict:
  """Runs (or resumes) a study to its budget; returns its summary (also in workdir).

  `started` (a time.perf_counter() value) is when the run began, if before this call (a
  launcher loading data and building its engine): that start-up is charged to the study.

  In a multi-host run every process calls this; process 0 runs the study and
  owns the store (others pass store=None) and the others follow its buckets.
  """
  engine = engine or Engine(data, schedule, log=log if engine_log else None)
  if distributed.multi_process() and not distributed.is_leader():
    return follow(engine)
  try:
    return _lead(
        spec,
        data,
        store,
        strategy,
        space,
        schedule,
        engine,
        resume,
        workdir,
        log,
        tuple(overrides),
        started,
    )
  finally:
    if distributed.multi_process():
      distributed.broadcast_json({"op": "stop"})


def _train(
    engine: Engine, configs, label: str, checkpoint_dir: str | None, op: str = "train", prune=None
):
  """Trains a bucket on every process (the followers are told first).

  A pruning rule runs on the leader only; in a multi-process run it is left
  out, since the followers could not apply the leader's decisions."""
  if distributed.multi_process():
    distributed.broadcast_json(
        {
            "op": op,
            "configs": [c.to_dict() for c in configs],
            "label": label,
            "checkpoint_dir": checkpoint_dir,
        }
    )
    prune = None
  return engine.train(configs, label=label, checkpoint_dir=checkpoint_dir, prune=prune)


def _lead(
    spec, data, store, strategy, space, schedule, engine, resume, workdir, log, overrides, started
) -> dict:
  t_enter = started or time.perf_counter()  # the run's start-up is charged to its minutes
  study = open_study(store, spec, data, space, schedule, resume, log, overrides)
  sid = study["id"]
  with StudyLease(store, sid) as lease:
    if resume:
      _charge_killed_bucket(store, sid, lease.previous, log)
      interrupted = store.interrupt_unfinished(sid)
      kept = len(store.finished_trials(sid))
      log(
          f"resuming study {spec.name!r}: {kept} finished trials kept"
          + (f", {interrupted} interrupted trials marked and re-run" if interrupted else "")
      )
      store.set_study_status(sid, "running")
    if spec.budget_minutes is not None and not store.finished_trials(sid):
      # Under minutes the first batch is priced before it trains: this machine's price from
      # the memory, or a probe of seconds now (charged to the study with its start-up).
      from vmle_jax.search.probe import machine_price

      probed = machine_price(store, schedule.compute_dtype, log=log)
      if probed.probe_seconds:
        store.add_charge(sid, probed.probe_seconds, "price probe of this machine", 1)
        t_enter += probed.probe_seconds  # charged on its own line, not again as start-up
    strategy.bind(store, study, data)
    if resume:
      kept = store.finished_trials(sid)
      batches = finished_batches(kept)
      mismatched = strategy.resume(batches, intended_sizes(batches, spec, recorded_sizes(kept)))
      if mismatched:
        log(
            f"resume: {mismatched} replayed proposals did not match the stored trials; the "
            "strategy continues from the stored results"
        )
    return _loop(spec, data, store, strategy, schedule, engine, workdir, log, sid, lease, t_enter)


def _charge_killed_bucket(store: Store, sid: int, previous: dict | None, log) -> None:
  """Charges the bucket a killed run left `running` (from its start to the dead run's last
  heartbeat, plus its batch's planning) unless that run charged it itself on the way out."""
  running = store.trials(sid, statuses=["running"])
  if not running or previous is None:
    return
  charged = {c.get("bucket") for c in (store.study(sid)["settings"].get("charges") or [])}
  bucket = running[0].bucket
  if bucket in charged:
    return
  started = min(t.created_at or previous["heartbeat"] for t in running)
  seconds = max(0.0, previous["heartbeat"] - started) + (running[0].planner_seconds or 0.0)
  store.add_charge(sid, seconds, f"bucket {bucket}, killed unfinished", running[0].batch)
  log(f"resume: {seconds:.0f} s of the killed run's unfinished bucket are charged to the budget")


def intended_sizes(batches: list[list], spec: StudySpec, recorded=None) -> list[int]:
  """How many trials each batch was asked for: the size recorded with it (a last batch cut
  to what fits a compute budget), else the lanes or what was left of the trial budget."""
  sizes, before = [], 0
  for i, batch in enumerate(batches):
    asked = (recorded or [None] * len(batches))[i]
    if asked is None:
      asked = _cap(spec.lanes, spec, before)
    sizes.append(max(len(batch), asked))
    before += len(batch)
  return sizes


def recorded_sizes(trials: list[Trial]) -> list[int | None]:
  """Per batch (in the order of `finished_batches`), the number of trials it was asked for,
  as the loop recorded it in each proposal (None for studies from before the record)."""
  sizes: dict = {}
  for t in trials:
    key = t.batch if t.batch is not None else ("bucket", t.bucket)
    sizes.setdefault(key, (t.proposal or {}).get("batch_trials"))
  return list(sizes.values())


def finished_batches(trials: list[Trial]) -> list[list[tuple[TrialConfig, float | None]]]:
  """Finished trials grouped by the batch that proposed them, in order (config, value)."""
  batches: dict = {}
  for t in trials:
    key = t.batch if t.batch is not None else ("bucket", t.bucket)
    batches.setdefault(key, []).append((TrialConfig.from_dict(t.config), t.value))
  return list(batches.values())


class StudyLease:
  """This process's ownership of a study: acquired on entry, refreshed by a heartbeat
  thread (its own SQLite connection), released on exit."""

  def __init__(
      self, store: Store, study_id: int, interval_s: float = 20.0, stale_after_s: float = 120.0
  ):
    self.store, self.study_id = store, study_id
    self.owner = uuid.uuid4().hex
    self.interval_s, self.stale_after_s = interval_s, stale_after_s
    self.lost = False
    self._stop = threading.Event()

  def __enter__(self) -> "StudyLease":
    previous = self.store.acquire_lease(self.study_id, self.owner, self.stale_after_s)
    self.previous = previous  # the lease of a run that died holding it (its last heartbeat)
    if previous:
      print(
          f"took over study #{self.study_id} from process {previous['pid']} on "
          f"{previous['host']} (no heartbeat for {time.time() - previous['heartbeat']:.0f} s)"
      )
    self._thread = threading.Thread(target=self._beat, daemon=True)
    self._thread.start()
    return self

  def _beat(self) -> None:
    store = None
    try:
      store = Store(self.store.path)
      while not self._stop.wait(self.interval_s):
        if not store.heartbeat(self.study_id, self.owner):
          self.lost = True
          return
    except StoreError:
      pass  # the main connection reports a broken file on its next write
    finally:
      if store is not None:
        store.close()

  def check(self) -> None:
    """Refuses to go on once another process has taken the study over."""
    if self.lost or not self.store.heartbeat(self.study_id, self.owner):
      self.lost = True
      raise StoreError(
          f"study #{self.study_id} was taken over by another process (this one "
          "stopped heartbeating for too long); stopping without writing more"
      )

  def __exit__(self, *exc) -> None:
    self._stop.set()
    self._thread.join(timeout=5)
    if not self.lost:
      self.store.release_lease(self.study_id, self.owner)


class StudyError(RuntimeError):
  """A study cannot go on (its message is one line for the user)."""


class _Clock:
  """This run's wall-clock against what its trials record: whatever the buckets and planner
  calls do not account for (start-up, bookkeeping) is charged to the study in the store,
  so every second of a run counts against its minutes, on resume and in the report."""

  def __init__(self, store: Store, sid: int, t_enter: float, spent_before: float):
    self.store, self.sid, self.t_enter = store, sid, t_enter
    self.spent_before = spent_before
    self.accounted = 0.0  # bucket and planner seconds this run recorded in its trials
    self.charged = 0.0

  @property
  def elapsed(self) -> float:
    """The study's seconds so far: earlier runs' and this run's."""
    return self.spent_before + time.perf_counter() - self.t_enter

  def account(self, seconds: float) -> None:
    self.accounted += seconds

  def charge_rest(self, before_batch: int | None, what: str, bucket: int | None = None) -> None:
    rest = time.perf_counter() - self.t_enter - self.accounted - self.charged
    if rest > 0.05:
      self.store.add_charge(self.sid, rest, what, before_batch, bucket)
      self.charged += rest


@dataclasses.dataclass(frozen=True)
class _Run:
  """What one run of a study's loop works with; fixed while it runs."""

  spec: StudySpec
  data: SequenceDataset
  store: Store
  strategy: Strategy
  schedule: Schedule
  engine: Engine
  workdir: str | None
  log: Callable[[str], None]
  sid: int
  lease: "StudyLease"
  t_start: float  # for the ETA: when this run's loop began
  before: int  # trials finished before this run


def _loop(spec, data, store, strategy, schedule, engine, workdir, log, sid, lease, t_enter) -> dict:
  """Plan a batch, train its buckets, tell the strategy; until the budget or the strategy stops."""
  finished = store.finished_trials(sid)
  run = _Run(
      spec=spec,
      data=data,
      store=store,
      strategy=strategy,
      schedule=schedule,
      engine=engine,
      workdir=workdir,
      log=log,
      sid=sid,
      lease=lease,
      t_start=time.perf_counter(),
      before=len(finished),
  )
  done = {t.config_key for t in finished}
  clock = _Clock(store, sid, t_enter, spent_seconds(store.study(sid), finished))
  failures = 0
  while True:
    batch_number, proposals, planner_seconds, stop = _plan_batch(run, clock, done)
    if not proposals:
      break
    batch_ids = []
    for bucket in group_buckets(proposals):
      ids, error = _run_bucket(run, clock, bucket, len(proposals), batch_number, planner_seconds)
      batch_ids += ids
      if error is None:
        continue
      failures += 1
      if failures >= 2 and best_trial(store.finished_trials(sid)) is None:
        raise StudyError(
            f"study {spec.name!r}: every bucket so far failed; the last with {error}"
        ) from None
    tr = time.perf_counter()
    strategy.after_batch(batch_ids)
    store.add_planner_seconds(batch_ids, time.perf_counter() - tr)
    clock.account(time.perf_counter() - tr)
  clock.charge_rest(None, "bookkeeping")
  log(f"[{spec.name}] stops: {stop}")
  store.set_stop_reason(sid, stop)
  summary = finish_study(store, spec, data, engine, workdir, log)
  cognition = strategy.finish()
  if cognition:
    summary["cognition_summary_version"] = cognition["version"]
  return summary


def _plan_batch(
    run: _Run, clock: _Clock, done: set[str]
) -> tuple[int, list[Proposal], float, str | None]:
  """The next batch: its number, its proposals (sized and priced to the budget left), the
  planner's seconds, and, when there are no proposals, why the study stops."""
  spec, store = run.spec, run.store
  so_far = store.finished_trials(run.sid)
  batch_number, full = _next_batch(spec, store, run.sid, len(so_far))
  clock.charge_rest(batch_number, "start-up" if clock.accounted == 0 else "bookkeeping")
  # Under minutes every lane is priced (fitted once a batch; None: nothing to price with).
  price = study_price(store, run.sid, run.data, so_far) if spec.budget_minutes is not None else None
  want, stop = next_batch_size(
      spec.budget, so_far, clock.elapsed, run.strategy.tokens_used(), full, price is not None
  )
  if stop:
    return batch_number, [], 0.0, stop
  if want < full:
    run.log(f"[{spec.name}] {want} of {full} trials fit what is left of the budget: a last batch")
  tp = time.perf_counter()
  proposals = run.strategy.propose(want, done)
  planner_seconds = time.perf_counter() - tp
  clock.account(planner_seconds)
  if not proposals:
    return batch_number, [], planner_seconds, "the strategy has nothing left to propose"
  proposals, stop = _cut_by_price(
      spec, run.data, run.schedule, price, run.strategy, so_far, proposals, clock.elapsed, run.log
  )
  if not proposals:
    return batch_number, [], planner_seconds, stop or "no proposed lane fits the budget left"
  return batch_number, proposals, planner_seconds, None


def _run_bucket(
    run: _Run,
    clock: _Clock,
    bucket: list[Proposal],
    batch_trials: int,
    batch_number: int,
    planner_seconds: float,
) -> tuple[list[int], str | None]:
  """Register, train and record one bucket; its trial ids and, if it failed, why.

  A failed bucket (e.g. out of memory) fails its trials, not the study; a stopped run
  charges the bucket's seconds before it goes."""
  spec, store, engine, sid = run.spec, run.store, run.engine, run.sid
  run.lease.check()
  tb = time.perf_counter()
  configs = [p.config for p in bucket]
  ids, number = store.start_bucket(
      sid,
      configs,
      [
          {
              # The loop's own records beside the strategy's notes: the size the batch
              # was asked for (resume) and how its lanes ran (the report counts a lane
              # in series at its own finish, vmapped lanes at their batch's end).
              "proposal": {
                  **(p.note or {}),
                  "batch_trials": batch_trials,
                  "lane_execution": "serial" if engine.in_series else "vmap",
              },
              "batch": batch_number,
              "planner_seconds": planner_seconds,
          }
          for p in bucket
      ],
  )
  prune = make_pruner(
      spec.early_stop,
      store.finished_trials(sid),
      grace_epochs=max(2, run.schedule.max_epochs // 4),
  )
  try:
    result = _train(
        engine,
        configs,
        f"{spec.name} b{number}",
        bucket_checkpoint_dir(run.workdir, run.schedule, configs),
        prune=prune,
    )
  except (KeyboardInterrupt, SystemExit):  # the run is stopped: charge what it spent
    clock.charge_rest(batch_number, f"bucket {number}, stopped unfinished", number)
    raise
  except Exception as e:  # one bad bucket (e.g. out of memory) fails its trials, not the study
    error = f"{type(e).__name__}: {str(e)[:300]}"
    _fail_bucket(store, run.strategy, ids, configs, error, time.perf_counter() - tb)
    clock.account(time.perf_counter() - tb)
    run.log(
        f"[{spec.name}] bucket {number} failed ({error}); its {len(ids)} trials are marked failed"
    )
    return ids, error
  _record_bucket(run, clock, ids, number, batch_number, result, time.perf_counter() - tb)
  return ids, None


def _record_bucket(
    run: _Run, clock: _Clock, ids: list[int], number: int, batch_number: int, result, seconds: float
) -> None:
  """Write a trained bucket's outcomes, tell the strategy, keep the study best's parameters
  (its test metrics then need no retraining), print the progress line."""
  spec, store, engine, sid = run.spec, run.store, run.engine, run.sid
  before = best_trial(store.finished_trials(sid))
  values = _finish_bucket(store, ids, result, seconds)
  clock.account(seconds)
  for lane, value in zip(result.lanes, values):
    run.strategy.tell(lane.config, value)
  scores = [-1.0 if v is None else v for v in values]
  lane_best = int(np.argmax(scores))
  previous = before.value if before is not None else -1.0
  if run.workdir and scores[lane_best] > previous and not distributed.multi_process():
    _save_best(run.workdir, engine, result, lane_best, ids[lane_best])
  finished = store.finished_trials(sid)
  best = best_trial(finished)
  pruned = sum(1 for l in result.lanes if l.status == "pruned")
  run.log(
      f"[{spec.name}] batch {batch_number} bucket {number}: {len(ids)} lanes, "
      f"{sum(l.epochs for l in result.lanes)} lane-epochs"
      + (f" ({pruned} pruned)" if pruned else "")
      + f", best {scores[lane_best]:.4f}; {_progress(spec, len(finished), clock.elapsed)}, "
      + "study best "
      + (f"val NDCG@10 {best.value:.4f} (trial {best.number}), " if best else "none, ")
      + f"{seconds:.0f} s/bucket, ETA "
      + _eta(spec, store, sid, clock.elapsed, run.t_start, run.before)
  )
  if run.workdir:
    export_trials_csv(store, sid, os.path.join(run.workdir, "trials.csv"))


def _progress(spec: StudySpec, n_done: int, elapsed: float) -> str:
  """'12/16 trials', or under minutes '12 trials, 7.5/20 min'."""
  cap = f"{n_done}/{spec.budget_trials} trials" if spec.budget_trials else f"{n_done} trials"
  if spec.budget_minutes is None:
    return cap
  return f"{cap}, {elapsed / 60:.1f}/{format_minutes(spec.budget_minutes)} min"


def _eta(spec: StudySpec, store: Store, sid: int, elapsed: float, t_start: float, before: int):
  """Time left: the minutes left under a time budget, else trials left at this run's pace."""
  if spec.budget_minutes is not None:
    return format_eta(max(0.0, 60 * spec.budget_minutes - elapsed))
  trials = store.finished_trials(sid)
  per_trial = (time.perf_counter() - t_start) / max(1, len(trials) - before)
  left = trials_left(spec.budget, trials, spec.lanes)
  return "?" if left is None else format_eta(per_trial * left)


def _cut_by_price(spec, data, schedule, price, strategy, so_far, proposals, elapsed, log):
  """(the proposals whose priced lanes finish in the minutes left, why none do): under a
  time budget every lane is priced (the study's measured price, else this machine's probed
  one: search/cost.py) at the epochs a trial is expected to train, and lanes that would end
  past the budget are dropped (their strategy forgets them). A study's first batch keeps at
  least its cheapest lane and says when even that will overrun."""
  if spec.budget_minutes is None or price is None:
    return proposals, None
  stats = data.fingerprint()
  epochs = expected_epochs(so_far, schedule.max_epochs)
  compiled = {structure(TrialConfig.from_dict(t.config).to_dict()) for t in so_far}
  lane_seconds = price.lane_seconds(
      [p.config.to_dict() for p in proposals], stats, epochs, compiled=compiled
  )
  left = 60 * spec.budget_minutes - elapsed
  priced = fit_to_price(lane_seconds, left, at_least_one=not so_far)
  if not priced.dropped:
    return proposals, None
  for i in priced.dropped:
    strategy.forget(proposals[i].config)
  kept = [proposals[i] for i in priced.kept]
  if not kept:
    return [], (
        f"no proposed lane fits the {left / 60:.1f} min left (the cheapest about "
        f"{min(lane_seconds) / 60:.1f} min at {epochs:.1f} epochs)"
    )
  if priced.seconds > left:
    log(
        f"[{spec.name}] the budget is smaller than one trial: the cheapest proposed lane is "
        f"priced at {priced.seconds / 60:.1f} min with {left / 60:.1f} min left; it runs "
        "alone and will end past the budget"
    )
  else:
    log(
        f"[{spec.name}] {len(kept)} of {len(proposals)} proposed lanes fit the "
        f"{left / 60:.1f} min left at their price (about {priced.seconds / 60:.1f} min); "
        f"{len(priced.dropped)} dropped"
    )
  return kept, None


def study_price(store: Store, sid: int, data, trials: list[Trial]):
  """The study's price of a lane-epoch: fitted to its own buckets once it has one, before
  that this machine's probed price from the memory (search/probe.py), else None."""
  views = [
      {
          "config": t.config,
          "epochs": t.epochs,
          "bucket": t.bucket,
          "bucket_seconds": t.bucket_seconds,
      }
      for t in trials
  ]
  from vmle_jax.search.probe import cached_price

  schedule = store.study(sid)["settings"].get("schedule") or {}
  probed = cached_price(store, schedule.get("compute_dtype", "float32"))
  return measured_price(views, data.fingerprint(), prior=probed) or probed


def _cap(n: int, spec: StudySpec, done: int) -> int:
  """`n`, or fewer where the trial cap leaves fewer after `done` trials."""
  return n if spec.budget_trials is None else min(n, spec.budget_trials - done)


def _next_batch(spec, store, sid: int, n_done: int) -> tuple[int, int]:
  """(batch number, trials wanted): a batch a kill cut short is completed first, under its
  own number, so the resumed study's batches are the uninterrupted study's batches."""
  finished = store.finished_trials(sid)
  batch_number = 1 + max((t.batch or 0 for t in store.trials(sid)), default=0)
  want = _cap(spec.lanes, spec, n_done)
  if finished and finished[-1].batch is not None:
    last = finished[-1].batch
    in_last = sum(1 for t in finished if t.batch == last)
    intended = (recorded_sizes([t for t in finished if t.batch == last]) or [None])[0]
    if intended is None:  # a study from before batch sizes were recorded
      intended = _cap(spec.lanes, spec, n_done - in_last)
    if in_last < intended:  # lanes or the trial cap lowered on resume still hold
      batch_number, want = last, _cap(min(intended - in_last, spec.lanes), spec, n_done)
  return batch_number, want


def _fail_bucket(store, strategy, ids: list[int], configs, error: str, seconds: float) -> None:
  """Marks a bucket that raised as failed trials and tells the strategy they scored none."""
  row = {"status": "failed", "error": error, "epochs": 0, "seconds": 0.0, "bucket_seconds": seconds}
  store.finish_bucket([(tid, dict(row)) for tid in ids])
  for cfg in configs:
    strategy.tell(cfg, None)


def _finish_bucket(store, ids: list[int], result, seconds: float) -> list[float | None]:
  """Writes a trained bucket's rows; returns each trial's value by the memory's own rule.

  A trial's `seconds` are its lane's own when the lanes ran one after another, else an even
  share of the bucket's (vmapped lanes end together)."""
  own = result.lane_seconds or [seconds / len(ids)] * len(ids)
  updates = [
      (
          tid,
          {
              "status": lane.status,
              "valid": lane.valid or None,
              "epochs": lane.epochs,
              "best_epoch": lane.best_epoch,
              "steps": lane.epochs * result.steps_per_epoch,
              "seconds": lane_seconds,
              "bucket_seconds": seconds,
              "curve": lane.curve,
              "error": lane.error,
          },
      )
      for tid, lane, lane_seconds in zip(ids, result.lanes, own)
  ]
  store.finish_bucket(updates)
  stored = {t.id: t for t in store.trials_by_id(ids)}
  return [stored[tid].value for tid in ids]


def _save_best(workdir: str, engine: Engine, result, lane: int, trial_id: int) -> None:
  params = engine.lane_params(result, lane)
  save_params(
      os.path.join(workdir, "best_params"),
      params,
      {"trial_id": trial_id, "config": result.lanes[lane].config.to_dict()},
  )


def finish_study(
    store: Store,
    spec: StudySpec,
    data: SequenceDataset,
    engine: Engine,
    workdir: str | None,
    log: Callable[[str], None],
) -> dict:
  """Evaluates the best config on the test split (once) and writes the summary."""
  study = store.study(spec.name)
  trials = store.finished_trials(study["id"])
  best = best_trial(trials)
  summary = {
      "study": spec.name,
      "strategy": spec.strategy,
      "dataset": data.name,
      "trials": len(trials),
      "seconds": round(elapsed_seconds(trials), 1),
      "protocol": protocol_note(engine.schedule, data.num_items),
  }
  if best is not None:
    cfg = TrialConfig.from_dict(best.config)
    test = best.test
    if test is None:
      test = _test_metrics(engine, cfg, best.id, workdir, log)
      store.update_trial(best.id, test=test)
    summary.update(
        {
            "best_trial": best.number,
            "best_config": best.config,
            "best_valid": best.valid,
            "best_test": test,
        }
    )
    log(
        f"[{spec.name}] best trial {best.number}: val NDCG@10 {best.value:.4f}, "
        f"test NDCG@10 {test['NDCG@10']:.4f} HR@10 {test['HR@10']:.4f}"
    )
  n_done = len(trials)
  capped = spec.budget_trials is not None and n_done >= spec.budget_trials
  status = "finished" if capped or spec.budget.in_compute else "interrupted"
  stop = study["settings"].get("stop_reason")
  if stop:
    summary["stop_reason"] = stop
  store.set_study_status(study["id"], status)
  if workdir:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=2, sort_keys=True)
    export_trials_csv(store, study["id"], os.path.join(workdir, "trials.csv"))
    from vmle_jax.report.render import plot_study

    plot_study(
        [t.value for t in trials],
        os.path.join(workdir, "trials.png"),
        f"{spec.name}: {spec.strategy} on {data.name}",
    )
  return summary


def _test_metrics(
    engine: Engine, cfg: TrialConfig, trial_id: int, workdir: str | None, log
) -> dict:
  """Test metrics of the best trial: from its saved parameters, else by retraining it alone."""
  path = os.path.join(workdir, "best_params") if workdir else None
  meta = params_meta(path) if path else None
  if meta and meta.get("trial_id") == trial_id and not distributed.multi_process():
    params = load_params(path)
    stacked = jax.tree.map(lambda x: np.asarray(x)[None], params)
    stacked = engine.shard_lanes(
        jax.tree.map(lambda x: np.concatenate([x] * engine.padded_lanes(1)), stacked)
    )
    ranks = engine.lane_ranks(cfg.static_signature(), stacked, "test")
    from vmle_jax.eval.ranking import metrics_from_ranks

    return metrics_from_ranks(ranks[0])
  log("retraining the best config alone for its test metrics (no saved parameters)")
  result = _train(engine, [cfg], "best", None, op="test")
  return engine.evaluate(result, "test")[0]


def export_trials_csv(store: Store, study_id: int, path: str) -> None:
  """One row per trial: batch, status, epochs, seconds, metrics, curve, hypothesis, config."""
  trials = store.trials(study_id)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(
        [
            "number",
            "batch",
            "bucket",
            "status",
            "epochs",
            "best_epoch",
            "seconds",
            "planner_seconds",
            "valid_NDCG@10",
            "valid_HR@10",
            "test_NDCG@10",
            "curve",
            "hypothesis",
            "config",
        ]
    )
    for t in trials:
      v, te = t.valid or {}, t.test or {}
      curve = " ".join(f"{p['NDCG@10']:.4f}" for p in t.curve or [] if "NDCG@10" in p)
      w.writerow(
          [
              t.number,
              t.batch,
              t.bucket,
              t.status,
              t.epochs,
              t.best_epoch,
              round(t.seconds or 0, 2),
              round(t.planner_seconds or 0, 3),
              v.get("NDCG@10"),
              v.get("HR@10"),
              te.get("NDCG@10"),
              curve,
              (t.proposal or {}).get("hypothesis", ""),
              json.dumps(t.config, sort_keys=True),
          ]
      )
