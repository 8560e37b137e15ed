"""Install-code joining: AES-MMO vectors, the Transport-Key exchange, accept/reject, leave."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gbhil.devices.chf import DeviceLog, DeviceLogEntry
from gbhil.han import SimulatedMedium
from gbhil.han.joining import (
    JOIN_STEP_S,
    JoinError,
    JoiningDevice,
    JoinRole,
    RejectReason,
    TrustCenter,
    aes_mmo,
    check_install_code,
    hmac_mmo,
    install_code_crc,
    link_key_from_install_code,
    mmo_pad,
    open_transport_key,
    seal_transport_key,
    verify_key_hash,
    with_crc,
)
from gbhil.simulator import DEFAULT_START, SteppedClock

CHF = bytes.fromhex("00DB1234567890A2")
ESME = bytes.fromhex("00DB1234567890A0")
PPMID = bytes.fromhex("00DB1234567890A4")
#: Zigbee spec example install code (16 octets + CRC 0xB5C3, little-endian).
SPEC_CODE = bytes.fromhex("83FED3407A939723A5C639B26916D505C3B5")
SPEC_KEY = bytes.fromhex("66B6900981E1EE3CA4206B6B861C02BB")
OTHER_CODE = with_crc(bytes(range(16)))
NETWORK_KEY = bytes.fromhex("0102030405060708090A0B0C0D0E0F10")


# --- AES-MMO, HMAC-MMO, install codes ------------------------------------------------


@pytest.mark.parametrize(
    "data, digest",
    [
        # Zigbee spec: install code -> link key
        ("83FED3407A939723A5C639B26916D505C3B5", "66B6900981E1EE3CA4206B6B861C02BB"),
        ("83FED3407A939723A5C639FF4C12", "58C1828CF7F1C3FE29E7B1024AD84BFA"),
        # Zigbee spec C.6.1: the inner hash of the keyed-hash example
        ("76777475727370717E7F7C7D7A7B7879C0", "3C3D537529A7A9A03F669DCD886CB52C"),
        (
            "1C1D1E1F18191A1B14151617101112133C3D537529A7A9A03F669DCD886CB52C",
            "4512807BF94CB3400F0E2C25FB76E999",
        ),
    ],
)
def test_aes_mmo_test_vectors(data: str, digest: str) -> None:
    assert aes_mmo(bytes.fromhex(data)) == bytes.fromhex(digest)


def test_link_key_of_the_spec_install_code() -> None:
    assert link_key_from_install_code(SPEC_CODE) == SPEC_KEY


def test_keyed_hash_test_vector() -> None:
    key = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
    assert hmac_mmo(key, b"\xc0") == bytes.fromhex("4512807BF94CB3400F0E2C25FB76E999")


@pytest.mark.parametrize(
    "code",
    [
        "83FED3407A932B70",
        "83FED3407A93972397FC",
        "83FED3407A939723A5C639FF4C12",
        "83FED3407A939723A5C639B26916D505C3B5",
    ],
)
def test_install_code_crc_of_every_length(code: str) -> None:
    raw = bytes.fromhex(code)
    assert with_crc(raw[:-2]) == raw
    assert check_install_code(raw) == raw


def test_install_code_crc_value() -> None:
    assert install_code_crc(SPEC_CODE[:-2]) == 0xB5C3


@pytest.mark.parametrize(
    "code, message",
    [
        (bytes.fromhex("FFFED3407A939723A5C639B26916D505C3B5"), "CRC 0xB5C3 != computed 0xB1EE"),
        (bytes.fromhex("001122"), "must be 8, 10, 14 or 18 octets"),
        (b"", "must be 8, 10, 14 or 18 octets"),
    ],
)
def test_bad_install_codes_are_refused_precisely(code: bytes, message: str) -> None:
    with pytest.raises(JoinError, match=message):
        check_install_code(code)
    with pytest.raises(JoinError):
        link_key_from_install_code(code)


def test_with_crc_refuses_odd_lengths() -> None:
    with pytest.raises(JoinError, match="6, 8, 12 or 16 octets"):
        with_crc(bytes(7))


@given(st.binary(max_size=300))
def test_property_mmo_padding_is_whole_blocks_ending_in_the_bit_length(data: bytes) -> None:
    padded = mmo_pad(data)
    assert len(padded) % 16 == 0
    assert padded.startswith(data + b"\x80")
    assert int.from_bytes(padded[-2:], "big") == 8 * len(data)


def test_long_mmo_padding_uses_the_32_bit_length_form() -> None:
    data = bytes(8192)  # 65536 bits: too long for the 16-bit length field
    padded = mmo_pad(data)
    assert len(padded) % 16 == 0
    assert padded[-6:] == (65536).to_bytes(4, "big") + b"\x00\x00"


# --- Transport-Key ------------------------------------------------------------------


def test_transport_key_opens_only_with_the_same_link_key() -> None:
    key = link_key_from_install_code(SPEC_CODE)
    blob = seal_transport_key(key, NETWORK_KEY, 3, CHF, ESME, 42)
    got = open_transport_key(key, ESME, blob)
    assert (got.key, got.sequence, got.trust_center) == (NETWORK_KEY, 3, CHF)
    assert NETWORK_KEY not in blob  # the network key never travels in clear
    with pytest.raises(JoinError, match="MIC does not verify"):
        open_transport_key(link_key_from_install_code(OTHER_CODE), ESME, blob)
    tampered = bytearray(blob)
    tampered[20] ^= 1
    with pytest.raises(JoinError, match="MIC does not verify"):
        open_transport_key(key, ESME, bytes(tampered))
    with pytest.raises(JoinError, match="addressed to another device"):
        open_transport_key(key, PPMID, blob)
    with pytest.raises(JoinError, match="too short"):
        open_transport_key(key, ESME, blob[:10])


def test_verify_key_hash_depends_on_the_key() -> None:
    a = verify_key_hash(SPEC_KEY)
    assert len(a) == 16 and a != verify_key_hash(link_key_from_install_code(OTHER_CODE))


# --- trust center against the CHF Device Log -------------------------------------------


class Rig:
    def __init__(self, entries: list[DeviceLogEntry]) -> None:
        self.clock = SteppedClock()
        self.medium = SimulatedMedium(self.clock)
        self.medium.attach(CHF, [(0, 11)])
        self.log = DeviceLog(join_enabled=True)  # the DCC enabled joining (class 104 attr 2)
        for entry in entries:
            assert self.log.add(entry)
        self.changed: list[Any] = []
        self.tc = TrustCenter(
            CHF, self.log, self.clock, network_key=NETWORK_KEY,
            on_device_log_changed=self.changed.append,
        )  # fmt: skip
        self.transport = self.medium.attach(ESME, [(0, 11)], joined=False)

    def device(self, code: bytes = SPEC_CODE, eui: bytes = ESME) -> JoiningDevice:
        transport = self.transport if eui == ESME else self.medium.attach(eui, [(0, 11)])
        return JoiningDevice(eui, code, transport, self.clock)

    def run(self, coro: Any) -> Any:
        return self.clock.run(coro)


def test_join_accepted_records_the_hashed_link_key_and_reports_the_log_change() -> None:
    rig = Rig([DeviceLogEntry(ESME, install_code=SPEC_CODE)])
    dev = rig.device()
    result = rig.run(dev.join(rig.tc))
    assert result.accepted and result.trust_center == CHF
    assert rig.transport.joined
    assert dev.network_key is not None and dev.network_key.key == NETWORK_KEY
    entry = rig.log.entries[ESME]
    assert entry.joined
    assert entry.link_key_hash == hashlib.sha256(SPEC_KEY).digest()[:16]
    assert rig.changed == [entry]  # the CHF model raises CS14 from this
    assert rig.tc.accepted == 1 and rig.tc.rejected == 0
    assert rig.tc.role_of(ESME) is JoinRole.ALWAYS_ON
    assert [e.kind for e in rig.tc.events] == ["joined"]
    assert rig.clock.monotonic() == pytest.approx(3 * JOIN_STEP_S)  # virtual time only


def _rejected(rig: Rig, dev: JoiningDevice, reason: RejectReason) -> None:
    result = rig.run(dev.join(rig.tc))
    assert not result.accepted and result.reason is reason
    assert not dev.transport.joined
    assert dev.network_key is None
    assert rig.tc.rejections[reason] == 1 and rig.tc.rejected == 1 and rig.tc.accepted == 0
    assert rig.tc.events[-1].kind == "rejected" and rig.tc.events[-1].reason is reason
    assert rig.changed == []
    assert rig.tc.role_of(dev.eui) is None
    entry = rig.log.entries.get(dev.eui)
    if entry is not None:
        assert not entry.joined and entry.link_key_hash == b""


def test_join_rejected_when_not_in_the_device_log() -> None:
    rig = Rig([DeviceLogEntry(PPMID, install_code=SPEC_CODE)])
    _rejected(rig, rig.device(), RejectReason.NOT_IN_DEVICE_LOG)


def test_join_rejected_with_the_wrong_install_code() -> None:
    rig = Rig([DeviceLogEntry(ESME, install_code=SPEC_CODE)])
    _rejected(rig, rig.device(OTHER_CODE), RejectReason.KEY_NOT_CONFIRMED)
    assert "MIC does not verify" in rig.tc.events[-1].detail


def test_join_rejected_when_the_entry_has_no_install_code() -> None:
    rig = Rig([DeviceLogEntry(ESME)])
    _rejected(rig, rig.device(), RejectReason.NO_INSTALL_CODE)


def test_join_rejected_after_the_join_timeout() -> None:
    rig = Rig([DeviceLogEntry(ESME, install_code=SPEC_CODE)])
    rig.log.join_deadline = DEFAULT_START + timedelta(seconds=60)
    rig.clock.advance(120)
    _rejected(rig, rig.device(), RejectReason.JOIN_WINDOW_CLOSED)


def test_join_inside_the_window_is_accepted() -> None:
    rig = Rig([DeviceLogEntry(ESME, install_code=SPEC_CODE)])
    rig.log.join_deadline = DEFAULT_START + timedelta(seconds=60)
    rig.clock.advance(59)
    assert rig.run(rig.device().join(rig.tc)).accepted


def test_join_rejected_while_joining_is_not_enabled_or_the_trust_center_is_off() -> None:
    rig = Rig([DeviceLogEntry(ESME, install_code=SPEC_CODE)])
    rig.log.join_enabled = False
    _rejected(rig, rig.device(), RejectReason.JOINING_DISABLED)
    rig2 = Rig([DeviceLogEntry(ESME, install_code=SPEC_CODE)])
    rig2.tc.powered = False
    _rejected(rig2, rig2.device(), RejectReason.TRUST_CENTER_OFF)


def test_a_joined_device_may_rejoin_after_the_window_closed() -> None:
    rig = Rig([DeviceLogEntry(ESME, install_code=SPEC_CODE)])
    dev = rig.device()
    assert rig.run(dev.join(rig.tc)).accepted
    rig.log.join_enabled = False
    assert rig.run(dev.join(rig.tc)).accepted
    assert [e.kind for e in rig.tc.events] == ["joined", "rejoined"]


def test_rejected_device_cannot_transmit_on_the_medium() -> None:
    from gbhil.han import ApsFrame, MediumError

    rig = Rig([])
    rig.transport.medium._set_joined(ESME, True)  # attached as joined, but not let in
    dev = rig.device()
    assert not rig.run(dev.join(rig.tc)).accepted
    with pytest.raises(MediumError, match="has not joined"):
        rig.medium.transmit(ApsFrame(ESME, CHF, 0x0704, b"\x11\x00\x00"))


def test_leave_takes_the_device_off_and_it_can_join_again() -> None:
    rig = Rig([DeviceLogEntry(ESME, install_code=SPEC_CODE)])
    dev = rig.device()

    async def scenario() -> None:
        assert (await dev.join(rig.tc)).accepted
        await dev.leave()
        assert not rig.transport.joined
        assert rig.tc.role_of(ESME) is None and not rig.log.entries[ESME].joined
        assert (await dev.join(rig.tc)).accepted

    rig.run(scenario())
    assert [e.kind for e in rig.tc.events] == ["joined", "left", "joined"]
    assert len(rig.changed) == 2


def test_trust_center_removal_makes_the_member_leave() -> None:
    rig = Rig([DeviceLogEntry(ESME, install_code=SPEC_CODE)])
    dev = rig.device()

    async def scenario() -> bool:
        assert (await dev.join(rig.tc, leave=dev.leave)).accepted
        return await rig.tc.remove(ESME)

    assert rig.run(scenario())
    assert not rig.transport.joined and rig.tc.members == {}
    assert [e.kind for e in rig.tc.events] == ["joined", "left", "removed"]


def test_join_listeners_and_verify_without_join_in_progress() -> None:
    rig = Rig([DeviceLogEntry(ESME, install_code=SPEC_CODE)])
    seen: list[str] = []
    rig.tc.listeners.append(lambda e: seen.append(e.kind))
    assert not rig.tc.verify_key(ESME, verify_key_hash(SPEC_KEY))  # no Transport-Key sent yet
    assert seen == ["rejected"] and rig.tc.rejections[RejectReason.KEY_NOT_CONFIRMED] == 1
    offer = rig.tc.request_join(ESME)
    assert offer.transport_key is not None
    assert not rig.tc.verify_key(ESME, bytes(16))  # wrong proof
    assert rig.log.entries[ESME].link_key_hash == b""
