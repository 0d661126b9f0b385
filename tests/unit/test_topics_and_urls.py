"""The topic tree and broker URLs."""

import pytest

from clocksync.protocol.topics import Topics, check_name, valid_name
from clocksync.transport.url import BrokerUrl, Scheme


def test_topic_tree() -> None:
    topics = Topics("manipal-foodie")
    assert topics.status("KMC") == "clocksync/manipal-foodie/nodes/KMC/status"
    assert topics.all_status == "clocksync/manipal-foodie/nodes/+/status"
    assert topics.poll("KMC") == "clocksync/manipal-foodie/berkeley/poll/KMC"
    assert topics.reply("MIT") == "clocksync/manipal-foodie/berkeley/reply/MIT"
    assert topics.correction("SOLS") == "clocksync/manipal-foodie/berkeley/correction/SOLS"
    assert topics.round == "clocksync/manipal-foodie/berkeley/round"
    assert topics.name_in(topics.reply("MIT")) == "MIT"
    assert topics.name_in(topics.status("KMC")) == "KMC"
    assert topics.name_in("clocksync/manipal-foodie/berkeley") is None


@pytest.mark.parametrize("name", ["KMC", "line-4", "a.b_c", "0", "x" * 64])
def test_valid_names(name: str) -> None:
    assert valid_name(name)


@pytest.mark.parametrize("name", ["", "a/b", "+", "#", "-lead", "sp ace", "x" * 65, "é"])
def test_invalid_names(name: str) -> None:
    assert not valid_name(name)
    with pytest.raises(ValueError, match="invalid name"):
        check_name(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt://localhost", BrokerUrl("localhost", 1883)),
        ("mqtt://broker.lan:8883", BrokerUrl("broker.lan", 8883)),
        ("mqtt://kmc@10.0.0.5:1884", BrokerUrl("10.0.0.5", 1884, "kmc")),
        ("mqtt://[::1]:1883/", BrokerUrl("::1", 1883)),
        ("mqtts://broker.lan", BrokerUrl("broker.lan", 8883, None, Scheme.MQTTS)),
        ("ws://broker.lan:9001", BrokerUrl("broker.lan", 9001, None, Scheme.WS, "/mqtt")),
        ("wss://kmc@broker.lan/clocks", BrokerUrl("broker.lan", 443, "kmc", Scheme.WSS, "/clocks")),
    ],
)
def test_broker_urls(text: str, expected: BrokerUrl) -> None:
    assert BrokerUrl.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("localhost:1883", "expected mqtt://"),
        ("http://localhost", "expected mqtt://"),
        ("mqtt://", "expected mqtt://"),
        ("mqtt://u:secret@host", "CLOCKSYNC_PASSWORD"),
        ("mqtt://host:99999", "invalid port"),
        ("mqtt://host/path", "unexpected path"),
        ("mqtts://host/path", "only ws:// and wss://"),
        ("wss://host/path?x=1", "unexpected query"),
        ("tcp://host", "expected mqtt://, mqtts://, ws:// or wss://"),
    ],
)
def test_bad_broker_urls(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        BrokerUrl.parse(text)


def test_broker_url_prints_without_secrets() -> None:
    assert str(BrokerUrl("host", 1884, "kmc")) == "mqtt://kmc@host:1884"


def test_broker_url_round_trips_through_text() -> None:
    for url in (BrokerUrl("::1", 1883), BrokerUrl("h", 2, "u")):
        assert BrokerUrl.parse(str(url)) == url


def test_urls_print_back_with_their_transport() -> None:
    assert str(BrokerUrl.parse("wss://kmc@host:8443/mqtt")) == "wss://kmc@host:8443/mqtt"
    assert str(BrokerUrl.parse("mqtts://host")) == "mqtts://host:8883"
