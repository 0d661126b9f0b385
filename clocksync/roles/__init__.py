"""The roles' shared parts, without I/O (the roles themselves live in clocksync.master and
clocksync.nodes).

- `role`: the interface every role offers to whatever runs it, and how its actions are
  carried out;
- `participant`: what the roles with a retained status share: a clock, its discipline, the
  status heartbeat.
"""
