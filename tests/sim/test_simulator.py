"""The simulator's own parts: virtual time, delays and paths, the broker's routing."""

import random

import pytest

from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.envelope import Publish
from clocksync.sim.broker import SimBroker, Subscriber, matches
from clocksync.sim.delays import Exponential, Fixed, Jitter, Pareto, Path
from clocksync.sim.scheduler import Scheduler


def test_events_run_in_time_order_and_ties_in_scheduling_order() -> None:
    scheduler = Scheduler()
    ran: list[str] = []
    scheduler.at(30, lambda: ran.append("c"))
    scheduler.at(10, lambda: ran.append("a"))
    scheduler.at(10, lambda: ran.append("b"))
    scheduler.at(10, lambda: scheduler.at(5, lambda: ran.append("late, so now")))
    scheduler.run_until(20)
    assert ran == ["a", "b", "late, so now"]
    assert scheduler.now == 20
    scheduler.run_until(40)
    assert ran[-1] == "c"


@pytest.mark.parametrize(
    "delay",
    [Fixed(1e-3), Jitter(1e-3, 2e-3), Exponential(1e-3, 1e-3), Pareto(1e-3, 1e-3, 1.1, cap=0.5)],
)
def test_delays_are_never_below_their_base(delay: Fixed | Jitter | Exponential | Pareto) -> None:
    rng = random.Random(1)
    samples = [delay.sample(rng) for _ in range(10_000)]
    assert min(samples) >= 1_000_000
    assert max(samples) <= 1_000_000 + 500_000_000


def test_a_heavy_tail_has_far_outliers_and_an_exponential_few() -> None:
    rng = random.Random(2)
    heavy = sorted(Pareto(0, 1e-3, 1.2).sample(rng) for _ in range(10_000))
    light = sorted(Exponential(0, 1e-3).sample(rng) for _ in range(10_000))
    assert heavy[-10] > 10 * light[-10]


def test_a_path_refuses_impossible_loss() -> None:
    with pytest.raises(ValueError, match="loss"):
        Path(loss=1.0)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+/c", "a/b/c", True),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("a/b", "a/b/c", False),
        ("+/+", "a", False),
    ],
)
def test_topic_filters(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


def test_the_broker_keeps_retained_messages_and_sends_wills() -> None:
    broker = SimBroker()
    watcher = Subscriber("watcher")
    retained = Publish("s/nodes/KMC/status", b"online", retain=True)
    assert broker.route(retained) == []
    assert broker.connect(watcher, ["s/nodes/+/status"], None) == [retained]
    will = Publish("s/nodes/MIT/status", b"offline", retain=True)
    broker.connect(Subscriber("MIT"), [], will)
    assert broker.disconnect("MIT", cleanly=True) is None
    broker.connect(Subscriber("MIT"), [], will)
    assert broker.disconnect("MIT", cleanly=False) == will
    broker.route(Publish("s/nodes/KMC/status", b"", retain=True))
    assert broker.connect(Subscriber("late"), ["s/#"], None) == []


def test_a_3_1_1_subscriber_gets_no_request_response_properties() -> None:
    broker = SimBroker()
    broker.connect(Subscriber("new"), ["q"], None)
    broker.connect(Subscriber("old", MqttVersion.V311), ["q"], None)
    routed = dict(broker.route(Publish("q", b"x", response_topic="r", correlation=b"c")))
    by_client = {subscriber.client: message for subscriber, message in routed.items()}
    assert by_client["new"].correlation == b"c"
    assert by_client["old"].correlation is None
    assert by_client["old"].response_topic is None


def test_a_shared_subscription_hands_each_message_to_one_member_in_turn() -> None:
    broker = SimBroker()
    for name in ("bank-1", "bank-2"):
        broker.connect(Subscriber(name), ["$share/servers/q/+"], None)
    broker.connect(Subscriber("watcher"), ["q/#"], None)
    deliveries = [
        sorted(str(subscriber.client) for subscriber, _ in broker.route(Publish("q/x", b"")))
        for _ in range(4)
    ]
    assert deliveries == [["bank-1", "watcher"], ["bank-2", "watcher"]] * 2
    broker.disconnect("bank-1")
    assert [s.client for s, _ in broker.route(Publish("q/x", b"")) if s.client != "watcher"] == [
        "bank-2"
    ]
