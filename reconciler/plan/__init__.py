"""The plan as data, the planner (refresh, diff), cost estimates and policy."""
