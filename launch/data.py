"""vmle-data: prepare a data set once (compact .npz with its fingerprint), print its stats.

  vmle-data prepare --input=ratings_Beauty.csv --format=amazon2014 --kcore=5 --out=beauty.npz
  vmle-data prepare --input=Beauty_5.json.gz --format=amazon2018 --out=beauty18.npz
  vmle-data prepare --input=movielens/1m-ratings --format=tfds --out=ml1m.npz
  vmle-data stats --input=beauty.npz          # or any loadable data set

Every launcher accepts the prepared file: --dataset=beauty.npz.
"""

from __future__ import annotations

import json

from absl import flags

from vmle_jax.data import FORMATS
from vmle_jax.launch import common

flags.DEFINE_string("input", None, "Data set to read (a path, a benchmark name, a tfds builder).")
flags.DEFINE_string("data_dir", None, "Where benchmark names are looked up.")
flags.DEFINE_enum(
    "format",
    "auto",
    list(FORMATS),
    "Input format; auto picks by extension (JSON lines need an explicit format).",
)
flags.DEFINE_integer("kcore", None, "k-core filter (default 5 for logs and raw dumps).")
flags.DEFINE_string("out", None, "Output .npz for `prepare`.")
flags.DEFINE_boolean("json", False, "`stats`: print JSON instead of text.")
FLAGS = flags.FLAGS


def main(argv) -> None:
  from vmle_jax.data import DataError, load_dataset
  from vmle_jax.data.prepared import save_prepared

  if len(argv) != 2 or argv[1] not in ("prepare", "stats"):
    common.fail("give one command: prepare | stats (see --help)")
  common.reject_positional(argv[:1])
  if not FLAGS.input:
    common.fail("--input is required")
  try:
    data = load_dataset(FLAGS.input, FLAGS.data_dir, FLAGS.format, FLAGS.kcore)
  except DataError as e:
    common.fail(str(e))
  stats = data.fingerprint()
  if argv[1] == "prepare":
    if not FLAGS.out:
      common.fail("prepare needs --out=<file>.npz")
    save_prepared(data, FLAGS.out)
    print(f"wrote {FLAGS.out}: {data.describe()} (sha256 {stats['sha256']})")
    return
  if FLAGS.json:
    print(json.dumps(stats, indent=2, sort_keys=True))
    return
  q = stats["len_quantiles"]
  print(
      f"{data.name} ({data.source})\n"
      f"  users         {stats['users']:,}\n  items         {stats['items']:,}\n"
      f"  interactions  {stats['interactions']:,}\n  density       {stats['density']:.6f}\n"
      f"  length        avg {stats['avg_len']:.2f}, min {q['min']:.0f}, median {q['p50']:.0f}, "
      f"p90 {q['p90']:.0f}, max {q['max']:.0f}\n"
      f"  time span     "
      + (f"{stats['time_span_days']} days" if "time_span_days" in stats else "no timestamps")
      + f"\n  sha256        {stats['sha256']}"
  )


def run() -> None:
  common.run_main(main)


if __name__ == "__main__":
  run()
