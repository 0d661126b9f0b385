"""Signed sites, in-process: with the broker open to all, a participant that trusts a key
takes time-bearing messages only under its seal, and never the same one twice."""

from dataclasses import replace

import pytest

from clocksync.core.clock import NS_PER_S
from clocksync.master.berkeley import BerkeleyMaster
from clocksync.master.rounds import RoundPlan
from clocksync.master.timeserver import TimeServer
from clocksync.nodes.asker import Asker
from clocksync.nodes.berkeley import BerkeleyNode
from clocksync.nodes.cristian import CristianNode
from clocksync.protocol.enums import RoleKind, State, SyncMode
from clocksync.protocol.envelope import Publish
from clocksync.protocol.messages import Correction, Poll, Reply, RoundSummary, Status
from clocksync.protocol.signing import Keys, Signer, TrustedKeys, finish_at_send
from clocksync.protocol.topics import Topics
from tests.unit.fakes import FakeTime, inbound, publishes, wake_of

LAB, KMC, ROGUE = Signer.generate(), Signer.generate(), Signer.generate()
EPOCH = 1_800_000_000_000
KITCHEN = Topics("kitchen")


def trusting(*signers: Signer) -> TrustedKeys:
    return TrustedKeys([signer.private.public_key() for signer in signers])


def signed_node(time: FakeTime) -> BerkeleyNode:
    node = BerkeleyNode(
        name="KMC",
        site="kitchen",
        clock=time.clock(),
        status_interval_s=1.0,
        keys=Keys(signer=KMC, trusted=trusting(LAB)),
    )
    node.on_connect(time.mono)
    return node


def deliver(node: BerkeleyNode, time: FakeTime, topic: str, payload: bytes) -> list[Publish]:
    return publishes(node.on_message(inbound(topic, payload, time.mono)))


def test_a_signed_node_answers_only_sealed_polls_and_seals_its_replies() -> None:
    time = FakeTime()
    node = signed_node(time)
    poll = Poll("lab", "KMC", EPOCH, 1, 0).encode()
    assert deliver(node, time, KITCHEN.poll("KMC"), poll) == []
    assert deliver(node, time, KITCHEN.poll("KMC"), ROGUE.seal(poll)) == []
    (reply,) = deliver(node, time, KITCHEN.poll("KMC"), LAB.seal(poll))
    assert trusting(KMC).refusal(reply.payload) is None
    assert Reply.decode(reply.payload).seq == 0


def test_forged_unsigned_and_replayed_corrections_move_nothing() -> None:
    time = FakeTime()
    node = signed_node(time)
    deliver(node, time, KITCHEN.poll("KMC"), LAB.seal(Poll("lab", "KMC", EPOCH, 1, 0).encode()))
    correction = Correction("lab", "KMC", EPOCH, 1, 0, 0.002).encode()
    for forged in (
        correction,  # unsigned
        ROGUE.seal(correction),  # another key
        LAB.seal(correction).replace(b"0.002", b"3600."),  # tampered
    ):
        deliver(node, time, KITCHEN.correction("KMC"), forged)
    assert node.clock.updates == 0
    genuine = LAB.seal(correction)
    deliver(node, time, KITCHEN.correction("KMC"), genuine)
    assert node.clock.updates == 1
    deliver(node, time, KITCHEN.correction("KMC"), genuine)  # replayed
    time.advance(NS_PER_S)
    assert node.clock.updates == 1
    assert node.clock.now_ns() - time.wall == 2_000_000


def test_a_signed_master_seals_what_moves_clocks_and_takes_only_sealed_replies() -> None:
    time = FakeTime()
    master = BerkeleyMaster(
        name="lab",
        site="kitchen",
        clock=time.clock(),
        plan=RoundPlan(samples=1),
        keys=Keys(signer=LAB, trusted=trusting(KMC)),
    )
    status = Status("KMC", RoleKind.NODE, State.ONLINE, SyncMode.BERKELEY, 0.0, time.wall)
    master.on_message(inbound(KITCHEN.status("KMC"), status, time.mono))
    master.on_connect(time.mono)
    time.mono += 2 * NS_PER_S  # it listens, then leads
    taking_over = master.on_timer(time.mono)
    (record,) = [p for p in publishes(taking_over) if p.topic == KITCHEN.leader]
    assert record.retain
    assert trusting(LAB).refusal(record.payload) is None
    time.mono = wake_of(taking_over)
    (poll_message,) = [p for p in publishes(master.on_timer(time.mono)) if p.tag is not None]
    assert trusting(LAB).refusal(poll_message.payload) is None
    master.on_sent(poll_message.tag, time.mono)
    poll = Poll.decode(poll_message.payload)
    reply = Reply("KMC", poll.epoch, poll.round, 0, time.wall, time.wall).encode()
    at = time.mono + 100_000
    for unsealed in (reply, ROGUE.seal(reply)):
        master.on_message(inbound(KITCHEN.reply("KMC"), unsealed, at))
    time.mono += NS_PER_S // 2
    closing = publishes(master.on_timer(time.mono))
    (summary,) = [p for p in closing if p.topic == KITCHEN.round]
    assert trusting(LAB).refusal(summary.payload) is None
    entries = RoundSummary.decode(summary.payload).participants
    assert [entry.name for entry in entries] == ["lab"], "no sealed reply came"


def test_a_signed_answer_covers_the_clients_nonce() -> None:
    time = FakeTime()
    bank_topics = Topics("bank")
    server = TimeServer(
        name="bank", site="bank", clock=time.clock(offset_s=0.8), keys=Keys(signer=LAB)
    )
    server.on_connect(time.mono)
    asker = Asker(time.clock(), bank_topics, "phone", timeout_s=0.5, trusted=trusting(LAB))
    unsigned_server = TimeServer(name="bank", site="bank", clock=time.clock(offset_s=9.0))

    def answer(by: TimeServer) -> Publish:
        request = asker.request()
        message = inbound(
            bank_topics.cristian_request,
            request.payload,
            time.mono,
            response_topic=request.response_topic,
            correlation=request.correlation,
        )
        (reply,) = publishes(by.on_message(message))
        reading = by.clock.reading_at(time.mono)
        return replace(reply, payload=finish_at_send(reply.payload, reading, by.signer))

    genuine = answer(server)
    time.advance(100_000)
    sample = asker.take(
        inbound(genuine.topic, genuine.payload, time.mono, correlation=genuine.correlation)
    )
    assert sample is not None
    assert sample.offset_s == pytest.approx(0.8, abs=1e-3)
    # The same sealed answer, offered for a new request: its sealed nonce is the old one.
    asker.request()
    replayed = inbound(genuine.topic, genuine.payload, time.mono, correlation=b"new-nonce")
    assert asker.take(replayed) is None
    unsigned = answer(unsigned_server)
    assert (
        asker.take(
            inbound(unsigned.topic, unsigned.payload, time.mono, correlation=unsigned.correlation)
        )
        is None
    )


def test_a_cristian_node_that_trusts_a_key_asks_with_it() -> None:
    time = FakeTime()
    keys = Keys(trusted=trusting(LAB))
    node = CristianNode(
        name="kiosk",
        site="bank",
        clock=time.clock(),
        interval_s=1.0,
        samples=2,
        timeout_s=0.5,
        keys=keys,
    )
    assert node.asker.trusted is keys.trusted
