"""The master's roles: the Berkeley master, its round bookkeeping, and the time server.
Installed as clocksync.master."""
