"""Search: the typed search space, grid/random/TPE strategies, and (later) the agent."""
