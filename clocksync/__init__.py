"""clocksync: clock synchronization for device fleets that share an MQTT broker."""

__version__ = "0.1.0"
