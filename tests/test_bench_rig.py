"""The bench rig against a bench stand-in: a stick and meters in another process, wall clock.

``python -m gbhil.han.ezsp.bench_standin`` plays "an EZSP stick plus meters on the air"
(the emulator on a pty, simulated meters joining through the NCP's own trust centre); the
harness sees only the pty path, written into a rig file as the stick's ``port`` with the
meters as ``kind = "real"`` and their install codes, and builds it with ``build_rig`` as a
user would build a bench. Waits are wall-clock and bounded; nothing here is timed.
"""

from __future__ import annotations

import asyncio
import json
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import zigpy.types as zt

from gbhil.cli import main
from gbhil.gbcs.frame import Cra
from gbhil.gbcs.message import decode_message
from gbhil.gbcs.security import Check, verify_mac
from gbhil.han.ezsp.emulator import EmulatorConfig, EzspEmulator
from gbhil.han.ezsp.radio import EzspRadio, RadioSettings
from gbhil.han.ezsp.serial_clock import SerialSteppedClock
from gbhil.han.joining import (
    JoiningDevice,
    JoinRole,
    RejectReason,
    link_key_from_install_code,
    with_crc,
)
from gbhil.han.medium import SimulatedMedium
from gbhil.han.tunnel import CLUSTER_TUNNELING
from gbhil.pytest_plugin.plugin import DccClient, rig_capabilities
from gbhil.rigs.bench_rig import BenchRig, build_bench_rig
from gbhil.rigs.build import RigBuildError, RigKind, build_rig, rig_kind, unbuildable
from gbhil.rigs.rigfile import load_rig
from gbhil.rigs.simulated import DEFAULT_START, DEVICES, PowerEvent, install_code_for
from tests.conftest import CONFORMANCE, ROOT
from tests.test_rig_simulated import _ecs52

SEED = 7
#: Wall-clock bounds: the stand-in's ready line, the joins, a DCC answer.
READY_S = 60.0
JOIN_S = 30.0
ANSWER_S = 30.0
#: A wrong install code (valid length and CRC, not the device's).
WRONG_CODE = with_crc(bytes(range(16)))
SCHEMA_DIR = CONFORMANCE / "duis" / "schema"
NO_XSD = f"DUIS XSD not found under {SCHEMA_DIR} (../shared): the DCC part is skipped"


@dataclass
class Standin:
    process: subprocess.Popen[str]
    port: str
    stick_eui: str
    devices: dict[str, str]


def _start_standin(devices: str, *extra: str) -> Standin:
    # stderr to a file, not a pipe: a chatty child could fill a pipe and stall
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gbhil.han.ezsp.bench_standin", "--seed", str(SEED),
             "--devices", devices, "--watch-stdin", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
        )  # fmt: skip
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], READY_S)
        line = process.stdout.readline() if ready else ""
        if not line:
            _stop(process)
            log.seek(0)
            err = log.read()[-2000:]
            pytest.fail(f"the bench stand-in gave no ready line within {READY_S:g} s: {err}")
        try:
            info = json.loads(line)
        except json.JSONDecodeError as exc:
            _stop(process)
            log.seek(0)
            err = log.read()[-2000:]
            raise AssertionError(
                f"the bench stand-in's ready line {line!r} is not JSON: {err}"
            ) from exc
    return Standin(process, info["port"], info["stick_eui"], info["devices"])


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture()
def standin() -> Iterator[Standin]:
    started = _start_standin("esme")
    yield started
    _stop(started.process)


