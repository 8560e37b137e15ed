"""The simulated ESME: a DLMS COSEM server over the GBCS ESME object model.

Every DLMS ESME use case (ECS*, CS01a) goes through one handler into the
device's :class:`~gbhil.devices.cosem.CosemServer`, whose object list is the
shared model profile ``devices/esme.toml``.  What a real meter computes is
bound to device state here: the clock (shared virtual clock plus the offset
ECS70 sets), energy registers and profiles from a constant-power consumption
model, the load switch, the meter balance, the firmware version, and the
event and security logs the use cases append to and ECS35a/b read back.

The power model (:meth:`Esme.power_off` / :meth:`Esme.power_on`) stops
consumption during a supply outage and reports it: 0x8F57 "supply
interrupted" in a generic critical alert, and on restoration the ECS80 alert
(0x8F35 below three minutes, 0x8F36 from three minutes on) to the Network
Operator.

Memory: the profile, the hook table and the handler table are shared by all
instances; an ESME holds its keys and counters (Device), the COSEM objects it
changed, a few numbers for the consumption model and two packed log buffers.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gbhil.devices import credentials, firmware, joining
from gbhil.devices.core import (
    Alert,
    Command,
    Device,
    DeviceType,
    Handler,
    Outcome,
    Refusal,
    Reply,
)
from gbhil.devices.cosem import (
    ALERT_FUTURE_DATED_FAILED,
    ALERT_FUTURE_DATED_OK,
    CONNECTED,
    DISCONNECTED,
    READY_FOR_RECONNECTION,
    CosemServer,
    Hooks,
    Profile,
    Result,
    Selection,
    from_seconds_since_2000,
    inject_recorded_failure,
    load_profile,
    obis_bytes,
    parse_timestamp,
    seconds_since_2000,
    timestamp,
    type_desc,
)
from gbhil.devices.trust import DeviceKeys, Role
from gbhil.gbcs.axdr import (
    Array,
    BitString,
    Boolean,
    CompactArray,
    Data,
    Enum,
    Int8,
    Int16,
    Int32,
    OctetString,
    Structure,
    Uint16,
    Uint32,
)
from gbhil.gbcs.dlms import AccessRequest, AccessResponse, DataNotification
from gbhil.gbcs.usecases import MESSAGE_CODES
from gbhil.gbcs.utrn import verify_utrn

#: The model profile every ESME uses unless given another.
DEFAULT_PROFILE = Path(__file__).resolve().parents[2] / "devices" / "esme.toml"

# --- ESME object catalogue (names in gbhil.gbcs.obis) -------------------------------------
CLOCK = obis_bytes("0-0:1.0.0.255")
FIRMWARE_VERSION = obis_bytes("0-0:0.2.1.255")
DEVICE_ID = obis_bytes("0-0:96.1.1.255")
ENERGY_IMPORT = obis_bytes("1-0:1.8.0.255")
IMPORT_REGISTERS = obis_bytes("0-0:94.44.34.10")
TOU_BLOCK_REGISTERS = obis_bytes("0-0:94.44.34.2")
ACTIVE_POWER = obis_bytes("0-0:94.44.34.20")
PREPAYMENT_REGISTERS = obis_bytes("0-0:94.44.34.30")
ACCOUNT = obis_bytes("0-0:19.0.0.255")
METER_BALANCE = obis_bytes("0-0:19.10.0.255")
TOKEN_GATEWAY = obis_bytes("0-0:19.40.0.255")
DISCONNECT_CONTROL = obis_bytes("0-0:96.3.10.255")
LOAD_SWITCH_SCRIPTS = obis_bytes("0-0:10.0.106.255")
EVENT_LOG = obis_bytes("0-0:99.98.0.255")
SECURITY_LOG = obis_bytes("0-0:99.98.1.255")
#: ECS25a-b3 set objects -> the behaviour object each updates (read by ECS25r1/r2). A set
#: is 512 bits: a 256-bit mask of the alert codes addressed, then their new state.
ALERT_BEHAVIOUR_SETS: dict[bytes, bytes] = {
    obis_bytes(f"0-{group}:97.98.{n}.255"): obis_bytes(f"0-{group}:97.98.{n + 4}.255")
    for group, numbers in ((30, (11, 12, 13, 14)), (33, (11, 14)))
    for n in numbers
}
BEHAVIOUR_OCTETS = 32

#: Load switch script ids of ECS42 (close), ECS43 (open), ECS44 (arm).
SCRIPT_CLOSE, SCRIPT_OPEN, SCRIPT_ARM = 51, 52, 54
LOAD_SWITCH_STATE = {
    SCRIPT_CLOSE: CONNECTED,
    SCRIPT_OPEN: DISCONNECTED,
    SCRIPT_ARM: READY_FOR_RECONNECTION,
}
SWITCH_STATES = frozenset({DISCONNECTED, CONNECTED, READY_FOR_RECONNECTION})
#: Account mode (class 111 attribute 2, first element).
MODE_CREDIT, MODE_PREPAYMENT = 1, 2
#: Units: energy registers in Wh (unit 30), power in W (27), money in 1e-5 currency units.
MONEY_PER_PENNY = 1000
TOU_BLOCK_REGISTER_COUNT = 64

# --- message and alert codes ---------------------------------------------------------------
ECS80_SUPPLY_RESTORED = 0x0067
GENERIC_CRITICAL_ALERT = 0x1000
CS01A_TOP_UP = 0x0007
ALERT_SUPPLY_INTERRUPTED = 0x8F57
ALERT_OUTAGE_RESTORED = 0x8F35
ALERT_OUTAGE_RESTORED_LONG = 0x8F36
#: Outage length from which restoration is reported as 0x8F36.
LONG_OUTAGE = timedelta(minutes=3)
#: Event log codes (gbhil.gbcs.alerts names them).
EVENT_COMMAND_OK = 0x8154
EVENT_COMMAND_FAILED = 0x8155
EVENT_CLOCK_ADJUSTED = 0x8145
EVENT_SUPPLY_ARMED = 0x8F32
EVENT_FUTURE_DATED_OK = ALERT_FUTURE_DATED_OK
EVENT_FUTURE_DATED_FAILED = ALERT_FUTURE_DATED_FAILED
#: Security log codes.
SECURITY_LOG_CLEARED = 0x8F52
SECURITY_INTEGRITY = 0x8F1E
SECURITY_AUTHENTICATION = 0x8F3D
SECURITY_NO_AUTHORITY = 0x8F30
SECURITY_OTHER = 0x8F53
SECURITY_UTRN_NOT_AUTHENTIC = 0x8F63
REFUSAL_SECURITY_CODES: dict[Refusal, int] = {
    Refusal.MALFORMED: SECURITY_INTEGRITY,
    Refusal.BAD_MAC: SECURITY_AUTHENTICATION,
    Refusal.BAD_SIGNATURE: SECURITY_AUTHENTICATION,
    Refusal.NO_MAC: SECURITY_OTHER,
    Refusal.NOT_SIGNED: SECURITY_OTHER,
    Refusal.REPLAY: SECURITY_OTHER,
    Refusal.NO_AUTHORITY: SECURITY_NO_AUTHORITY,
}

#: CHF use cases that share the ECS prefix (the CHF serves them, not the ESME).
CHF_USE_CASES = frozenset({"ECS26i", "ECS26n", "ECS35c", "ECS35d"})
#: Every DLMS command an ESME serves: ECS* commands plus the CS01a top-up.
ESME_DLMS_CODES: frozenset[int] = frozenset(
    uc.code
    for uc in MESSAGE_CODES.values()
    if uc.payload == "DLMS"
    and uc.command_protection
    and (uc.use_case.startswith("ECS") or uc.use_case == "CS01a")
    and uc.use_case not in CHF_USE_CASES
)

# --- packed logs ----------------------------------------------------------------------------
#: Event log record: seconds since 2000, event code, data length, data (<= 8 bytes).
_EVENT = struct.Struct(">IHB8s")
#: Security log record: seconds since 2000, event code.
_SECURITY = struct.Struct(">IH")


def _append(buf: bytearray | None, record: bytes, capacity: int) -> bytearray:
    if buf is None:
        buf = bytearray()
    buf += record
    excess = len(buf) - capacity * len(record)
    if excess > 0:
        del buf[:excess]
    return buf


def _records(buf: bytearray | None, rec: struct.Struct) -> list[tuple[Any, ...]]:
    return [] if not buf else [rec.unpack_from(buf, i) for i in range(0, len(buf), rec.size)]


class Esme(Device):
    """A SMETS2 electricity meter (single element) with a DLMS COSEM object model."""

    DEVICE_TYPE = DeviceType.ESME

    __slots__ = (
        "_balance",
        "_balance_wh",
        "_base_wh",
        "_clock_preset",
        "_events",
        "_off",
        "_offset",
        "_outage_start",
        "_security_log",
        "_switch",
        "_t0",
        "cosem",
    )

    def __init__(
        self, eui: bytes, keys: DeviceKeys, clock: Any, profile: Profile | str | Path | None = None
    ) -> None:
        if profile is None:
            profile = load_profile(DEFAULT_PROFILE)
        elif isinstance(profile, str | Path):
            profile = load_profile(profile)
        if not isinstance(profile, Profile):
            raise TypeError(f"an ESME needs a COSEM Profile, got {type(profile).__name__}")
        super().__init__(eui, keys, clock, profile)
        self.cosem = CosemServer(profile, self, esme_hooks(profile))
        now = clock.now()
        self._offset = 0.0
        self._t0 = float(seconds_since_2000(now))
        self._base_wh = 0.0
        self._off: list[list[float]] | None = None  # [start, end] supply-off periods; end=inf
        self._outage_start: datetime | None = None
        self._switch = CONNECTED
        self._balance = 0
        self._balance_wh = 0.0
        self._events: bytearray | None = None
        self._security_log: bytearray | None = None
        self._clock_preset: Data | None = None

    # -- wiring ---------------------------------------------------------------------------
    def handlers(self) -> dict[int, Handler]:
        return _handler_table()

    def inject_recorded_failure(
        self, message_code: int, command: Any, recorded_response: Any
    ) -> bool:
        if isinstance(command, AccessRequest) and isinstance(recorded_response, AccessResponse):
            return inject_recorded_failure(self.cosem, command, recorded_response) is not None
        return super().inject_recorded_failure(message_code, command, recorded_response)

    def _setting(self, table: str, key: str, default: float) -> float:
        return float(self.profile.settings.get(table, {}).get(key, default))

    # -- time -----------------------------------------------------------------------------
    def meter_time(self, t: datetime | None = None) -> datetime:
        """The meter's own clock: the shared clock plus what ECS70 adjusted."""
        return (t or self.clock.now()) + timedelta(seconds=self._offset)

    def _set_meter_time(self, target: datetime) -> None:
        self._offset = (target - self.clock.now()).total_seconds()
        self.log_event(EVENT_CLOCK_ADJUSTED)

    # -- consumption model ----------------------------------------------------------------
    @property
    def supply_on(self) -> bool:
        return self.powered and self._switch == CONNECTED

    def _supply_changed(self, was_on: bool, at: datetime) -> None:
        """Open or close a supply-off period when the supply state flips."""
        now_on = self.supply_on
        s = float(seconds_since_2000(at))
        if was_on and not now_on:
            if self._off is None:
                self._off = []
            self._off.append([s, float("inf")])
        elif now_on and not was_on and self._off:
            self._off[-1][1] = s

    def _on_seconds(self, until: float) -> float:
        on = max(0.0, until - self._t0)
        for start, end in self._off or ():
            lo, hi = max(start, self._t0), min(end, until)
            if hi > lo:
                on -= hi - lo
        return on

    def energy_wh(self, at: datetime | None = None) -> float:
        """Imported energy (Wh) at ``at`` (real time) from the constant-power model."""
        t = float(seconds_since_2000(at or self.clock.now()))
        power = self._setting("consumption", "power_w", 500.0)
        return self._base_wh + power * self._on_seconds(t) / 3600.0

    def power_w(self) -> int:
        return int(self._setting("consumption", "power_w", 500.0)) if self.supply_on else 0

    def _prepayment(self) -> bool:
        mode = self.cosem.read(111, ACCOUNT, 2)
        return (
            isinstance(mode, Structure)
            and bool(mode.items)
            and isinstance(mode.items[0], Enum)
            and mode.items[0].value == MODE_PREPAYMENT
        )

    def meter_balance(self) -> int:
        """Meter balance (1e-5 currency units); drains with consumption in prepayment mode."""
        if not self._prepayment():
            return self._balance
        price = self._setting("consumption", "price_per_kwh", 0.0)
        used = (self.energy_wh() - self._balance_wh) / 1000.0
        return round(self._balance - price * used)

    def set_meter_balance(self, value: int) -> None:
        self._balance, self._balance_wh = value, self.energy_wh()

    # -- load switch ----------------------------------------------------------------------
    @property
    def load_switch(self) -> int:
        """Disconnect control state: 0 disconnected, 1 connected, 2 armed (ready)."""
        return self._switch

    def set_load_switch(self, state: int) -> None:
        was_on = self.supply_on
        self._switch = state
        if state == READY_FOR_RECONNECTION:
            self.log_event(EVENT_SUPPLY_ARMED)
        self._supply_changed(was_on, self.clock.now())

    def consumer_reconnect(self) -> bool:
        """The consumer presses the button of an armed meter: the supply comes back."""
        if self._switch != READY_FOR_RECONNECTION:
            return False
        self.set_load_switch(CONNECTED)
        return True

    # -- logs -----------------------------------------------------------------------------
    def log_event(self, code: int, data: bytes = b"", at: datetime | None = None) -> None:
        """Append to the ESME event log (0-0:99.98.0.255)."""
        s = seconds_since_2000(self.meter_time(at))
        cap = int(self._setting("logs", "event_capacity", 100))
        record = _EVENT.pack(s, code, len(data[:8]), data[:8])
        self._events = _append(self._events, record, cap)

    def log_security(self, code: int, at: datetime | None = None) -> None:
        """Append to the security log (0-0:99.98.1.255)."""
        s = seconds_since_2000(self.meter_time(at))
        cap = int(self._setting("logs", "security_capacity", 100))
        self._security_log = _append(self._security_log, _SECURITY.pack(s, code), cap)

    def event_log(self) -> list[tuple[datetime, int, bytes]]:
        return [
            (from_seconds_since_2000(s), code, data[:n])
            for s, code, n, data in _records(self._events, _EVENT)
        ]

    def security_log(self) -> list[tuple[datetime, int]]:
        return [
            (from_seconds_since_2000(s), code)
            for s, code in _records(self._security_log, _SECURITY)
        ]

    def _refuse(self, now: datetime, why: Refusal, detail: str, gs: Any = None) -> Reply:
        code = REFUSAL_SECURITY_CODES.get(why)
        if code is not None:
            self.log_security(code, now)
        return super()._refuse(now, why, detail, gs)

    # -- power model ----------------------------------------------------------------------
    def power_off(self, at: datetime | None = None) -> list[bytes]:
        """Supply lost: 0x8F57 in a generic critical alert, then the meter goes dark.

        The alert is built while the meter still has power (last gasp); a rig
        whose Comms Hub is powered by the meter may drop it.
        """
        if not self.powered:
            return []
        at = at or self.clock.now()
        self.log_event(ALERT_SUPPLY_INTERRUPTED, at=at)
        body = Structure((Uint16(ALERT_SUPPLY_INTERRUPTED), timestamp(self.meter_time(at))))
        alert = Alert(GENERIC_CRITICAL_ALERT, DataNotification(0, body), self._network_operator())
        out = [self.build_alert(alert).encode()]
        was_on = self.supply_on
        self.powered = False
        self._outage_start = at
        self._supply_changed(was_on, at)
        return out

    def power_on(self, at: datetime | None = None) -> list[bytes]:
        """Supply restored: ECS80 (0x8F35 < 3 min, 0x8F36 >= 3 min) to the Network Operator."""
        if self.powered:
            return []
        at = at or self.clock.now()
        start = self._outage_start or at
        self.powered = True
        self._outage_start = None
        self._supply_changed(False, at)
        code = ALERT_OUTAGE_RESTORED_LONG if at - start >= LONG_OUTAGE else ALERT_OUTAGE_RESTORED
        self.log_event(code, at=at)
        body = Structure(
            (
                Uint16(code),
                timestamp(self.meter_time()),
                timestamp(self.meter_time(start)),
                timestamp(self.meter_time(at)),
            )
        )
        alert = Alert(ECS80_SUPPLY_RESTORED, DataNotification(0, body), self._network_operator())
        return [self.build_alert(alert).encode()]

    def _network_operator(self) -> bytes | None:
        return self.keys.party(Role.NETWORK_OPERATOR)

    # -- firmware -------------------------------------------------------------------------
    def running_firmware(self) -> bytes:
        """The running image's version: firmware slots, else firmware_version, else profile."""
        fw = getattr(self, "firmware", None)
        if fw is not None and getattr(fw, "running_version", None):
            return bytes(fw.running_version)
        version = getattr(self, "firmware_version", None)
        if isinstance(version, bytes | bytearray):
            return bytes(version)
        return bytes.fromhex(str(self.profile.identity.get("firmware_version", "")))


