"""The seeded control: TPE whose first batch is the agent's playbook batch (`tpe-playbook`).

A budget-matched study of LLM hyperparameter advisors found that their early
lead was the seeded default configuration, not the advisor: given the same
seed, classical search caught up within a few evaluations. The agent's first
batch is the heuristic planner's playbook (priors read off the data's
statistics and the study's budget), so `tpe-playbook` enqueues exactly that
batch into Optuna's TPE and searches as TPE does from there: the gap between
it and the agent is what the agent's later batches add over the playbook.

The batch is the agent's own (`AgentStrategy.ask` with the heuristic planner,
never a copy of the playbook), computed against the memory as the study's
first batch saw it: no finished trial, the whole budget. A resumed study
therefore proposes the first batch the original run did.
"""

from __future__ import annotations

from vmle_jax.memory.store import Store
from vmle_jax.search.agent import AgentStrategy
from vmle_jax.search.planners import make_planner
from vmle_jax.search.space import SearchSpace
from vmle_jax.search.strategies import Proposal, TPEStrategy

PLAYBOOK_SOURCE = "playbook first batch (enqueued)"
TPE_SOURCE = "tpe"


class _FirstBatchView:
  """The memory as a study's first batch saw it: none of the study's trials has finished, and
  the planner's calls are not logged (the playbook is read for TPE, no agent runs)."""

  def __init__(self, store: Store, study_id: int):
    self._store = store
    self._study_id = study_id

  def finished_trials(self, study_id: int) -> list:
    return [] if study_id == self._study_id else self._store.finished_trials(study_id)

  def log_llm_call(self, *args, **kwargs) -> None:
    del args, kwargs

  def __getattr__(self, name: str):
    return getattr(self._store, name)


def playbook_batch(
    store: Store,
    study: dict,
    data,
    space: SearchSpace,
    n: int,
    recall: str = "study",
    summary: dict | None = None,
) -> list[Proposal]:
  """The agent's first batch of n proposals for `study`: what `AgentStrategy` with the
  heuristic planner proposes when no trial has finished, whatever the store holds now.

  `recall` and `summary` are the agent's (a comparison's agent recalls its own study, with
  the comparison's summary if one is given). Each note is the agent's (kind, hypothesis...)."""
  agent = AgentStrategy(
      make_planner("heuristic"), space, recall=recall, summary=summary, log=lambda s: None
  )
  agent.bind(_FirstBatchView(store, study["id"]), study, data)
  return agent.ask(n, set())


class PlaybookTPEStrategy(TPEStrategy):
  """TPE whose first batch is the agent's playbook batch, enqueued; then TPE as usual.

  The default config is not enqueued: should the playbook give fewer configs than the first
  batch asks for, TPE's own first proposals fill it (the default config, then its random
  startup draws). With `startup_trials` at the lane count, the second batch comes from the
  model of the first. The batch is computed at the first ask, when its size is known (a
  budget may cut it), from the store, study and data `bind` was given.
  """

  name = "tpe-playbook"

  def __init__(
      self,
      space: SearchSpace,
      seed: int = 0,
      startup_trials: int = 8,
      recall: str = "study",
      summary: dict | None = None,
  ):
    super().__init__(space, seed, startup_trials, enqueue_default=False)
    self.recall = recall
    self.summary = summary
    self.bound: tuple | None = None  # (store, study, data) once the study exists
    self.playbook: dict[str, dict] | None = None  # canonical JSON -> the agent's note

  def bind(self, store, study, data) -> None:
    """Keeps what the playbook batch is read from (the study loop calls this before resume)."""
    self.bound = (store, study, data)

  def _seed(self, n: int) -> None:
    """Enqueues the agent's first batch of n (topped up with the default config if short)."""
    if self.bound is None:
      raise RuntimeError(
          "tpe-playbook reads its first batch from the study's data and memory: bind it to "
          "the study before asking (the study loop does)"
      )
    store, study, data = self.bound
    batch = playbook_batch(store, study, data, self.space, n, self.recall, self.summary)
    self.playbook = {p.config.canonical_json(): p.note for p in batch}
    self.enqueue([p.config for p in batch])
    if len(batch) < n:
      self.enqueue([self.space.default_config()])

  def ask(self, n, done):
    if self.playbook is None:
      self._seed(n)
    out = super().ask(n, done)
    for p in out:
      agent = self.playbook.get(p.config.canonical_json())
      p.note = {**p.note, "strategy": self.name, "source": TPE_SOURCE}
      if agent is not None:
        p.note.update(
            source=PLAYBOOK_SOURCE,
            playbook_kind=agent.get("kind"),
            hypothesis=agent.get("hypothesis"),
        )
    return out
