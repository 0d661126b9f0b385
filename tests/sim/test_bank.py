"""Cristian on the simulator: the error bound holds against the exact truth on every path,
and a Cristian node keeps the bank's time."""

from collections.abc import Hashable

import pytest

from clocksync.core.clock import NS_PER_S
from clocksync.core.sample import Sample
from clocksync.nodes.asker import Inquirer
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.envelope import Action, Inbound
from clocksync.sim.delays import PATHS, Exponential, Fixed, Pareto, Path
from clocksync.sim.scenarios import bank, cristian_node
from clocksync.sim.world import World


class CheckedInquirer(Inquirer):
    """An Inquirer that asks every second and notes, for every sample it accepts, the true
    server-minus-client offset at the instant the answer arrived."""

    def __init__(self, world: World, name: str, server: str, offset_s: float) -> None:
        super().__init__(
            name=name, site="manipal-buddy", clock=world.clock(offset_s, -70.0), timeout_s=0.5
        )
        self.asker._random_bytes = world.random_bytes
        self.world = world
        self.server = server
        self.checked: list[tuple[Sample, float]] = []
        self._next_burst = 0

    def on_message(self, message: Inbound) -> list[Action]:
        before = 0 if self.burst is None else len(self.burst.samples)
        actions = super().on_message(message)
        if self.burst is not None and len(self.burst.samples) > before:
            server_clock = self.world.hosts[self.server].role.clock
            truth = server_clock.reading_at(message.received_mono) - self.clock.reading_at(
                message.received_mono
            )
            self.checked.append((self.burst.samples[-1], truth / NS_PER_S))
        return actions

    def on_timer(self, mono: int) -> list[Action]:
        if mono >= self._next_burst:
            self._next_burst = mono + NS_PER_S
            return [*self.start(8)]
        return super().on_timer(mono)

    def on_sent(self, tag: Hashable, mono: int | None) -> None:
        super().on_sent(tag, mono)


@pytest.mark.parametrize(
    "path",
    [
        PATHS["loopback"],
        PATHS["lan"],
        PATHS["wifi"],
        PATHS["wan"],
        Path(Fixed(5e-3), Pareto(0.0, 2e-3, shape=1.1)),  # lopsided and heavy-tailed
    ],
    ids=["loopback", "lan", "wifi", "wan", "lopsided"],
)
def test_the_bound_holds_in_every_sample_on_every_path(path: Path) -> None:
    world = World(21)
    bank(world, PATHS["lan"], wakeup=Exponential(5e-6, 20e-6))
    clients = [
        CheckedInquirer(world, f"phone-{index}", "bank", offset_s=(index - 2) * 3.7)
        for index in range(5)
    ]
    for client in clients:
        world.add(client, path)
    world.run(30)
    checked = [pair for client in clients for pair in client.checked]
    assert len(checked) >= 5 * 15 * 7
    for sample, truth in checked:
        assert abs(sample.offset_s - truth) <= sample.error_bound_s, (sample, truth)


def test_the_bound_holds_for_a_3_1_1_client_too() -> None:
    world = World(22)
    bank(world, PATHS["lan"])
    client = CheckedInquirer(world, "web-browser", "bank", offset_s=1.7)
    client.asker.protocol = MqttVersion.V311
    world.add(client, PATHS["lan"], protocol=MqttVersion.V311)
    world.run(10)
    assert len(client.checked) >= 60
    assert all(abs(s.offset_s - truth) <= s.error_bound_s for s, truth in client.checked)


def test_a_cristian_node_keeps_the_banks_time_within_its_bound() -> None:
    world = World(23)
    bank(world, PATHS["lan"], drift_ppm=0.0)
    node = cristian_node(world, "kiosk", PATHS["lan"], offset_s=-3.0, drift_ppm=0.0)
    world.run(20)
    assert node.clock.updates >= 15
    truth = (world.true_offset_ns("kiosk") - world.true_offset_ns("bank")) / NS_PER_S
    status_bound = node.error_bound_s()
    assert status_bound is not None
    assert abs(truth) <= status_bound


@pytest.mark.parametrize("path", ["lan", "wifi", "wan"])
def test_a_drifting_device_is_always_within_the_bound_it_reports(path: str) -> None:
    """Not only at each correction: between them too, as the bound grows."""
    world = World(31)
    bank(world, PATHS[path], drift_ppm=-40.0)
    node = cristian_node(world, "kiosk", PATHS[path], offset_s=1.5, drift_ppm=90.0)
    misses: list[tuple[float, float]] = []
    checked = 0

    def check() -> None:
        nonlocal checked
        bound = node.error_bound_s()
        if bound is None:
            return
        checked += 1
        error = abs(world.true_offset_ns("kiosk") - world.true_offset_ns("bank")) / NS_PER_S
        if error > bound:
            misses.append((error, bound))

    world.every(0.1, check)
    world.run(300)
    assert checked > 2_500
    assert misses == []


def test_a_lost_server_leaves_the_node_free_running_and_unharmed() -> None:
    world = World(24)
    bank(world, PATHS["lan"], drift_ppm=0.0)
    node = cristian_node(world, "kiosk", PATHS["lan"], offset_s=2.0, drift_ppm=0.0)
    world.run(5)
    updates = node.clock.updates
    world.hosts["bank"].kill()
    world.run(10)
    assert node.clock.updates == updates
    assert abs(world.true_offset_ns("kiosk") - round(0.8 * NS_PER_S)) < 1e6


def test_several_servers_share_the_requests_and_a_falseticker_is_left_out() -> None:
    world = World(25)
    for name, offset in (("bank-1", 0.8), ("bank-2", 0.8), ("liar", 5.8)):
        bank(world, PATHS["lan"], offset_s=offset, drift_ppm=0.0, name=name)
    node = cristian_node(world, "kiosk", PATHS["lan"], offset_s=-3.0, drift_ppm=0.0, samples=9)
    world.run(10)
    answered = {name: world.hosts[name].counters.sent for name in ("bank-1", "bank-2", "liar")}
    assert all(count > 20 for count in answered.values()), answered
    assert node.clock.updates >= 8
    assert abs(world.true_offset_ns("kiosk") - round(0.8 * NS_PER_S)) < 1_000_000


def test_a_client_keeps_its_time_when_one_of_its_servers_dies() -> None:
    world = World(26)
    for name in ("bank-1", "bank-2", "bank-3"):
        bank(world, PATHS["lan"], drift_ppm=0.0, name=name)
    node = cristian_node(world, "kiosk", PATHS["lan"], offset_s=-3.0, drift_ppm=0.0)
    world.run(5)
    updates = node.clock.updates
    world.hosts["bank-2"].kill()
    world.run(10)
    assert node.clock.updates >= updates + 8, "it goes on correcting from the others"
    assert abs(world.true_offset_ns("kiosk") - round(0.8 * NS_PER_S)) < 1_000_000