def _rig_file(
    path: Path,
    port: str,
    devices: dict[str, str],
    *,
    codes: dict[str, bytes] | None = None,
    simulated: tuple[str, ...] = (),
    sub_ghz: bool = False,
    pki: str = f"generated = true\nseed = {SEED}",
    instruments: str = "",
    relays: dict[str, str] | None = None,
) -> Path:
    """A bench rig file: the hub (CHF + GPF) on the stick at ``port``, ``devices`` real."""
    codes = codes or {}
    sub = "\n[place.radio.sub_ghz]\npage = 28\nchannel = 5\n" if sub_ghz else ""
    text = f"""
[rig]
name = "bench-standin"

[pki]
{pki}

[[place]]
name = "bench"

[place.radio]
driver = "ezsp"
port = "{port}"
channel = 11
cbke = false
{sub}
{instruments}
[[device]]
role = "chf"
eui = "{DEVICES["chf"][0].hex().upper()}"
place = "bench"

[[device]]
role = "gpf"
eui = "{DEVICES["gpf"][0].hex().upper()}"
place = "bench"
"""
    for role, eui in devices.items():
        code = codes.get(role, install_code_for(bytes.fromhex(eui)))
        text += f'\n[[device]]\nrole = "{role}"\neui = "{eui}"\nplace = "bench"\n'
        if role not in simulated:
            text += f'kind = "real"\ninstall_code = "{code.hex().upper()}"\n'
        if role in (relays or {}):
            text += f'relay = "{(relays or {})[role]}"\n'
    path.write_text(text)
    return path


async def _until_response(rig: BenchRig) -> None:
    """Wall-clock wait (bounded) for a GBCS response on the rig's WAN, then quiet air."""
    async with asyncio.timeout(ANSWER_S):
        while not any(decode_message(m).frame.gs.cra is Cra.RESPONSE for m in rig.wan):
            await asyncio.sleep(0.05)
    await rig.settle(ANSWER_S)  # anything else (a second response) would come now


# -- the NCP's own trust centre (in process, virtual time) ------------------------------------


def test_the_emulated_ncp_admits_only_a_device_whose_link_key_the_host_installed() -> None:
    """bellows' permit_with_link_key (importTransientKey) is what lets a device in: without
    it, or with another install code, or once permit joining closed, the NCP refuses."""
    clock = SerialSteppedClock(DEFAULT_START)
    medium = SimulatedMedium(clock)
    emulator = EzspEmulator(medium, EmulatorConfig(eui64=DEVICES["chf"][0]))
    esme, gsme = DEVICES["esme"][0], DEVICES["gsme"][0]

    def joiner(eui: bytes, code: bytes) -> JoiningDevice:
        return JoiningDevice(eui, code, medium.attach(eui, [(0, 11)], joined=False), clock)

    async def scenario() -> dict[str, Any]:
        await emulator.start()
        radio = await EzspRadio.open(
            RadioSettings(emulator.port, channel=11, use_thread=False), clock=clock
        )
        try:
            tc = emulator.trust_center
            right, wrong = joiner(esme, install_code_for(esme)), joiner(gsme, WRONG_CODE)
            await radio.permit(60)
            before = await right.join(tc)  # the host installed no key for it yet
            for eui in (esme, gsme):
                key = zt.KeyData(link_key_from_install_code(install_code_for(eui)))
                await radio.app.permit_with_link_key(zt.EUI64(eui[::-1]), key, time_s=60)
            joined, refused = await right.join(tc), await wrong.join(tc)
            await clock.sleep(1.0)  # bellows handles trustCenterJoinHandler
            known = radio.known_euis() - {radio.eui64}
            await clock.sleep(61.0)
            late = await joiner(DEVICES["ppmid"][0], install_code_for(esme)).join(tc)
            return {"before": before, "joined": joined, "refused": refused, "known": known,
                    "late": late, "transport": right.transport.joined}  # fmt: skip
        finally:
            await radio.close()
            await emulator.close()

    out = clock.run(scenario())
    assert not out["before"].accepted
    assert out["joined"].accepted and out["transport"], "on the HAN once the NCP let it in"
    assert out["refused"].reason is RejectReason.KEY_NOT_CONFIRMED, "wrong install code"
    assert out["known"] == {esme}, "the NCP reported the join, and only that one"
    assert out["late"].reason is RejectReason.JOINING_DISABLED, "permit joining closed"


