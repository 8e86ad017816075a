"""The SQLite memory: trials, data sets, studies (and later insights and summaries)."""