# --- live attributes ------------------------------------------------------------------------


def _clock_get(e: Esme, _sel: Selection | None) -> Data:
    return timestamp(e.meter_time())


def _clock_put(e: Esme, value: Data) -> None:
    t = parse_timestamp(value.value) if isinstance(value, OctetString) else None
    if t is not None:
        e._set_meter_time(t)


def _clock_check(_e: Esme, value: Data) -> int:
    ok = isinstance(value, OctetString) and parse_timestamp(value.value) is not None
    return Result.SUCCESS if ok else Result.OTHER_REASON


def _clock_preset(e: Esme, _cmd: Command | None, p: Data) -> tuple[int, Data | None]:
    e._clock_preset = p
    return Result.SUCCESS, None


def _clock_preset_check(_e: Esme, _cmd: Command | None, p: Data) -> int:
    ok = (
        isinstance(p, Structure)
        and len(p.items) == 3
        and all(isinstance(x, OctetString) and len(x.value) == 12 for x in p.items)
    )
    return Result.SUCCESS if ok else Result.TYPE_UNMATCHED


def _clock_adjust_to_preset(e: Esme, _cmd: Command | None, _p: Data) -> tuple[int, Data | None]:
    """Set the clock to the preset time; an unspecified preset means the validity midpoint.

    [U] RTDS ECS70 presets "unspecified" with a 20 s validity window and reads
    back the window's midpoint, so that is what the simulated meter sets.
    """
    preset = e._clock_preset
    e._clock_preset = None
    if not isinstance(preset, Structure):
        return Result.OTHER_REASON, None
    at, start, end = (parse_timestamp(x.value) for x in preset.items)  # type: ignore[union-attr]
    target = at
    if target is None and start is not None and end is not None and end >= start:
        target = start + (end - start) / 2
    if target is None:
        return Result.OTHER_REASON, None
    e._set_meter_time(target)
    return Result.SUCCESS, None


