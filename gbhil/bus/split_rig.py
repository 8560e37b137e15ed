"""A rig whose devices run in several processes: the hub side here, device hosts as children.

:func:`open_split_rig` is what :func:`gbhil.rigs.build.build_rig` calls for a rig file
with an MQTT bus. It connects to the broker, announces the run's
:class:`~gbhil.bus.han_bridge.SharedRealTimeClock`, starts one ``python -m
gbhil.bus.device_host`` child per device process of the rig file, waits until each
says its devices are online, then builds the hub side (:func:`start_hub_side`) as a
:class:`SplitRig`. The result keeps the rig contract of
:class:`~gbhil.rigs.simulated.SimulatedRig` (one persistent loop in ``run``, ``start``,
``send``, ``settle``, ``close``), so the HIL harness and ``gbhil serve`` drive it as
they drive the embedded rig; :meth:`SplitRig.close` stops the device hosts and leaves
no child behind.

Time: the stepped clock cannot span processes (docs/mqtt.md), so every process runs the
shared real-time clock at ``rate`` times real time (1 on real hardware; more in CI, so
a 4-minute outage takes seconds).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from gbhil.bus.device_host import REMOTE_CAPABLE, S_ONLINE, HubSide, start_hub_side
from gbhil.bus.han_bridge import SharedRealTimeClock, publish_clock
from gbhil.bus.mqtt import BrokerAddress, BusConnectError, BusError, BusTimeoutError, MqttBus
from gbhil.bus.topics import RunTopics, new_run_id
from gbhil.rigs.simulated import SimulatedRig

LOG = logging.getLogger(__name__)

#: How long (wall seconds) the broker may take to accept the hub's connection.
CONNECT_TIMEOUT_S: Final = 5.0
#: How long (wall seconds) a device host may take to come online (it generates the PKI).
HOST_START_TIMEOUT_S: Final = 60.0
#: How often (wall seconds) a waiting harness looks whether a device host died.
HOST_POLL_S: Final = 0.5
#: How long (wall seconds) closing waits for device hosts to stop before signalling them.
HOST_STOP_TIMEOUT_S: Final = 10.0
#: After SIGTERM, how long (wall seconds) before SIGKILL.
HOST_KILL_TIMEOUT_S: Final = 5.0
#: Settling: the HAN counts as idle once no frame or bus message moved for this long
#: (wall seconds; frames in flight through the broker are invisible to the local clock).
QUIET_WALL_S: Final = 0.2
#: Lines of a failed device host's log quoted in the error.
LOG_TAIL_LINES: Final = 20
DEVICE_HOST_MODULE: Final = "gbhil.bus.device_host"
#: Linux prctl: the child gets SIGTERM when the harness dies without closing the rig.
_PR_SET_PDEATHSIG: Final = 1


class SplitRigError(BusError):
    """The split rig could not be built or started (broker, device host, commissioning)."""


@dataclass(frozen=True, slots=True)
class SplitPlan:
    """What :func:`open_split_rig` builds: derived from a rig file by gbhil.rigs.build."""

    rig_name: str
    broker: BrokerAddress
    seed: int
    #: device process name -> device roles it hosts (only :data:`REMOTE_CAPABLE` ones)
    hosts: Mapping[str, tuple[str, ...]]
    start: datetime
    rate: float = 1.0
    capture: str | Path | None = None
    #: the hub behind an emulated EZSP NCP (a :class:`gbhil.bus.split_ezsp.EzspPlan`)
    ezsp: Any = None

    @property
    def remote_devices(self) -> tuple[str, ...]:
        return tuple(name for names in self.hosts.values() for name in names)


@dataclass(slots=True)
class HostProcess:
    """One ``python -m gbhil.bus.device_host`` child and its log file."""

    name: str
    devices: tuple[str, ...]
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe_exit(self) -> str:
        tail = self.log_tail()
        return f"device host {self.name!r} exited with status {self.process.returncode}" + (
            f":\n{tail}" if tail else ""
        )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def device_host_command(plan: SplitPlan, topics: RunTopics, devices: Sequence[str]) -> list[str]:
    """The command line of one device host."""
    return [
        sys.executable, "-m", DEVICE_HOST_MODULE,
        "--broker", f"{plan.broker.host}:{plan.broker.port}",
        "--rig", topics.rig, "--run", topics.run,
        "--rig-seed", str(plan.seed), "--devices", ",".join(devices),
    ]  # fmt: skip


def spawn_host(
    plan: SplitPlan, topics: RunTopics, name: str, devices: tuple[str, ...], logs: Path
) -> HostProcess:
    log_path = logs / f"device-host-{name}.log"
    with log_path.open("wb") as handle:
        process = subprocess.Popen(
            device_host_command(plan, topics, devices),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    return HostProcess(name, devices, process, log_path)


def reap(hosts: Sequence[HostProcess], timeout: float = HOST_STOP_TIMEOUT_S) -> None:
    """Wait for the hosts to exit; SIGTERM, then SIGKILL, those that do not."""
    deadline = time.monotonic() + timeout
    for host in hosts:
        with contextlib.suppress(subprocess.TimeoutExpired):
            host.process.wait(max(0.0, deadline - time.monotonic()))
    for host in hosts:
        if host.process.poll() is None:
            LOG.warning("device host %r did not stop: terminating it", host.name)
            host.process.terminate()
            try:
                host.process.wait(HOST_KILL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                host.process.kill()
                host.process.wait()


@dataclass(slots=True)
class SplitRig(SimulatedRig):
    """The hub side of a rig whose meters run in device hosts (see the module docstring).

    ``rig.esme`` etc. are this process's copies of the hosted devices (same keys, same
    PKI seed); the devices that answer on the HAN are the hosts' own.
    """

    side: HubSide | None = None
    bus: MqttBus | None = None
    hosts: list[HostProcess] = field(default_factory=list)
    run_topics: RunTopics | None = None
    broker: BrokerAddress | None = None
    _logs: Path | None = None

    # -- the rig contract ------------------------------------------------------------
    def run(self, coro: Any) -> Any:
        """Run ``coro`` on the rig's one real-time event loop (the bus lives on it)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def _activity(self) -> int:
        count = 0
        if self.side is not None:
            c = self.side.gateway.counters
            count += c.published + c.heard + c.ignored + c.malformed + c.refused
        if self.bus is not None:
            count += self.bus.stats.received + self.bus.stats.published
        return count

    async def settle(self, seconds: float = 60.0) -> None:
        """Until this process is idle and the HAN quiet, or ``seconds`` of rig time passed.

        The local clock cannot see a frame on its way through the broker, so idle here
        also means no frame or bus message for :data:`QUIET_WALL_S` of wall time.
        """
        clock = self.clock
        deadline = clock.monotonic() + seconds
        while (remaining := deadline - clock.monotonic()) > 0:
            if not await clock.run_until_idle(max_seconds=remaining):
                return
            before = self._activity()
            rate = getattr(clock, "rate", 1.0)
            remaining = deadline - clock.monotonic()
            await asyncio.sleep(max(0.0, min(QUIET_WALL_S, remaining / rate)))
            if self._activity() == before and clock.pending == 0:
                return

    def close(self) -> None:
        """Stop the device hosts, leave the broker, close the loop; no child survives."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.run_until_complete(self._shutdown())
            except Exception as exc:  # closing must go on: the hosts are reaped below
                LOG.warning("split rig %s: clean shutdown failed: %s", self.run_topics, exc)
        reap(self.hosts)
        atexit.unregister(self._reap_at_exit)
        if self._logs is not None:
            shutil.rmtree(self._logs, ignore_errors=True)
            self._logs = None
        SimulatedRig.close(self)

    async def _shutdown(self) -> None:
        side, bus = self.side, self.bus
        self.side = None
        if side is not None:
            one_each = [host.devices[0] for host in self.hosts if host.devices]
            await side.stop_hosts(timeout=HOST_STOP_TIMEOUT_S, names=one_each)
            await side.gateway.close()
            await side.trust_center.close()
        if bus is not None:
            self.bus = None
            await bus.close(end_session=True)

    def _reap_at_exit(self) -> None:
        reap(self.hosts, timeout=0.0)


async def _await_online(bus: MqttBus, topics: RunTopics, host: HostProcess, device: str) -> None:
    deadline = time.monotonic() + HOST_START_TIMEOUT_S
    while True:
        try:
            await bus.next_message(
                topics.state(device),
                timeout=HOST_POLL_S,
                predicate=lambda m: bool(m.meta.get(S_ONLINE)),
            )
            return
        except BusTimeoutError:
            if host.process.poll() is not None:
                raise SplitRigError(host.describe_exit()) from None
            if time.monotonic() > deadline:
                raise SplitRigError(
                    f"device host {host.name!r} did not bring {device} online within "
                    f"{HOST_START_TIMEOUT_S:g} s"
                ) from None


async def _open(plan: SplitPlan, clock: SharedRealTimeClock, rig_box: list[Any]) -> SplitRig:
    """Connect, start the hosts, build the hub side; everything made goes into ``rig_box``
    (bus, hosts, log folder) so a failure part-way is cleaned up by the caller."""
    for name in plan.remote_devices:
        if name not in REMOTE_CAPABLE:
            raise SplitRigError(
                f"device {name!r} cannot run in another process (possible: "
                f"{', '.join(REMOTE_CAPABLE)})"
            )
    topics = RunTopics(plan.rig_name, new_run_id(plan.start))
    bus = MqttBus(plan.broker, role="hub")
    rig_box.append(bus)
    try:
        await bus.start(CONNECT_TIMEOUT_S)
    except BusConnectError as exc:
        raise SplitRigError(
            f"rig {plan.rig_name!r}: the MQTT broker at {plan.broker} is not reachable ({exc}); "
            "start it (e.g. mosquitto -p PORT) or point the rig elsewhere "
            "(GBHIL_BUS_URL / --bus-url)"
        ) from None
    await publish_clock(bus, topics, clock).wait()
    logs = Path(tempfile.mkdtemp(prefix="gbhil-hosts-"))
    rig_box.append(logs)
    hosts: list[HostProcess] = []
    rig_box.append(hosts)
    for name, devices in plan.hosts.items():
        hosts.append(spawn_host(plan, topics, name, devices, logs))
    for host in hosts:
        for device in host.devices:
            await _await_online(bus, topics, host, device)
    radio: dict[str, Any] = {}
    rig_class: type[SplitRig] = SplitRig
    emulator: Any = None
    if plan.ezsp is not None:
        from gbhil.bus.split_ezsp import SplitEzspRig, open_hub_radio

        radio, emulator = await open_hub_radio(plan.ezsp, clock, rig_box)
        rig_class = SplitEzspRig
    side = await start_hub_side(
        bus, topics, clock, seed=plan.seed, remote_devices=plan.remote_devices,
        capture=plan.capture, rig_class=rig_class, **radio,
    )  # fmt: skip
    rig = side.rig
    assert isinstance(rig, SplitRig)
    if plan.ezsp is not None:
        rig.radio, rig.emulator = radio["hub_transport"], emulator  # type: ignore[attr-defined]
        rig.place = plan.ezsp.place  # type: ignore[attr-defined]
    rig.side, rig.bus, rig.hosts, rig.run_topics, rig.broker = side, bus, hosts, topics, plan.broker
    rig._logs = logs
    return rig


def open_split_rig(plan: SplitPlan) -> SplitRig:
    """Build and connect the split rig (not commissioned: ``rig.run(rig.start())`` next)."""
    clock = SharedRealTimeClock(plan.start, rate=plan.rate)
    loop = asyncio.new_event_loop()
    made: list[Any] = []
    try:
        rig = loop.run_until_complete(_open(plan, clock, made))
    except BaseException:
        _abandon(loop, made)
        raise
    rig._loop = loop
    atexit.register(rig._reap_at_exit)
    return rig


def _abandon(loop: asyncio.AbstractEventLoop, made: list[Any]) -> None:
    """Undo a partial :func:`open_split_rig`: hosts stopped, bus closed, loop closed."""
    for item in made:
        if isinstance(item, list):
            for host in item:
                if host.process.poll() is None:
                    host.process.send_signal(signal.SIGTERM)
            reap(item)
    for item in reversed(made):
        if isinstance(item, MqttBus):
            with contextlib.suppress(Exception):
                loop.run_until_complete(item.close(flush=None, end_session=True))
        elif isinstance(item, Path):
            shutil.rmtree(item, ignore_errors=True)
        elif hasattr(item, "close") and asyncio.iscoroutinefunction(item.close):
            with contextlib.suppress(Exception):  # the EZSP radio, then its emulator
                loop.run_until_complete(item.close())
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.close()


__all__ = [
    "HostProcess",
    "SplitPlan",
    "SplitRig",
    "SplitRigError",
    "device_host_command",
    "open_split_rig",
    "reap",
]
