"""Who is acting and what they may do: actors, the permission policy, API tokens, passwords, rate
limits, and the directory of units and users."""