def _clock_shift(e: Esme, _cmd: Command | None, p: Data) -> tuple[int, Data | None]:
    if not isinstance(p, Int16):
        return Result.TYPE_UNMATCHED, None
    e._set_meter_time(e.meter_time() + timedelta(seconds=p.value))
    return Result.SUCCESS, None


def _firmware_get(e: Esme, _sel: Selection | None) -> Data:
    return OctetString(e.running_firmware())


def _eui_get(e: Esme, _sel: Selection | None) -> Data:
    return OctetString(e.eui)


def _energy_get(e: Esme, _sel: Selection | None) -> Data:
    return Uint32(int(e.energy_wh()) & 0xFFFFFFFF)


_SCALER_0 = Int8(0)


def _import_registers_get(e: Esme, _sel: Selection | None) -> Data:
    wh = Uint32(int(e.energy_wh()) & 0xFFFFFFFF)
    return Structure(
        (wh, Structure((_SCALER_0, Enum(30))), Uint32(0), Structure((_SCALER_0, Enum(32))))
    )


def _tou_block_get(e: Esme, _sel: Selection | None) -> Data:
    """All energy in the first TOU/block register: the default tariff has one rate."""
    regs = [Uint32(0)] * TOU_BLOCK_REGISTER_COUNT
    regs[0] = Uint32(int(e.energy_wh()) & 0xFFFFFFFF)
    return Structure((Array(tuple(regs)),))


