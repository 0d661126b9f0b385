"""An in-process MQTT broker for the simulator: routing only, no timing (the world adds the
network's delays on either side).

It keeps what clocksync relies on a broker for: topic filters with `+` and `#`, shared
subscriptions (`$share/GROUP/filter`: each message to one member of the group, in turn),
retained messages (an empty retained payload deletes one), Last Wills, and MQTT 5's
Response Topic and Correlation Data, which a 3.1.1 subscriber does not get.  Subscriptions without
wildcards are looked up directly, so a fleet of thousands costs little per message.
"""

from collections.abc import Hashable
from dataclasses import dataclass, replace

from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.envelope import Publish


def matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` falls under `topic_filter` (MQTT 3.1.1, section 4.7)."""
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level not in ("+", topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


@dataclass(frozen=True)
class Subscriber:
    """A connected client, as the broker knows it."""

    client: Hashable
    protocol: MqttVersion = MqttVersion.V5


class SimBroker:
    def __init__(self) -> None:
        self._exact: dict[str, dict[Hashable, Subscriber]] = {}
        self._wildcard: dict[tuple[str, Hashable], Subscriber] = {}
        self._shared: dict[tuple[str, str], list[Subscriber]] = {}
        self._turn: dict[tuple[str, str], int] = {}
        self._retained: dict[str, Publish] = {}
        self._wills: dict[Hashable, Publish] = {}

    def connect(
        self, subscriber: Subscriber, filters: list[str], will: Publish | None
    ) -> list[Publish]:
        """Subscribe `subscriber`; return the retained messages it is owed at once."""
        self.disconnect(subscriber.client)
        shared = [f for f in filters if f.startswith("$share/")]
        for topic_filter in shared:
            _, group, real = topic_filter.split("/", 2)
            self._shared.setdefault((group, real), []).append(subscriber)
        filters = [f for f in filters if f not in shared]
        for topic_filter in filters:
            if "+" in topic_filter or "#" in topic_filter:
                self._wildcard[topic_filter, subscriber.client] = subscriber
            else:
                self._exact.setdefault(topic_filter, {})[subscriber.client] = subscriber
        if will is not None:
            self._wills[subscriber.client] = will
        owed = [
            message
            for topic, message in self._retained.items()
            if any(matches(f, topic) for f in filters)
        ]
        return [self._as_received(message, subscriber) for message in owed]

    def disconnect(self, client: Hashable, *, cleanly: bool = True) -> Publish | None:
        """Forget `client`; return its Last Will if it went without saying goodbye."""
        for subscribers in self._exact.values():
            subscribers.pop(client, None)
        for key in [key for key in self._wildcard if key[1] == client]:
            del self._wildcard[key]
        for members in self._shared.values():
            members[:] = [member for member in members if member.client != client]
        will = self._wills.pop(client, None)
        return None if cleanly else will

    def route(self, message: Publish) -> list[tuple[Subscriber, Publish]]:
        """Where `message` goes, and as what each subscriber receives it."""
        if message.retain:
            if message.payload:
                self._retained[message.topic] = replace(message, tag=None)
            else:
                self._retained.pop(message.topic, None)
        found = dict(self._exact.get(message.topic, {}))
        for (topic_filter, client), subscriber in self._wildcard.items():
            if client not in found and matches(topic_filter, message.topic):
                found[client] = subscriber
        for key, members in self._shared.items():
            if members and matches(key[1], message.topic):
                turn = self._turn.get(key, 0) % len(members)
                self._turn[key] = turn + 1
                found.setdefault(members[turn].client, members[turn])
        return [(s, self._as_received(message, s)) for s in found.values()]

    @staticmethod
    def _as_received(message: Publish, subscriber: Subscriber) -> Publish:
        """The message as `subscriber` gets it (the sender's tag is not read on arrival)."""
        if subscriber.protocol == MqttVersion.V5:
            return message
        return replace(message, response_topic=None, correlation=None)
