"""Multi-host runs: one global mesh over every process's devices, process 0 in charge.

`initialize` wraps `jax.distributed.initialize` (on CPU with gloo
collectives, which is how the tests run two processes on one machine).
Process 0 (the leader) runs the study: it owns the SQLite memory and the
reports and tells the other processes (followers) which bucket to train next
with `broadcast_json`; every process then runs the same jitted programs on
its shard of the lanes.
"""

from __future__ import annotations

import json

import jax
import numpy as np


def initialize(coordinator_address: str, num_processes: int, process_id: int) -> None:
  """Joins the job; must run before any other JAX call of the process."""
  if jax.config.jax_platforms in (None, "", "cpu") or "cpu" in str(jax.config.jax_platforms):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
      coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
  )


def is_leader() -> bool:
  return jax.process_index() == 0


def multi_process() -> bool:
  return jax.process_count() > 1


def broadcast_json(obj=None):
  """The leader's JSON-able `obj` on every process (followers pass None)."""
  from jax.experimental import multihost_utils

  data = json.dumps(obj).encode() if is_leader() else b""
  length = multihost_utils.broadcast_one_to_all(np.array([len(data)], np.int64))
  n = int(np.asarray(length)[0])
  buf = np.frombuffer(data, np.uint8) if is_leader() else np.zeros(n, np.uint8)
  out = multihost_utils.broadcast_one_to_all(buf)
  return json.loads(np.asarray(out).astype(np.uint8).tobytes().decode())