def _power_get(e: Esme, _sel: Selection | None) -> Data:
    w = Uint32(e.power_w())
    return Structure((w, Structure((_SCALER_0, Enum(27))), w))


def _prepayment_registers_get(e: Esme, _sel: Selection | None) -> Data:
    stored = e.profile.objects[(1, PREPAYMENT_REGISTERS)].attributes[2].default
    rest = stored.items[1:] if isinstance(stored, Structure) else ()
    return Structure((Int32(e.meter_balance()), *rest))


def _balance_get(e: Esme, _sel: Selection | None) -> Data:
    return Int32(e.meter_balance())


def _balance_put(e: Esme, value: Data) -> None:
    if isinstance(value, Int32):
        e.set_meter_balance(value.value)


def _account_put(e: Esme, value: Data) -> None:
    """Payment mode changes settle the balance first, so draining starts from now."""
    e.set_meter_balance(e.meter_balance())
    e.cosem.store(111, ACCOUNT, 2, value)


def _switch_get(e: Esme, _sel: Selection | None) -> Data:
    return Enum(e.load_switch)


def _switch_put(e: Esme, value: Data) -> None:
    if isinstance(value, Enum):
        e.set_load_switch(value.value)


def _switch_check(_e: Esme, value: Data) -> int:
    ok = isinstance(value, Enum) and value.value in SWITCH_STATES
    return Result.SUCCESS if ok else Result.OTHER_REASON


