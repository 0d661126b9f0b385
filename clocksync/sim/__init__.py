"""A deterministic simulator of clocks, networks and a broker, in virtual time (after
chrony's clknetsim).

The roles run on it unchanged: the simulator stands where the MQTT driver stands, hands
them messages with arrival instants and carries out their actions, but every instant is
virtual, every delay is drawn from a seeded generator, and the truth (each clock minus
true time) is read exactly.  An hour of a kitchen takes seconds.

- `scheduler`: virtual time and the events waiting in it;
- `delays`: delay distributions (fixed, jitter, exponential, heavy-tailed) and network paths
  (a participant's link to the broker, each direction, loss, reordering);
- `broker`: an in-process MQTT broker: topic filters, retained messages, Last Wills, expiry;
- `world`: participants on hosts, wired together, with the truth about their clocks.
"""