def test_rig_check_probes_the_stand_in_stick_as_a_bench_stick(
    standin: Standin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _rig_file(tmp_path / "check.toml", standin.port, standin.devices)
    assert main(["rig", "check", str(path)]) == 0
    assert f"EUI-64 {standin.stick_eui}" in capsys.readouterr().out


# -- a bench that joins and answers ----------------------------------------------------------


@pytest.fixture()
def bench(standin: Standin, tmp_path: Path) -> Iterator[BenchRig]:
    path = _rig_file(tmp_path / "bench.toml", standin.port, standin.devices)
    rig = build_rig(path, capture=tmp_path / "host.pcap")
    try:
        assert isinstance(rig, BenchRig)
        rig.run(rig.start())
        yield rig
    finally:
        rig.close()


def test_a_stick_rig_file_is_a_bench_with_its_capabilities(tmp_path: Path) -> None:
    esme = DEVICES["esme"][0].hex().upper()
    rig = load_rig(_rig_file(tmp_path / "b.toml", "/dev/ttyUSB9", {"esme": esme}))

    assert rig_kind(rig) is RigKind.BENCH
    assert unbuildable(rig) == []
    caps = rig_capabilities(rig)
    assert {"ezsp", "esme", "chf", "gpf", "dcc", "2.4ghz"} <= caps
    assert not caps & {"virtual_time", "local_devices", "capture", "gsme"}


def test_the_real_esme_joins_through_the_stick_and_answers_a_read(bench: BenchRig) -> None:
    esme = bench.esme.eui
    assert bench.radio is not None
    assert esme in bench.radio.known_euis(), "zigpy knows it"
    entry = bench.chf.device_log.entries[esme]
    assert entry.joined and entry.link_key_hash, "the Device Log recorded the join"
    assert bench.hub.tunnels.tunnel_for(esme) is not None

    async def read() -> str:
        delivery = await bench.send(_ecs52(bench, 5000, esme))
        await _until_response(bench)
        return delivery.status.name

    assert bench.run(read()) == "SENT"
    [response] = [m for m in bench.wan if decode_message(m).frame.gs.cra is Cra.RESPONSE]
    gs = decode_message(response).frame.gs
    assert (gs.originator_counter, gs.business_originator) == (5000, esme)
    assert verify_mac(bench.dcc, decode_message(response).frame) is Check.VERIFIED
    assert bench.radio.counters.received > 0 and bench.radio.counters.delivery_failures == 0
    assert bench.capture is not None and bench.capture.frames_written > 0, "host-side pcap"


def test_the_real_esme_leaves_rejoins_through_the_stick_and_answers_again(
    standin: Standin, bench: BenchRig
) -> None:
    """After start the Device Log is closed for joining, yet a device in it that the stick
    let in again (after a leave, a power cut) must be admitted: the stick checked its key."""
    esme = bench.esme.eui
    tc = bench.hub.trust_center
    seen = len(tc.events)
    standin.process.send_signal(signal.SIGUSR1)  # the meter leaves; the stick reports it

    async def rejoin() -> list[str]:
        async with asyncio.timeout(JOIN_S):
            while True:
                kinds = [e.kind for e in tc.events[seen:] if e.eui == esme]
                if "left" in kinds and kinds[-1] in ("joined", "rejoined"):
                    await bench.settle(ANSWER_S)  # the meter opens its tunnel again
                    return kinds
                await asyncio.sleep(0.05)

    assert bench.run(rejoin()) == ["left", "joined"], "no refusal in between"
    assert bench.chf.device_log.entries[esme].joined
    assert not bench.chf.device_log.join_enabled, "joining was enabled for that join only"
    bench.wan.clear()

    async def read() -> None:
        await bench.send(_ecs52(bench, 5100, esme))
        await _until_response(bench)

    bench.run(read())
    [response] = [m for m in bench.wan if decode_message(m).frame.gs.cra is Cra.RESPONSE]
    gs = decode_message(response).frame.gs
    assert (gs.originator_counter, gs.business_originator) == (5100, esme)


def test_a_rejoin_the_stick_reports_while_the_hub_is_off_is_recorded_when_power_returns(
    standin: Standin, bench: BenchRig
) -> None:
    """The stick stays up while the simulated hub is off: a device that rejoins then is
    admitted by the hub's trust centre when its power returns, and is reached again."""
    esme = bench.esme.eui
    tc = bench.hub.trust_center
    seen = len(tc.events)
    asked: list[bool] = []  # a Tunnelling frame from the ESME: after its leave?

    def tap(captured: Any) -> None:
        frame = captured.frame
        if frame.src_eui64 == esme and frame.cluster_id == CLUSTER_TUNNELING:
            asked.append(any(e.kind == "left" and e.eui == esme for e in tc.events[seen:]))

    remove = bench.medium.add_tap(tap)
    old_tunnel = bench.hub.tunnels.tunnel_for(esme)

    async def cut_rejoin_restore() -> list[str]:
        bench.mains.set_output(False)
        standin.process.send_signal(signal.SIGUSR1)
        async with asyncio.timeout(JOIN_S):
            while not any(asked):  # rejoined through the stick, asking the dark hub
                await asyncio.sleep(0.05)
        during = [e.kind for e in tc.events[seen:] if e.eui == esme]
        bench.mains.set_output(True)
        async with asyncio.timeout(ANSWER_S):
            while bench.hub.tunnels.tunnel_for(esme) in (None, old_tunnel):
                await asyncio.sleep(0.05)  # the meter's RequestTunnel, retried, now answered
        await bench.settle(ANSWER_S)
        return during

    try:
        assert bench.run(cut_rejoin_restore()) == ["left"], "not admitted while the hub is off"
    finally:
        remove()
    assert [e.kind for e in tc.events[seen:] if e.eui == esme] == ["left", "joined"]
    bench.wan.clear()

    async def read() -> None:
        await bench.send(_ecs52(bench, 5200, esme))
        await _until_response(bench)

    bench.run(read())
    [response] = [m for m in bench.wan if decode_message(m).frame.gs.cra is Cra.RESPONSE]
    assert decode_message(response).frame.gs.originator_counter == 5200


@pytest.mark.skipif(not SCHEMA_DIR.is_dir(), reason=NO_XSD)
def test_a_duis_read_reaches_the_real_esme_and_survives_a_hub_power_cut(bench: BenchRig) -> None:
    dcc = DccClient(bench, lambda: None)
    bench.on_wan, bench.on_power = dcc.on_wan, dcc.on_power
    try:
        esme = bench.esme
        assert dcc.inventory.find("-".join(f"{b:02X}" for b in esme.eui)) is not None

        first = dcc.describe(dcc.submit(dcc.request("11.2", esme)).await_response(ANSWER_S))
        assert first["outcome"]["success"] is True
        assert first["header"]["businessOriginatorId"] == "-".join(f"{b:02X}" for b in esme.eui)

        async def cut() -> None:  # switched on the rig's loop, as the mains fixture does
            bench.mains.set_output(False)
            await asyncio.sleep(1.0)
            bench.mains.set_output(True)

        bench.run(cut())
        assert [e.kind for e in bench.power_events] == [PowerEvent.OUTAGE, PowerEvent.RESTORED]

        async def tunnel_back() -> None:  # the meter reopens its tunnel on its own retry
            async with asyncio.timeout(JOIN_S):
                while bench.hub.tunnels.tunnel_for(esme.eui) is None:
                    await asyncio.sleep(0.1)

        bench.run(tunnel_back())
        again = dcc.describe(dcc.submit(dcc.request("11.2", esme)).await_response(ANSWER_S))
        assert again["outcome"]["success"] is True
    finally:
        dcc.close()


@pytest.mark.skipif(not SCHEMA_DIR.is_dir(), reason=NO_XSD)
def test_a_gsme_and_a_ppmid_join_too_and_the_gsme_answers_after_its_wake(tmp_path: Path) -> None:
    """Dual band: the GSME is on the stick's sub-GHz PHY and wakes (every 5 s on the stand-in)
    to fetch what the hub queued for it; the PPMID is on 2.4 GHz like the ESME."""
    three = _start_standin("esme,gsme,ppmid")
    try:
        path = _rig_file(tmp_path / "three.toml", three.port, three.devices, sub_ghz=True)
        rig = build_rig(path)
        try:
            assert isinstance(rig, BenchRig)
            rig.run(rig.start())
            tc = rig.hub.trust_center
            roles = {name: tc.role_of(device.eui) for name, device in rig.real.items()}
            assert roles == {"esme": JoinRole.ALWAYS_ON, "gsme": JoinRole.SLEEPY,
                             "ppmid": JoinRole.ALWAYS_ON}  # fmt: skip
            assert rig.gsme.eui in rig.hub.mirrors, "the GSME asked the GPF for its mirror"
            dcc = DccClient(rig, lambda: None)
            rig.on_wan, rig.on_power = dcc.on_wan, dcc.on_power
            try:
                submission = dcc.submit(dcc.request("11.2", rig.gsme))
                summary = dcc.describe(submission.await_response(ANSWER_S))
                assert summary["outcome"]["success"] is True
                gsme_id = "-".join(f"{b:02X}" for b in rig.gsme.eui)
                assert summary["header"]["businessOriginatorId"] == gsme_id
            finally:
                dcc.close()
        finally:
            rig.close()
    finally:
        _stop(three.process)


def test_a_folder_pki_with_only_the_meters_certificates_serves_the_bench(
    standin: Standin, tmp_path: Path
) -> None:
    """The PKI as a bench has it: ``gbhil smki export`` of the test PKI the meters were
    provisioned from, holding the hub's private keys but only the ESME's certificates."""
    folder = tmp_path / "pki"
    assert main(["smki", "export", "--seed", str(SEED), "--with-device-keys", str(folder)]) == 0
    esme = DEVICES["esme"][0]
    for key in folder.glob(f"{esme.hex()}-*.key"):
        key.unlink()  # the meter's private keys stay in the meter
    assert list(folder.glob(f"{esme.hex()}-*.pem"))
    path = _rig_file(tmp_path / "folder.toml", standin.port, standin.devices,
                     pki=f'folder = "{folder}"')  # fmt: skip
    rig = build_rig(path)
    try:
        assert isinstance(rig, BenchRig) and rig.keystore.ds_private(esme) is None
        rig.run(rig.start())

        async def read() -> None:
            await rig.send(_ecs52(rig, 7000, esme))
            await _until_response(rig)

        rig.run(read())
        [response] = [m for m in rig.wan if decode_message(m).frame.gs.cra is Cra.RESPONSE]
        assert verify_mac(rig.dcc, decode_message(response).frame) is Check.VERIFIED
    finally:
        rig.close()


#: A bench's supplies on pyvisa-sim: the hub's mains, and an auxiliary supply whose channel 2
#: drives the contactor in the real ESME's 230 V feed (as in rigs/bench-example.toml).
BENCH_SUPPLIES = """
[[instrument]]
name = "psu"
resource = "TCPIP0::192.168.0.32::inst0::INSTR"
driver = "rigol-dp832"
backend = "@sim"
model = "DP832"
serial = "DP8C000000001"
role = "mains"
channel = 1

[[instrument]]
name = "aux"
resource = "TCPIP0::192.168.0.36::inst0::INSTR"
driver = "auto"
backend = "@sim"
model = "E36312A"
serial = "MY00000036"
role = "supply"
channel = 1

[[relay]]
name = "esme-contactor"
instrument = "aux"
channel = 2
"""


def test_a_mains_cut_powers_down_the_hub_and_opens_the_real_esmes_contactor(
    standin: Standin, tmp_path: Path
) -> None:
    path = _rig_file(tmp_path / "supplies.toml", standin.port, standin.devices,
                     instruments=BENCH_SUPPLIES, relays={"esme": "esme-contactor"})  # fmt: skip
    assert "psu" in rig_capabilities(load_rig(path))
    rig = build_rig(path)
    try:
        assert isinstance(rig, BenchRig)
        rig.run(rig.start())
        contactor, channel = rig.relays["esme"]
        assert contactor.output_enabled(channel), "the ESME starts fed"

        async def cut() -> tuple[bool, bool]:
            rig.mains.set_output(False)
            during = contactor.output_enabled(channel)
            await asyncio.sleep(0.5)
            rig.mains.set_output(True)
            return during, contactor.output_enabled(channel)

        assert rig.run(cut()) == (False, True)
        assert [e.kind for e in rig.power_events] == [PowerEvent.OUTAGE, PowerEvent.RESTORED]
    finally:
        rig.close()


# -- what the bench rig refuses ----------------------------------------------------------------


def test_a_device_with_a_wrong_install_code_does_not_join_and_start_names_it(
    standin: Standin, tmp_path: Path
) -> None:
    path = _rig_file(tmp_path / "wrong.toml", standin.port, standin.devices,
                     codes={"esme": WRONG_CODE})  # fmt: skip
    rig = build_bench_rig(path, join_timeout=JOIN_S / 6)
    try:
        with pytest.raises(RigBuildError, match=r"esme 'esme' \(00DB1234567890A0\) did not join"):
            rig.run(rig.start())
        assert not rig.chf.device_log.entries[DEVICES["esme"][0]].joined
        assert rig.hub.trust_center.role_of(DEVICES["esme"][0]) is None
    finally:
        rig.close()


def test_a_join_the_stick_allowed_but_the_device_log_refused_is_named_with_its_reason(
    standin: Standin, tmp_path: Path
) -> None:
    path = _rig_file(tmp_path / "closed.toml", standin.port, standin.devices)
    rig = build_bench_rig(path, join_timeout=JOIN_S / 6)
    try:
        rig.chf.device_log.join_deadline = rig.clock.now() - timedelta(days=1)
        with pytest.raises(
            RigBuildError,
            match=r"esme 'esme' \(00DB1234567890A0\) was let in by "
            r"the stick but the CHF Device Log refused it \(JOIN_WINDOW_CLOSED\)",
        ):
            rig.run(rig.start())
        assert rig.hub.trust_center.role_of(DEVICES["esme"][0]) is None
    finally:
        rig.close()


def test_a_simulated_device_or_an_hht_at_the_stick_is_refused(tmp_path: Path) -> None:
    devices = {r: DEVICES[r][0].hex().upper() for r in ("esme", "ppmid")}
    path = _rig_file(tmp_path / "sim.toml", "/dev/ttyUSB9", devices, simulated=("ppmid",))

    [problem] = unbuildable(load_rig(path))
    assert "'ppmid'" in problem and "no radio of its own" in problem
    with pytest.raises(RigBuildError, match=r"'ppmid'.*no radio of its own"):
        build_rig(path)

    hht = {"esme": devices["esme"], "hht": DEVICES["hht"][0].hex().upper()}
    [problem] = unbuildable(load_rig(_rig_file(tmp_path / "hht.toml", "/dev/ttyUSB9", hht)))
    assert "'hht'" in problem and "an HHT cannot be on a bench rig" in problem


def test_a_stick_that_is_not_the_chf_is_refused_naming_both(tmp_path: Path) -> None:
    other = _start_standin("esme", "--stick-eui", "00124B0000000001")
    try:
        path = _rig_file(tmp_path / "other.toml", other.port, other.devices)
        with pytest.raises(RigBuildError, match="is 00124B0000000001, the rig's CHF is "
                           "00DB1234567890A2"):  # fmt: skip
            build_rig(path)
        with pytest.raises(RigBuildError, match="is 00124B0000000001"):  # the port was released
            build_rig(path)
    finally:
        _stop(other.process)


def test_a_simulated_mains_cannot_feed_a_real_esme(tmp_path: Path) -> None:
    mains = '[[instrument]]\nname = "mains"\ndriver = "simulated"\nrole = "mains"\n'
    esme = {"esme": DEVICES["esme"][0].hex().upper()}
    path = _rig_file(tmp_path / "m.toml", "/dev/ttyUSB9", esme, instruments=mains)
    [problem] = unbuildable(load_rig(path))
    assert "'esme'" in problem and "cannot feed a real meter" in problem


def test_a_pki_generated_afresh_is_refused_before_the_stick_is_opened(tmp_path: Path) -> None:
    esme = DEVICES["esme"][0].hex().upper()
    path = _rig_file(tmp_path / "b.toml", "/dev/ttyUSB9", {"esme": esme})
    fresh = tmp_path / "fresh.toml"
    fresh.write_text(path.read_text().replace(f"seed = {SEED}\n", ""))
    with pytest.raises(RigBuildError, match="provisioned with"):
        build_rig(fresh)


def test_a_missing_stick_is_a_build_error_naming_the_port(tmp_path: Path) -> None:
    esme = DEVICES["esme"][0].hex().upper()
    missing = tmp_path / "no-such-tty"
    with pytest.raises(RigBuildError, match=str(missing)):
        build_rig(_rig_file(tmp_path / "b.toml", str(missing), {"esme": esme}))