def _output_get(e: Esme, _sel: Selection | None) -> Data:
    return Boolean(e.supply_on)


def _load_switch_script(e: Esme, _cmd: Command | None, p: Data) -> tuple[int, Data | None]:
    e.set_load_switch(LOAD_SWITCH_STATE[p.value])  # type: ignore[union-attr]
    return Result.SUCCESS, None


def _load_switch_check(_e: Esme, _cmd: Command | None, p: Data) -> int:
    if not isinstance(p, Uint16):
        return Result.TYPE_UNMATCHED
    return Result.SUCCESS if p.value in LOAD_SWITCH_STATE else Result.OTHER_REASON


def _disconnect(e: Esme, _cmd: Command | None, _p: Data) -> tuple[int, Data | None]:
    e.set_load_switch(DISCONNECTED)
    return Result.SUCCESS, None


def _reconnect(e: Esme, _cmd: Command | None, _p: Data) -> tuple[int, Data | None]:
    e.set_load_switch(CONNECTED)
    return Result.SUCCESS, None


def _top_up_check(e: Esme, cmd: Command | None, p: Data) -> int:
    """CS01a: the UTRN must verify with the supplier's prepayment key (gbcs-facts 2.9)."""
    if not isinstance(p, OctetString):
        return Result.TYPE_UNMATCHED
    if cmd is None:
        return Result.OTHER_REASON
    z = e.security.shared_secret(cmd.originator, e.eui, prepayment=True)
    check = None if z is None else verify_utrn(p.value, z, cmd.originator, e.eui, cmd.counter)
    if check is None or not check.ok:
        e.log_security(SECURITY_UTRN_NOT_AUTHENTIC)
        return Result.OTHER_REASON
    return Result.SUCCESS


