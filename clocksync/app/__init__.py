"""The applications: the `clocksync` command, `ask`, and the two demos."""
