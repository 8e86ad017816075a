"""Search: the space, grid/random/TPE, the study loop, the agent and its planners."""