def _top_up(e: Esme, cmd: Command | None, p: Data) -> tuple[int, Data | None]:
    assert cmd is not None and isinstance(p, OctetString)
    z = e.security.shared_secret(cmd.originator, e.eui, prepayment=True)
    assert z is not None
    utrn = verify_utrn(p.value, z, cmd.originator, e.eui, cmd.counter).utrn
    pence = utrn.amount_pence if utrn is not None else None
    if pence is None:
        return Result.OTHER_REASON, None
    e.set_meter_balance(e.meter_balance() + pence * MONEY_PER_PENNY)
    return Result.SUCCESS, None


def _event_log_get(e: Esme, sel: Selection | None) -> Data:
    rows = []
    for t, code, data in e.event_log():
        if sel is None or sel.contains(t):
            rows.append(Structure((Uint32(seconds_since_2000(t)), Uint16(code), OctetString(data))))
    return _compact(e, EVENT_LOG, rows)


def _security_log_get(e: Esme, sel: Selection | None) -> Data:
    rows = [
        Structure((Uint32(seconds_since_2000(t)), Uint16(code)))
        for t, code in e.security_log()
        if sel is None or sel.contains(t)
    ]
    return _compact(e, SECURITY_LOG, rows)


def _event_log_put(e: Esme, value: Data) -> None:
    """Only clearing is possible (class 7 reset, ECS15a); that is a security event."""
    if isinstance(value, CompactArray | Array) and not value.items:
        e._events = None
        e.log_security(SECURITY_LOG_CLEARED)


