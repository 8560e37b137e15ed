"""The Communications Hub Function: device log, sub-GHz settings, CCS and DBCH use cases.

The CHF is where the WAN meets the HAN: it keeps the CHF Device Log that
decides who may join (install codes, TC link key hashes), relays GBCS between
the DCC and the devices (gbhil.han.network), and reports its own state with
CS14 and DBCH alerts to the ACB.  Its GBCS use cases are DLMS COSEM, served
from ``devices/chf.toml`` with the class 104 methods bound to the device log.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gbhil.devices import credentials, firmware
from gbhil.devices.core import Alert, Command, Device, DeviceType, Handler, Outcome
from gbhil.devices.cosem import CosemServer, Profile, Result, load_profile, timestamp
from gbhil.devices.trust import Role
from gbhil.gbcs.axdr import (
    Array,
    BitString,
    Boolean,
    Data,
    Enum,
    Int8,
    OctetString,
    Structure,
    Uint8,
    Uint16,
)
from gbhil.gbcs.dlms import AccessRequest, DataNotification, parse_obis
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.frame import decode_frame
from gbhil.han.channels import ChannelError, ChannelMask, PageChannel

DEFAULT_PROFILE = Path(__file__).resolve().parents[2] / "devices" / "chf.toml"
#: The CHF Device Log holds the HAN devices allowed to join (GBCS: at least 16 entries).
DEVICE_LOG_CAPACITY = 16
#: Zigbee install codes are 6, 8, 12 or 16 bytes plus a CRC-16 (gbcs-facts; seed 004 E081111).
INSTALL_CODE_LENGTHS = (8, 10, 14, 18, 16)
ZIGBEE_NETWORK_CONTROL = 104
CHF_DEVICE_LOG = parse_obis("0-0:30.3.0.255")
CHF_DEVICE_LOG_2 = parse_obis("0-0:30.3.1.255")
ATTR_JOIN_ENABLED = 2
ATTR_JOIN_TIMEOUT = 3
ATTR_DEVICE_LIST = 4
METHOD_REGISTER = 1
METHOD_UNREGISTER = 2
METHOD_BACKUP = 4
METHOD_RESTORE = 5
SUBGHZ_CONFIG = parse_obis("0-0:94.44.10.0")
SUBGHZ_SCAN_REQUEST = parse_obis("0-0:94.44.10.1")
SUBGHZ_OPERATING_CHANNEL = parse_obis("0-0:94.44.10.2")
#: The four channel-page masks lead the DBCH03/DBCH04 configuration structure.
SUBGHZ_MASK_COUNT = 4
#: CHF use cases (message codes) served by the COSEM object model.
CHF_DLMS_CODES = frozenset(
    {
        0x0001,  # CCS01 add device to CHF device log
        0x0002,  # CCS02 remove device
        0x0003,  # CCS03 restore CHF device log
        0x0004,  # CCS05/CCS04 read device log / check HAN comms
        0x010F,  # CCS06
        0x00FE,  # CCS07 read CHF device logs (backup)
        0x0059,  # ECS52 read CH firmware version
        0x0092,  # ECS26i CHF identity
        0x00FA,  # ECS26n CH identity and type
        0x0093,  # ECS35c CHF event log
        0x0094,  # ECS35d CHF security log
        0x010A,  # DBCH01 read sub-GHz channel
        0x010B,  # DBCH02 read sub-GHz channel log
        0x010C,  # DBCH03 read sub-GHz configuration
        0x010D,  # DBCH04 set sub-GHz configuration
        0x010E,  # DBCH05 request sub-GHz channel scan
    }
)
CS14_DEVICE_LOG_ALERT = 0x0018
ALERT_CHF_DEVICE_LOG_CHANGED = 0x8F12
DBCH09_CONFIG_CHANGED = 0x0113
ALERT_SUBGHZ_CONFIG_CHANGED = 0x8F2A
GENERIC_NON_CRITICAL_ALERT = 0x1001
ALERT_LIMITED_DUTY_CYCLE = 0x8F20
ALERT_SUBGHZ_CHANNEL_CHANGED = 0x8F26
ALERT_DUTY_CYCLE_DISCARD = 0x8F2C
ALERT_NO_SUBGHZ_CAPACITY = 0x8F2D
#: HAN alert code -> the DBCH use case (message code) that carries it.
HAN_ALERT_MESSAGE_CODES = {
    ALERT_LIMITED_DUTY_CYCLE: 0x0110,  # DBCH06
    ALERT_SUBGHZ_CHANNEL_CHANGED: 0x0111,  # DBCH07
    ALERT_DUTY_CYCLE_DISCARD: 0x0114,  # DBCH10
    ALERT_NO_SUBGHZ_CAPACITY: 0x0115,  # DBCH11
}
FAILURE_TO_DELIVER = 0x00D5
ALERT_DELIVERY_FAILURE = 0x8F84
DBCH08_SCAN_OUTCOME = 0x0112
ALERT_SCAN_ASSESSMENT = 0x8F28
#: Default per-device HAN statistics for the CCS05/CCS04 view until traffic updates them.
DEFAULT_LINK_QUALITY = (-40, -60, -90, 1, 0, 0)


@dataclass(slots=True)
class DeviceLogEntry:
    """One CHF Device Log entry."""

    eui: bytes
    key_type: int = 0  # CCS01 key type (the install code kind); CCS01 carries no device type
    install_code: bytes | None = None
    link_key_hash: bytes = b""  # hashed TC link key once the device has joined
    joined: bool = False
    last_seen: datetime | None = None

    @property
    def may_join(self) -> bool:
        return self.install_code is not None and not self.joined


@dataclass(slots=True)
class DeviceLog:
    entries: dict[bytes, DeviceLogEntry] = field(default_factory=dict)
    capacity: int = DEVICE_LOG_CAPACITY
    join_enabled: bool = False
    join_deadline: datetime | None = None

    def add(self, entry: DeviceLogEntry) -> bool:
        if entry.eui not in self.entries and len(self.entries) >= self.capacity:
            return False
        old = self.entries.get(entry.eui)
        if old is not None:
            # GBCS CCS01: an existing entry keeps its link key; the key parameter is ignored.
            entry.link_key_hash, entry.joined = old.link_key_hash, old.joined
            entry.install_code = old.install_code
        self.entries[entry.eui] = entry
        return True

    def remove(self, eui: bytes) -> bool:
        return self.entries.pop(eui, None) is not None

    def record_join(self, eui: bytes, link_key: bytes) -> None:
        e = self.entries[eui]
        e.joined = True
        e.link_key_hash = hashlib.sha256(link_key).digest()[:16]

    def backup(self) -> list[tuple[bytes, bytes]]:
        return [(e.eui, e.link_key_hash) for e in self.entries.values()]


class Chf(Device):
    """Communications Hub Function."""

    DEVICE_TYPE = DeviceType.CHF

    def __init__(
        self, eui: bytes, keys: Any, clock: Any, profile: Profile | str | Path | None = None
    ) -> None:
        if profile is None or isinstance(profile, str | Path):
            profile = load_profile(profile or DEFAULT_PROFILE)
        super().__init__(eui, keys, clock, profile)
        self.device_log = DeviceLog()
        self.extended_pan_id = hashlib.sha256(b"gbhil-epid" + eui).digest()[:8]
        self.cosem = CosemServer(profile, self)
        self._pending_alerts: list[Alert] = []
        #: The sub-GHz page/channel the hub's radio is on (told by the HAN side).
        self.subghz_channel: PageChannel | None = None
        self._retune_pending = False
        self.cosem.on_get(
            1, SUBGHZ_OPERATING_CHANNEL, 2, lambda _sel: self._operating_channel()
        )
        self.cosem.on_method(
            ZIGBEE_NETWORK_CONTROL,
            CHF_DEVICE_LOG,
            METHOD_REGISTER,
            self._register,
            self._check_register,
        )
        self.cosem.on_method(
            ZIGBEE_NETWORK_CONTROL, CHF_DEVICE_LOG, METHOD_UNREGISTER, self._unregister
        )
        self.cosem.on_method(ZIGBEE_NETWORK_CONTROL, CHF_DEVICE_LOG, METHOD_RESTORE, self._restore)
        for obis in (CHF_DEVICE_LOG, CHF_DEVICE_LOG_2):
            self.cosem.on_method(ZIGBEE_NETWORK_CONTROL, obis, METHOD_BACKUP, self._backup)
        self.cosem.on_get(
            ZIGBEE_NETWORK_CONTROL,
            CHF_DEVICE_LOG,
            ATTR_DEVICE_LIST,
            lambda _sel: self._device_list(),
        )
        self.cosem.on_get(
            ZIGBEE_NETWORK_CONTROL,
            CHF_DEVICE_LOG,
            ATTR_JOIN_ENABLED,
            lambda _sel: Boolean(self.device_log.join_enabled),
            self._set_join_enabled,
        )

    # -- wiring ----------------------------------------------------------------------------
    def handlers(self) -> dict[int, Handler]:
        return {
            **firmware.handlers(),
            **credentials.handlers(),
            **dict.fromkeys(CHF_DLMS_CODES, _handle_dlms),
        }

    def inject_recorded_failure(
        self, message_code: int, command: Any, recorded_response: Any
    ) -> bool:
        from gbhil.devices.cosem import inject_recorded_failure
        from gbhil.gbcs.dlms import AccessResponse

        if isinstance(command, AccessRequest) and isinstance(recorded_response, AccessResponse):
            return inject_recorded_failure(self.cosem, command, recorded_response) is not None
        return super().inject_recorded_failure(message_code, command, recorded_response)

    # -- class 104 methods -------------------------------------------------------------------
    def _check_register(self, cmd: Command | None, p: Data) -> int:
        try:
            eui, _key_type, code, _ = _items(p, 4)
        except ValueError:
            return Result.TYPE_UNMATCHED
        if not isinstance(eui, OctetString) or len(eui.value) != 8:
            return Result.TYPE_UNMATCHED
        if not isinstance(code, OctetString) or len(code.value) not in INSTALL_CODE_LENGTHS:
            return Result.OTHER_REASON
        if eui.value not in self.device_log.entries and (
            len(self.device_log.entries) >= self.device_log.capacity
        ):
            return Result.OTHER_REASON
        return Result.SUCCESS

    def _register(self, cmd: Command | None, p: Data) -> tuple[int, Data | None]:
        eui, key_type, code, _ = _items(p, 4)
        assert isinstance(eui, OctetString) and isinstance(code, OctetString)
        kind = key_type.value if isinstance(key_type, Enum) else 0
        self.device_log.add(DeviceLogEntry(eui.value, kind, code.value))
        self._device_log_changed()
        return Result.SUCCESS, None

    def _unregister(self, cmd: Command | None, p: Data) -> tuple[int, Data | None]:
        if not isinstance(p, OctetString) or len(p.value) != 8:
            return Result.TYPE_UNMATCHED, None
        if not self.device_log.remove(p.value):
            return Result.OTHER_REASON, None
        self._device_log_changed()
        return Result.SUCCESS, None

    def _restore(self, cmd: Command | None, p: Data) -> tuple[int, Data | None]:
        try:
            _, entries = _items(p, 2)
        except ValueError:
            return Result.TYPE_UNMATCHED, None
        if not isinstance(entries, Array):
            return Result.TYPE_UNMATCHED, None
        restored = []
        for item in entries.items:
            eui, key_hash = _items(item, 2)
            if not isinstance(eui, OctetString) or not isinstance(key_hash, OctetString):
                return Result.TYPE_UNMATCHED, None
            restored.append(
                DeviceLogEntry(eui.value, 0, None, key_hash.value, joined=bool(key_hash.value))
            )
        if len(restored) > self.device_log.capacity:
            return Result.OTHER_REASON, None
        self.device_log.entries = {e.eui: e for e in restored}
        self._device_log_changed()
        return Result.SUCCESS, None

    def _backup(self, cmd: Command | None, p: Data) -> tuple[int, Data | None]:
        return Result.SUCCESS, self._backup_structure()

    def _backup_structure(self) -> Structure:
        return Structure(
            (
                timestamp(self.clock.now()),
                OctetString(self.extended_pan_id),
                Array(
                    tuple(
                        Structure((OctetString(e), OctetString(h)))
                        for e, h in self.device_log.backup()
                    )
                ),
            )
        )

    def _set_join_enabled(self, v: Data) -> None:
        self.device_log.join_enabled = isinstance(v, Boolean) and bool(v.value)

    def _device_list(self) -> Array:
        """CCS05/CCS04 view: each device with its HAN link statistics."""
        rows = []
        for e in self.device_log.entries.values():
            rssi, lqi, floor, hops, fails, _ = DEFAULT_LINK_QUALITY
            rows.append(
                Structure(
                    (
                        OctetString(e.eui),
                        BitString(8, b"\xc8" if e.joined else b"\x80"),
                        Int8(rssi),
                        Int8(lqi),
                        Int8(floor),
                        Uint8(hops),
                        Uint8(fails),
                        Uint8(0),
                        timestamp(e.last_seen or self.clock.now()),
                        Uint8(1 if e.joined else 0),
                        Uint8(0),
                        Uint8(100),
                        Uint8(1),
                        Uint8(1),
                    )
                )
            )
        return Array(tuple(rows))

    # -- sub-GHz channel plan ---------------------------------------------------------------
    def _operating_channel(self) -> BitString:
        pc = self.subghz_channel
        mask = 0 if pc is None else ChannelMask.of(pc.page, [pc.channel]).encode()
        return BitString(32, mask.to_bytes(4, "big"))

    def subghz_allowed_channels(self) -> list[PageChannel]:
        """The channels the DBCH04 masks allow, page by page, lowest channel first."""
        config = self.cosem.read(1, SUBGHZ_CONFIG, 2)
        if not isinstance(config, Structure):
            return []
        out: list[PageChannel] = []
        for item in config.items[:SUBGHZ_MASK_COUNT]:
            if not isinstance(item, BitString):
                continue
            value = int.from_bytes(item.data, "big")
            try:
                mask = ChannelMask.decode(value)
            except ChannelError:
                continue  # an unused page (no channel selected)
            out.extend(PageChannel(mask.page, c) for c in sorted(mask.channels))
        return out

    def take_subghz_retune(self, current: PageChannel | None) -> PageChannel | None:
        """After a DBCH04: where the sub-GHz radio must go (None: it may stay).

        The hub leaves a channel the new masks no longer allow for the first one
        they do; choosing by noise (a scan) is the real CHF's business.
        """
        self.subghz_channel = current
        if not self._retune_pending:
            return None
        self._retune_pending = False
        allowed = self.subghz_allowed_channels()
        if not allowed or current in allowed:
            return None
        return allowed[0]

    # -- alerts ---------------------------------------------------------------------------
    def _device_log_changed(self) -> None:
        """CS14: the CHF reports every change of its device log to the ACB."""
        body = Structure(
            (
                Uint16(ALERT_CHF_DEVICE_LOG_CHANGED),
                timestamp(self.clock.now()),
                self._backup_structure(),
            )
        )
        self._pending_alerts.append(self._acb_alert(CS14_DEVICE_LOG_ALERT, body))

    def subghz_configuration_changed(self, config: Data) -> None:
        body = Structure((Uint16(ALERT_SUBGHZ_CONFIG_CHANGED), timestamp(self.clock.now()), config))
        self._pending_alerts.append(self._acb_alert(DBCH09_CONFIG_CHANGED, body))

    def han_device_log_changed(self, entry: Any = None) -> list[bytes]:
        """The HAN trust centre changed the log (a device joined): CS14 to the ACB, as bytes."""
        del entry
        self._device_log_changed()
        return [self.build_alert(a).encode() for a in self.take_alerts()]

    def undeliverable_alert(self, raw: bytes) -> list[bytes]:
        """0x8F84: a Remote Party message could not reach the ESME; tell its originator."""
        try:
            gs = decode_frame(raw).gs
        except GbcsError:
            return []
        ident = gs.business_originator + gs.business_target + gs.transaction_id
        body = Structure(
            (Uint16(ALERT_DELIVERY_FAILURE), timestamp(self.clock.now()), OctetString(ident))
        )
        alert = Alert(
            FAILURE_TO_DELIVER, DataNotification(0, body), gs.business_originator, critical=False
        )
        return [self.build_alert(alert).encode()]

    def han_alert(self, code: int, details: dict[str, Any]) -> list[bytes]:
        """Turn a HAN medium alert (duty cycle, channel change) into the CHF's GBCS alert.

        DBCH06/07/10 carry 8F20/8F26/8F2C with their bodies (gbcs-facts 3.1.5); the
        other duty-cycle codes have no own use case in public text and travel as a
        Generic Non-Critical Alert.
        """
        now = timestamp(self.clock.now())
        extra: tuple[Data, ...] = ()
        node = details.get("node")
        if code == ALERT_LIMITED_DUTY_CYCLE:
            extra = (OctetString(node if isinstance(node, bytes) else self.eui),)
        elif code == ALERT_SUBGHZ_CHANNEL_CHANGED:
            pc = details.get("channel")
            if node == self.eui and isinstance(pc, PageChannel):
                self.subghz_channel = pc
            mask = 0
            if pc is not None:
                mask = ChannelMask.of(pc.page, [pc.channel]).encode()
            extra = (Structure((BitString(32, mask.to_bytes(4, "big")), OctetString(b"\x00"))),)
        elif code == ALERT_DUTY_CYCLE_DISCARD:
            extra = (OctetString(_discarded_routing(details.get("frame"))),)
        message_code = HAN_ALERT_MESSAGE_CODES.get(code, GENERIC_NON_CRITICAL_ALERT)
        body = Structure((Uint16(code), now, *extra))
        return [self.build_alert(self._acb_alert(message_code, body)).encode()]

    def _acb_alert(self, code: int, body: Data) -> Alert:
        return Alert(code, DataNotification(0, body), self.keys.party(Role.ACB), critical=False)

    def take_alerts(self) -> list[Alert]:
        out, self._pending_alerts = self._pending_alerts, []
        return out


def _discarded_routing(frame: Any) -> bytes:
    """originator(8) || target(8) || CRA(1) || counter(8) of a tunnelled GBCS message."""
    payload = getattr(frame, "payload", b"") or b""
    at = payload.find(b"\xdf\x09")
    if at < 0 or len(payload) < at + 31:
        return bytes(25)
    gs = payload[at + 2 :]
    cra, counter, orig, target = gs[0:1], gs[1:9], gs[10:18], gs[19:27]
    return orig + target + cra + counter


def _items(d: Data, n: int) -> tuple[Data, ...]:
    if not isinstance(d, Structure) or len(d.items) != n:
        raise ValueError(f"expected a structure of {n}")
    return d.items


def _handle_dlms(device: Device, cmd: Command) -> Outcome:
    assert isinstance(device, Chf)
    if not isinstance(cmd.payload, AccessRequest):
        return Outcome(None)
    outcome = device.cosem.process(cmd.payload, cmd, device.clock.now()).outcome()
    request = cmd.payload
    if outcome.response is not None and any(
        s.obis == SUBGHZ_CONFIG and s.kind == 2 for s in request.specs
    ):
        device.subghz_configuration_changed(device.cosem.read(1, SUBGHZ_CONFIG, 2))
        device._retune_pending = True
    outcome.alerts.extend(device.take_alerts())
    return outcome
