"""The protocol: what goes over the broker, independent of any MQTT library.

- `enums`: the protocol's named values (MQTT version, role, state, sync mode);
- `timefmt`: RFC 3339 times with nanoseconds;
- `topics`: the topic tree;
- `wire`: the checked JSON wire format;
- `messages`: every message, one declaration each;
- `envelope`: what a role exchanges with whatever carries its messages (a received message
  with its arrival time, a message to publish, a wake-up time).
"""