def _security_log_put(_e: Esme, _value: Data) -> None:
    """The security log cannot be cleared remotely."""


def _compact(e: Esme, obis: bytes, rows: list[Data]) -> Data:
    spec = e.profile.objects[(7, obis)].attributes[2].type
    assert isinstance(spec, tuple)
    return CompactArray(type_desc(spec[1]), tuple(rows))


def _profile_getter(obis: bytes, period: int, columns: tuple[str, ...]) -> Any:
    """A profile buffer generated from the consumption model: one entry per period."""

    def get(e: Esme, sel: Selection | None) -> Data:
        now = e.clock.now()
        t0 = from_seconds_since_2000(int(e._t0))
        cap = int(e._setting("profiles", "max_entries", 1440))
        end = min(now, sel.end) if sel and sel.end else now
        start = max(t0, sel.start) if sel and sel.start else end - timedelta(seconds=period * cap)
        start = max(start, t0)
        first = -(-seconds_since_2000(start) // period) * period  # first boundary >= start
        rows: list[Data] = []
        s = first
        while s <= seconds_since_2000(end) and len(rows) < cap:
            at = from_seconds_since_2000(s)
            rows.append(Structure(tuple(_column(e, c, at, period) for c in columns)))
            s += period
        return _compact(e, obis, rows)

    return get


def _column(e: Esme, name: str, at: datetime, period: int) -> Data:
    if name == "time":
        return Uint32(seconds_since_2000(e.meter_time(at)))
    if name == "import-total":
        return Uint32(int(e.energy_wh(at)) & 0xFFFFFFFF)
    if name == "import-delta":
        before = e.energy_wh(at - timedelta(seconds=period))
        return Uint32(max(0, int(e.energy_wh(at) - before)))
    return Uint32(0)


def _activated(e: Esme, alert_code: int, message_code: int) -> None:
    ok = alert_code == ALERT_FUTURE_DATED_OK
    event = EVENT_FUTURE_DATED_OK if ok else EVENT_FUTURE_DATED_FAILED
    e.log_event(event, message_code.to_bytes(2, "big"))


def _behaviour_check(_e: Esme, value: Data) -> int:
    ok = isinstance(value, BitString) and len(value.data) == 2 * BEHAVIOUR_OCTETS
    return Result.SUCCESS if ok else Result.TYPE_UNMATCHED


def _behaviour_put(command: bytes, behaviour: bytes) -> Callable[[Esme, Data], None]:
    """ECS25: the masked alerts take their new state; the others keep theirs."""

    def put(e: Esme, value: Data) -> None:
        assert isinstance(value, BitString)
        e.cosem.store(1, command, 2, value)
        mask = int.from_bytes(value.data[:BEHAVIOUR_OCTETS], "big")
        new = int.from_bytes(value.data[BEHAVIOUR_OCTETS:], "big")
        current = e.cosem.read(1, behaviour, 2)
        old = int.from_bytes(current.data, "big") if isinstance(current, BitString) else 0
        updated = (old & ~mask) | (new & mask)
        e.cosem.store(1, behaviour, 2, BitString(8 * BEHAVIOUR_OCTETS,
                                                 updated.to_bytes(BEHAVIOUR_OCTETS, "big")))

    return put


def _build_hooks(profile: Profile) -> Hooks:
    """The ESME behaviour table, shared by every instance."""
    h = Hooks(activated=_activated)
    h.live(8, CLOCK, 2, _clock_get, _clock_put, _clock_check)
    h.method(8, CLOCK, 5, _clock_preset, _clock_preset_check)
    h.method(8, CLOCK, 4, _clock_adjust_to_preset)
    h.method(8, CLOCK, 6, _clock_shift)
    h.live(1, FIRMWARE_VERSION, 2, _firmware_get)
    h.live(1, DEVICE_ID, 2, _eui_get)
    h.live(3, ENERGY_IMPORT, 2, _energy_get)
    h.live(1, IMPORT_REGISTERS, 2, _import_registers_get)
    h.live(1, TOU_BLOCK_REGISTERS, 2, _tou_block_get)
    h.live(1, ACTIVE_POWER, 2, _power_get)
    h.live(1, PREPAYMENT_REGISTERS, 2, _prepayment_registers_get)
    h.live(112, METER_BALANCE, 2, _balance_get, _balance_put)
    h.putters[(111, ACCOUNT, 2)] = _account_put
    h.live(70, DISCONNECT_CONTROL, 3, _switch_get, _switch_put, _switch_check)
    h.live(70, DISCONNECT_CONTROL, 2, _output_get)
    h.method(70, DISCONNECT_CONTROL, 1, _disconnect)
    h.method(70, DISCONNECT_CONTROL, 2, _reconnect)
    h.method(9, LOAD_SWITCH_SCRIPTS, 1, _load_switch_script, _load_switch_check)
    h.method(115, TOKEN_GATEWAY, 1, _top_up, _top_up_check)
    h.live(7, EVENT_LOG, 2, _event_log_get, _event_log_put)
    h.live(7, SECURITY_LOG, 2, _security_log_get, _security_log_put)
    for command, behaviour in ALERT_BEHAVIOUR_SETS.items():
        if (1, command) in profile.objects and (1, behaviour) in profile.objects:
            h.putters[(1, command, 2)] = _behaviour_put(command, behaviour)
            h.set_checks[(1, command, 2)] = _behaviour_check
    for (class_id, obis), obj in profile.objects.items():
        gen = obj.extra.get("profile")
        if class_id == 7 and gen:
            getter = _profile_getter(obis, int(gen["period"]), tuple(gen["columns"]))
            h.live(7, obis, 2, getter, lambda _e, _v: None)
    return h


_HOOKS_BY_PROFILE: dict[Profile, Hooks] = {}


def esme_hooks(profile: Profile) -> Hooks:
    """One hook table per profile (generated profile buffers depend on it)."""
    hooks = _HOOKS_BY_PROFILE.get(profile)
    if hooks is None:
        hooks = _HOOKS_BY_PROFILE[profile] = _build_hooks(profile)
    return hooks


# --- the use-case handler -------------------------------------------------------------------


def handle_dlms(device: Device, cmd: Command) -> Outcome:
    """Every DLMS ESME use case: the access-request goes to the COSEM server."""
    assert isinstance(device, Esme)
    request = cmd.payload
    if not isinstance(request, AccessRequest):
        # Not a DLMS command: GBCS integrity failure, no response (gbcs-facts 3.1.1).
        device.log_security(SECURITY_INTEGRITY)
        return Outcome(None)
    processed = device.cosem.process(request, cmd, device.meter_time())
    code = EVENT_COMMAND_OK if processed.ok else EVENT_COMMAND_FAILED
    device.log_event(code, cmd.message_code.to_bytes(2, "big"))
    return processed.outcome()


_HANDLERS: dict[int, Handler] = {}


def _handler_table() -> dict[int, Handler]:
    """DLMS use cases plus the ASN.1 CS use cases every SMETS2 device shares (built once)."""
    if not _HANDLERS:
        _HANDLERS.update(joining.handlers())
        _HANDLERS.update(firmware.handlers())
        _HANDLERS.update(credentials.handlers())
        _HANDLERS.update(dict.fromkeys(ESME_DLMS_CODES, handle_dlms))
    return _HANDLERS
