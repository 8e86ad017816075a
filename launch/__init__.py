"""Thin absl launchers (the only place flags are defined): vmle-train, ..."""
