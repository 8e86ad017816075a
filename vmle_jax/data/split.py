"""Leave-one-out split into padded arrays, built once in numpy.

For each user with items s_1..s_n: the test target is s_n (input s_1..s_{n-1}),
the validation target s_{n-1} (input s_1..s_{n-2}), and training predicts
every s_{t+1} from s_1..s_t for t+1 <= n-2. Sequences are left-padded with 0
to `max_len` (the most recent items kept).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vmle_jax.data.dataset import SequenceDataset


@dataclasses.dataclass(frozen=True, eq=False)
class EvalSplit:
  """Inputs, targets and histories for ranking one held-out item per user."""

  inputs: np.ndarray  # [U, L] int32, left-padded
  targets: np.ndarray  # [U] int32
  history: np.ndarray  # [U, H] int32, the distinct items seen before the target (0-padded)
  input_times: np.ndarray | None = None  # [U, L] int32 seconds since the first interaction
  target_times: np.ndarray | None = None  # [U] int32

  @property
  def num_users(self) -> int:
    return len(self.targets)


@dataclasses.dataclass(frozen=True, eq=False)
class LeaveOneOut:
  """The three splits of a data set for one `max_len`."""

  train: np.ndarray  # [U_train, L + 1] int32: inputs are [:, :-1], targets [:, 1:]
  train_times: np.ndarray | None  # [U_train, L + 1] int32 seconds since the first interaction
  valid: EvalSplit
  test: EvalSplit
  num_items: int
  max_len: int


def _left_pad(rows, width: int, dtype) -> np.ndarray:
  out = np.zeros((len(rows), width), dtype)
  for r, row in enumerate(rows):
    row = row[-width:]
    if len(row):
      out[r, width - len(row) :] = row
  return out


def _histories(rows) -> np.ndarray:
  uniq = [np.unique(r) for r in rows]
  width = max(1, max(len(u) for u in uniq))
  return _left_pad(uniq, width, np.int32)


def leave_one_out(data: SequenceDataset, max_len: int = 50) -> LeaveOneOut:
  """Builds the padded train/valid/test arrays (see the module docstring)."""
  seqs = [data.sequence(u) for u in range(data.num_users)]
  times = [data.times(u) for u in range(data.num_users)] if data.timestamps is not None else None
  if times is not None:
    # Seconds since the data set's first interaction: small enough for int32.
    origin = int(data.timestamps.min())
    times = [(t - origin).astype(np.int64) for t in times]
  train_rows = [s[:-2] for s in seqs if len(s) >= 4]
  train = _left_pad(train_rows, max_len + 1, np.int32)
  train_times = None
  if times is not None:
    train_times = _left_pad(
        [t[:-2] for s, t in zip(seqs, times) if len(s) >= 4], max_len + 1, np.int32
    )

  def split(cut: int) -> EvalSplit:
    inputs = [s[:cut] for s in seqs]
    return EvalSplit(
        inputs=_left_pad(inputs, max_len, np.int32),
        targets=np.array([s[cut] for s in seqs], np.int32),
        history=_histories(inputs),
        input_times=None
        if times is None
        else _left_pad([t[:cut] for t in times], max_len, np.int32),
        target_times=None if times is None else np.array([t[cut] for t in times], np.int32),
    )

  # `cut` is negative: -2 keeps s_1..s_{n-2} as input and s_{n-1} as target.
  return LeaveOneOut(
      train=train,
      train_times=train_times,
      valid=split(-2),
      test=split(-1),
      num_items=data.num_items,
      max_len=max_len,
  )
