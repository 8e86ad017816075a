"""Reports: numbers from the SQLite memory, best-so-far curves, markdown and HTML."""

from vmle_jax.report.data import StudyRun, comparison_table, load_group
from vmle_jax.report.render import write_report

__all__ = ["StudyRun", "comparison_table", "load_group", "write_report"]
