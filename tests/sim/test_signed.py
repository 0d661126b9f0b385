"""A signed site on the simulator, with an attacker who may publish and read everything:
it copies every poll it sees into forged corrections of an hour, unsigned, under its own
key and replayed; no clock moves by its doing."""

import json

from clocksync.core.clock import NS_PER_S
from clocksync.master.berkeley import BerkeleyMaster
from clocksync.master.rounds import RoundPlan
from clocksync.nodes.berkeley import BerkeleyNode
from clocksync.protocol.envelope import Action, Inbound, Publish, Wake
from clocksync.protocol.messages import Correction, Poll
from clocksync.protocol.signing import Keys, Signer, TrustedKeys
from clocksync.protocol.topics import Topics
from clocksync.roles.role import PassiveRole
from clocksync.sim.delays import PATHS
from clocksync.sim.scenarios import LINES, MASTER, TruthSampler, percentile
from clocksync.sim.world import World

SITE = "manipal-foodie"
TOPICS = Topics(SITE)
LAB, ROGUE = Signer.generate(), Signer.generate()
TRUSTED = TrustedKeys([LAB.private.public_key()])


class Attacker(PassiveRole):
    """Reads every poll and correction; answers each poll with forged corrections and
    replays the latest genuine polls and corrections it has seen, every 50 ms."""

    def __init__(self, world: World) -> None:
        self.name = "mallory"
        self.clock = world.clock()
        self.seen: list[Inbound] = []
        self.forged = 0

    def subscriptions(self) -> list[str]:
        return [f"{TOPICS.prefix}/berkeley/poll/+", f"{TOPICS.prefix}/berkeley/correction/+"]

    def on_connect(self, mono: int) -> list[Action]:
        return [Wake(mono + NS_PER_S // 20)]

    def on_message(self, message: Inbound) -> list[Action]:
        if TRUSTED.refusal(message.payload) is not None:
            return []  # its own forgery coming back
        self.seen = [*self.seen[-8:], message]
        if "/poll/" not in message.topic:
            return []
        poll = Poll.decode(message.payload)
        forged = Correction(poll.master, poll.node, poll.epoch, poll.round, poll.seq, 3600.0)
        payloads = [forged.encode(), ROGUE.seal(forged.encode())]
        data = json.loads(message.payload)
        data["seq"] = poll.seq + 100  # a sealed poll, altered
        payloads.append(json.dumps(data).encode())
        self.forged += len(payloads)
        return [
            *(Publish(TOPICS.correction(poll.node), p) for p in payloads[:2]),
            Publish(message.topic, payloads[2]),
        ]

    def on_timer(self, mono: int) -> list[Action]:
        replays = [Publish(m.topic, m.payload) for m in self.seen]
        self.forged += len(replays)
        return [*replays, Wake(mono + NS_PER_S // 20)]


def test_an_attacker_on_an_open_broker_moves_no_signed_clock() -> None:
    world = World(31)
    trust_lab = Keys(trusted=TRUSTED)
    master = BerkeleyMaster(
        name=MASTER, site=SITE, clock=world.clock(0.3), plan=RoundPlan(), keys=Keys(signer=LAB)
    )
    nodes = [
        BerkeleyNode(
            name=name,
            site=SITE,
            clock=world.clock(offset, 0.0),
            status_interval_s=1.0,
            keys=trust_lab,
        )
        for name, offset in zip(LINES, (0.4, -0.2, 0.1, -0.6), strict=True)
    ]
    for node in nodes:
        world.add(node, PATHS["loopback"])
    world.add(master, PATHS["loopback"], connect_at_s=1.0)
    attacker = Attacker(world)
    world.add(attacker, PATHS["loopback"], connect_at_s=1.0)
    truth = TruthSampler(world, MASTER, after_s=10)
    world.run(40)
    assert attacker.forged > 5_000
    assert all(node.clock.refused == 0 for node in nodes), "nothing forged reached a clock"
    assert all(35 <= node.clock.updates <= 40 for node in nodes), "one update a round"
    assert percentile(truth.all_errors(), 1.0) < 50e-6
