"""The nodes' roles: the Berkeley node, the Cristian client and the Cristian node.
Installed as clocksync.nodes."""
