"""The Gas Smart Metering Equipment (GSME): a battery-powered ZCL server behind the GPF.

What the GSME simulates, and why it is shaped this way:

* **Use cases are ZCL.**  Every GBZ message code is handled by the generic
  :class:`~gbhil.devices.zcl_server.ZclDevice` machinery; this module supplies
  the gas meter behind the clusters (Price, Metering, Messaging, Prepayment,
  Calendar, Device Management, Events) and the field layouts of their
  commands (ZigBee Smart Energy 1.x as GBCS uses them, checked against the
  RTDS GBZ commands and responses).
* **Consumption model, not stored history.**  Gas flows by a closed-form
  daily/seasonal model (:class:`GasModel`) seeded from the EUI, so the volume
  register, profile data and network samples for any instant are computed,
  not stored.  Tier/block registers, balances, debts and logs advance from
  the device's creation on (:func:`advance_state`); before creation the
  meter has a history since commissioning: consumption, and (``[history]``
  in the profile, :func:`seed_history`) the few log entries of a meter in
  service, derived from the EUI and the clock: UTRN top ups, the
  payment-based debt recovered from them, and a network data log GCS31
  started.  The credit at creation is the profile's.
* **Battery powered.**  The GSME sleeps; the HAN layer drives
  :meth:`Gsme.wake` / :meth:`Gsme.sleep` and delivers queued messages only
  while :attr:`Gsme.awake`.  Losing the battery raises the 0x8F1D GBZ
  generic alert.
* **Valve.**  GCS32 closes it, GCS39 arms it (the consumer opens it locally,
  :meth:`Gsme.press_button`); GBCS never opens a gas valve remotely, so a
  Change Supply to ON is refused.

Money amounts are in units of 10^-5 of the currency (price trailing digit 5):
the unit RTDS uses for balances, prices and top-up values.
"""

from __future__ import annotations

import copy
import hashlib
import math
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from gbhil.devices import credentials, firmware, joining, timesync
from gbhil.devices.core import Alert, Command, DeviceType, Handler
from gbhil.devices.trust import Role
from gbhil.devices.zcl_server import (
    DIRECTION_TO_CLIENT as S2C,
)
from gbhil.devices.zcl_server import (
    DIRECTION_TO_SERVER as C2S,
)
from gbhil.devices.zcl_server import (
    PROFILE_DIR,
    STATUS_ACTION_DENIED,
    STATUS_INVALID_FIELD,
    STATUS_INVALID_VALUE,
    STATUS_NOT_FOUND,
    STATUS_SUCCESS,
    AttributeStore,
    CommandSpec,
    CommandTable,
    Ctx,
    DeviceProfile,
    Fields,
    Layout,
    Part,
    Result,
    ZclDevice,
    ZclError,
    cluster_reply,
    command_table,
    default_response,
    gbz_seconds,
    load_profile,
)
from gbhil.gbcs import gbz
from gbhil.gbcs import zcl_catalogue as cat
from gbhil.gbcs.usecases import ENCRYPTED_RESPONSE_CODES
from gbhil.gbcs.utrn import (
    COUNTER_BITS_MAX,
    COUNTER_SHIFT,
    PENCE_PER_UNIT,
    PTUT_OFFSET,
    VALUE_CLASS_POUNDS,
    VALUE_MAX,
    check_digit,
    ptut_high,
    verify_utrn,
)
from gbhil.gbcs.zcl import ZclValue

# ---------------------------------------------------------------------------
# Catalogue: message codes, attributes, enumerations
# ---------------------------------------------------------------------------

#: GBZ message codes a GSME answers (gbcs-facts appendix A); GCS09/GCS61 go to the GPF.
GSME_MESSAGE_CODES: frozenset[int] = frozenset(
    {
        0x0014,  # CS10a read event log
        0x0015,  # CS11 clear event log
        0x006B,  # GCS01a set tariff and price
        0x006C,  # GCS02 payment mode to credit
        0x006D,  # GCS03 payment mode to prepayment
        0x006E,  # GCS04 manage debt
        0x006F,  # GCS05 prepayment configuration
        0x0070,  # GCS06 activate emergency credit remotely
        0x0071,  # GCS07 send message
        0x0073,  # GCS11 disable privacy PIN
        0x0074,  # GCS13a consumption register
        0x0075,  # GCS14 prepayment registers
        0x0076,  # GCS15c billing data log (billing calendar)
        0x0077,  # GCS16a daily read log
        0x0078,  # GCS17 profile data log
        0x0079,  # GCS18 network data log
        0x007B,  # GCS21a gas configuration data
        0x007C,  # GCS23 CV and conversion factor
        0x007D,  # GCS24 uncontrolled gas flow rate / supply tamper state
        0x007E,  # GCS25 billing calendar
        0x0080,  # GCS31 start network data log
        0x0081,  # GCS32 close valve
        0x0082,  # GCS33 valve status
        0x0083,  # GCS36 CIN
        0x0084,  # GCS38 firmware version
        0x0085,  # GCS39 arm valve
        0x0086,  # GCS40a adjust prepayment meter balance
        0x0087,  # GCS41 set MPRN
        0x0088,  # GCS44 contact details
        0x0089,  # GCS46 read MPRN
        0x008D,  # GCS60 meter balance
        0x0090,  # PCS02 emergency credit from the PPMID
        0x0096,  # GCS16b prepayment daily read log
        0x0097,  # CS01b top up
        0x009B,  # PCS01 top up from the PPMID
        0x009D,  # GCS21d billing calendar
        0x009E,  # GCS21e device identity
        0x009F,  # GCS21f tariff data
        0x00A1,  # CS10b security log
        0x00A3,  # GCS01b set price
        0x00AD,  # GCS20 alert behaviours
        0x00B4,  # GCS40b reset prepayment meter balance
        0x00B5,  # GCS21b prepayment configuration data
        0x00B6,  # GCS13c TOU registers
        0x00B8,  # GCS13b block counters
        0x00BF,  # GCS21j payment mode
        0x00C0,  # GCS40c adjust credit-mode meter balance
        0x00C2,  # GCS40d reset credit-mode meter balance
        0x00C3,  # GCS15b billing data log (mode / tariff change)
        0x00C4,  # GCS15d billing data log (debt payments)
        0x00C5,  # GCS15e billing data log (prepayment credits)
        0x00D8,  # GCS25a billing calendar, all periodicities
        0x00DA,  # GCS21k billing calendar, all periodicities
        0x00F1,  # GCS20r read event behaviours
        0x00FB,  # GCS21m identity, type, tamper / depletion state
        0x00FC,  # GCS24a uncontrolled flow rate (SMETS4)
        0x012A,  # GCS60a meter balance (variant a)
    }
)
#: Top ups carrying a UTRN: CS01b from the supplier, PCS01 from the PPMID.
CS01B, PCS01 = 0x0097, 0x009B

BASIC, PRICE, METERING = cat.CLUSTER_BASIC, cat.CLUSTER_PRICE, cat.CLUSTER_METERING
MESSAGING, PREPAYMENT = cat.CLUSTER_MESSAGING, cat.CLUSTER_PREPAYMENT
CALENDAR, DEVICE_MGMT, EVENTS = (
    cat.CLUSTER_CALENDAR,
    cat.CLUSTER_DEVICE_MANAGEMENT,
    cat.CLUSTER_EVENTS,
)

# Metering attributes
A_SUMMATION = 0x0000
A_SUPPLY_STATUS = 0x0014
A_TIER_SUMMATION = (0x0100, 0x0102, 0x0104, 0x0106)
A_FIRMWARE_VERSION = 0x0206  # GBCS GCS38 reads the GSME firmware version here
A_UNIT_OF_MEASURE, A_MULTIPLIER, A_DIVISOR = 0x0300, 0x0301, 0x0302
A_SITE_ID = 0x0307
A_SUPPLY_TAMPER, A_SUPPLY_DEPLETION, A_SUPPLY_UNCONTROLLED_FLOW = 0x0607, 0x0608, 0x0609
A_BLOCK_SUMMATION = (0x0700, 0x0701, 0x0702, 0x0703)
A_BILL_TO_DATE = 0x0A00  # credit-mode meter balance
A_UNCONTROLLED_FLOW = (0x0B10, 0x0B11, 0x0B12, 0x0B13, 0x0B14, 0x0B15)
# Prepayment attributes
A_PAYMENT_CONTROL = 0x0000
A_CREDIT_REMAINING = 0x0001
A_EC_REMAINING = 0x0002
A_ACCUMULATED_DEBT = 0x0005
A_OVERALL_DEBT_CAP = 0x0006
A_EC_LIMIT, A_EC_THRESHOLD = 0x0010, 0x0011
A_MAX_CREDIT_LIMIT, A_MAX_CREDIT_PER_TOP_UP = 0x0021, 0x0022
A_LOW_CREDIT_WARNING = 0x0031
A_CUT_OFF_VALUE = 0x0040
#: Debt #n attributes sit at 0x0210 + 0x10 * (n - 1) + offset (ZSE Prepayment).
DEBT_BASE, DEBT_STRIDE = 0x0210, 0x10
D_LABEL, D_AMOUNT, D_METHOD, D_START, D_COLLECTION_TIME = 0x0, 0x1, 0x2, 0x3, 0x4
D_FREQUENCY, D_RECOVERY_AMOUNT, D_TOP_UP_PERCENTAGE = 0x6, 0x7, 0x9
# Price attributes
A_BLOCK_THRESHOLD = (0x0100, 0x0101, 0x0102)
A_THRESHOLD_MULTIPLIER, A_THRESHOLD_DIVISOR = 0x0202, 0x0203
A_STANDING_CHARGE = 0x0301
A_CONVERSION_FACTOR, A_CF_TRAILING = 0x0302, 0x0303
A_CALORIFIC_VALUE, A_CV_UNIT, A_CV_TRAILING = 0x0304, 0x0305, 0x0306
A_BLOCK_PRICE = (0x0400, 0x0401, 0x0402, 0x0403)  # No Tier Block n Price
A_TIER_PRICE = (0x0410, 0x0420, 0x0430, 0x0440)  # Tier n Block 1 Price
A_PRICE_UNIT, A_CURRENCY, A_PRICE_TRAILING = 0x0615, 0x0616, 0x0617

MAX_TIERS = len(A_TIER_PRICE)
MAX_BLOCKS = len(A_BLOCK_PRICE)

# Supply (valve) states, Metering Supply Status / Change Supply
SUPPLY_OFF, SUPPLY_ARMED, SUPPLY_ON = 0x00, 0x01, 0x02
SUPPLY_NAMES = {SUPPLY_OFF: "off", SUPPLY_ARMED: "armed", SUPPLY_ON: "on"}
#: Change Supply control bit 0: the sender wants a Supply Status Response.
SUPPLY_ACK_REQUIRED = 0x01
#: Tamper / depletion / uncontrolled-flow states accepted by Set Supply Status.
SUPPLY_STATE_MAX = 0x03

# Payment Control Configuration bits (ZSE Prepayment 0x0000)
PCC_DISCONNECTION_ENABLED = 0x0001
PCC_PREPAYMENT_ENABLED = 0x0002
PCC_CREDIT_MANAGEMENT_ENABLED = 0x0004
PCC_CREDIT_DISPLAY_ENABLED = 0x0010
PCC_ACCOUNT_BASE = 0x0040
PCC_CONTACTOR_FITTED = 0x0080
PCC_STANDING_CHARGE_CONFIGURATION = 0x0100
PCC_EMERGENCY_STANDING_CHARGE = 0x0200
PCC_DEBT_CONFIGURATION = 0x0400
PCC_EMERGENCY_DEBT_CONFIGURATION = 0x0800
PCC_KNOWN_BITS = 0x0FD7
#: Change Payment Mode cut-off value meaning "keep the current cut-off" [U: RTDS GCS02 sends it].
CUT_OFF_UNCHANGED = -1

# Consumer Top Up
TOP_UP_ACCEPTED = 0x00
TOP_UP_REJECTED_INVALID = 0x01
TOP_UP_REJECTED_DUPLICATE = 0x02
TOP_UP_REJECTED_ERROR = 0x03
TOP_UP_REJECTED_MAX_CREDIT = 0x04
TOP_UP_REJECTED_TOO_LARGE = 0x06
TOP_UP_ACCEPTED_READY_TO_ARM = 0x12
#: Top-up response value/credit fields when rejected (RTDS: all ones).
INVALID_INT32 = -1
ORIGINATOR_ESI, ORIGINATOR_METER, ORIGINATOR_IHD = 0x00, 0x01, 0x02
#: 1 penny in money units (10^-5 of the currency).
MONEY_PER_PENNY = 1000

# Credit Adjustment types [U: 0/1 are ZSE; GBCS GCS40c/d use the credit-mode variants]
ADJUST_CREDIT_INCREMENTAL = 0x00
ADJUST_CREDIT_ABSOLUTE = 0x01
ADJUST_CREDIT_MODE_ABSOLUTE = 0x02
ADJUST_CREDIT_MODE_INCREMENTAL = 0x03

# Change Debt: amount types (absolute/incremental per debt), recovery methods, frequencies
DEBT_METHOD_TIME_BASED = 0x00
DEBT_METHOD_PERCENTAGE = 0x01
DEBT_FREQUENCY_DAYS: Mapping[int, float] = MappingProxyType(
    {0x00: 1 / 24, 0x01: 1.0, 0x02: 7.0, 0x03: 30.4375, 0x04: 91.3125}
)
PERCENTAGE_SCALE = 10_000  # Debt Recovery Top Up Percentage in 0.01 %
#: Get Debt Repayment Log debt type: 0..2 = debt 1..3, 0xFF = all.
DEBT_TYPE_ALL = 0xFF

# Snapshot causes (map32) [U for bits 13/14: inferred from the RTDS GCS15b request 0x6008]
CAUSE_GENERAL = 0x00000001
CAUSE_BILLING_PERIOD = 0x00000002
CAUSE_BLOCK_PERIOD = 0x00000004
CAUSE_TARIFF_CHANGE = 0x00000008
CAUSE_PRICE_MATRIX_CHANGE = 0x00000010
CAUSE_BLOCK_THRESHOLD_CHANGE = 0x00000020
CAUSE_CV_CHANGE = 0x00000040
CAUSE_CF_CHANGE = 0x00000080
CAUSE_TENANCY_CHANGE = 0x00000100
CAUSE_DEBT_PAYMENT = 0x00000800
CAUSE_MODE_TO_PREPAYMENT = 0x00002000
CAUSE_MODE_TO_CREDIT = 0x00004000
SNAPSHOT_PAYLOAD_BLOCK_TIER_NO_BILLING = 0x06
PREPAY_PAYLOAD_DEBT_CREDIT = 0x00

# Sampling (Metering Start Sampling / Get Sampled Data)
SAMPLE_ID_PROFILE = 0x0000  # half-hourly profile data log (GCS17)
SAMPLE_TYPE_CONSUMPTION = 0x00
SAMPLE_ID_INVALID = 0xFFFF
#: Sample id of the network data log [U: DUIS RecordNetworkDataGAS and ReadNetworkData carry no
#: id, so it is fixed; RTDS GCS31 answers it and GCS18 asks for it].  Start Sampling (GCS31)
#: restarts this one log: it is the only sampling GBCS asks of a GSME.
NETWORK_DATA_SAMPLE_ID = 0x0002
PROFILE_INTERVAL = 1800

# Calendar
CAL_TYPE_FRIENDLY_CREDIT = 0x03
#: Issuer calendar ids in Get commands meaning "the current one" [U: RTDS GCS21f / GCS21b].
CAL_ID_CURRENT_TARIFF = 0xFFFFFFFF
CAL_ID_CURRENT_FRIENDLY = 0xFFFFFFFE
WILDCARD = 0xFF

# Events cluster log ids and the events the GSME logs
LOG_ALL, LOG_GENERAL, LOG_SECURITY = 0x00, 0x03, 0x04
LOG_ID_MASK = 0x0F
CLEARED_GENERAL = 0x08  # Clear Event Log Response bit 3: general event log cleared
EV_COMMISSIONED = 0x8F69
EV_SUPPLY_ARMED = 0x8F32
EV_SUPPLY_DISABLED_CREDIT = 0x8F0F
EV_VALVE_CLOSED = 0x8184  # "Valve tested" is the nearest catalogued non-critical event
EV_EC_ACTIVATED = 0x81AB
EV_CREDIT_ADDED = 0x810E
EV_UTRN_NOT_AUTHENTIC = 0x8F63
EV_UTRN_DUPLICATE = 0x8F51
EV_UTRN_EXCEEDS_MAX = 0x8F5B
EV_METER_BALANCE_TOO_HIGH = 0x8F47
EV_EVENT_LOG_CLEARED = 0x8F52
EV_AUTH_FAILURE = 0x8F3D
EV_CREDENTIALS_UPDATED = 0x8F70
EV_LOW_BATTERY = 0x8F1F
ALERT_POWER_SUPPLY_LOSS = 0x8F1D
MESSAGE_CODE_GENERIC_CRITICAL = 0x1000
MESSAGE_CODE_GENERIC_NON_CRITICAL = 0x1001
#: Event configuration a GBCS read of "all events" asks for (GCS20r sends 0x81FF).
EVENT_ID_ALL_NON_CRITICAL = 0x81FF

# Billing period duration type (map8): low nibble time base
TIMEBASE_MINUTES, TIMEBASE_DAYS, TIMEBASE_WEEKS, TIMEBASE_MONTHS = 0, 1, 2, 3

DAY = 86_400
SLOT = 1800
SLOTS_PER_DAY = DAY // SLOT
YEAR_DAYS = 365.2425
#: CV plausibility range in MJ/m³ [U: gbhil's own check; GB natural gas is 37-43].
CV_RANGE_MJ = (30.0, 50.0)
CF_RANGE = (0.9, 1.3)
MJ_PER_KWH = 3.6
#: MPRNs are 6 to 10 digits.
MPRN_DIGITS = (6, 10)


# ---------------------------------------------------------------------------
# Consumption model
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GasModel:
    """Closed-form gas flow: a seasonal daily volume shaped by half-hourly weights.

    Cumulative volume ``C(day) = v * (day + A * P / 2π * sin(2π (day - d0) / P))``
    (litres since 2000-01-01) has derivative ``v (1 + A cos ...)``: winter
    peaks at day-of-year ``d0``.  Within a day the volume follows ``weights``.
    """

    litres_per_day: float
    amplitude: float
    coldest_day: float
    weights: tuple[float, ...]
    cumulative: tuple[float, ...]

    def day_start_volume(self, day: int) -> float:
        w = 2 * math.pi / YEAR_DAYS
        return self.litres_per_day * (
            day + self.amplitude / w * math.sin(w * (day - self.coldest_day))
        )

    def volume_at(self, t: int) -> float:
        """Litres delivered between 2000-01-01 and ``t`` (GBZ seconds) with the valve open."""
        day, s = divmod(t, DAY)
        start = self.day_start_volume(day)
        today = self.day_start_volume(day + 1) - start
        k, r = divmod(s, SLOT)
        return start + today * (self.cumulative[k] + self.weights[k] * r / SLOT)


def make_model(profile: DeviceProfile, eui: bytes) -> GasModel:
    """The device's model: the profile's shape, scaled per EUI so meters differ."""
    weights = _profile_weights(profile)
    spread = float(profile.setting("model", "spread", 0.4))
    h = hashlib.sha256(b"gbhil-gas-model" + eui).digest()
    scale = 1.0 + spread * (h[0] / 255.0 * 2 - 1)
    return GasModel(
        float(profile.setting("model", "litres_per_day", 3000.0)) * scale,
        float(profile.setting("model", "seasonal_amplitude", 0.5)),
        float(profile.setting("model", "coldest_day_of_year", 15)) - 1,
        weights[0],
        weights[1],
    )


_WEIGHTS: dict[tuple[float, ...], tuple[tuple[float, ...], tuple[float, ...]]] = {}


def _profile_weights(profile: DeviceProfile) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalised half-hour weights and their running sum, shared per distinct profile."""
    raw = tuple(float(x) for x in profile.setting("model", "half_hour_weights", (1.0,) * 48))
    if len(raw) != SLOTS_PER_DAY or min(raw) < 0 or sum(raw) <= 0:
        raise ValueError("model.half_hour_weights needs 48 non-negative numbers")
    cached = _WEIGHTS.get(raw)
    if cached is None:
        total = sum(raw)
        w = tuple(x / total for x in raw)
        cum = [0.0]
        for x in w:
            cum.append(cum[-1] + x)
        cached = (w, tuple(cum))
        _WEIGHTS[raw] = cached
    return cached


# ---------------------------------------------------------------------------
# Calendars and tariffs (immutable values, replaced on change)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Calendar:
    """A ZSE calendar: day profiles, week profiles, seasons and special days."""

    calendar_id: int
    calendar_type: int
    provider: int = 0
    issuer_event: int = 0
    start: int = 0
    name: bytes = b""
    days: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    weeks: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    seasons: tuple[tuple[bytes, int], ...] = ()
    special_days: tuple[tuple[bytes, int], ...] = ()
    special_start: int = 0

    def day_id(self, t: int) -> int | None:
        """Day profile in force on the day of ``t`` (special day, else season -> week)."""
        d = zcl_epoch_date(t)
        for date, day_id in self.special_days:
            if _date_matches(date, d):
                return day_id
        week = self._week_id(d)
        days = self.weeks.get(week) if week is not None else None
        if days is None:
            return next(iter(self.days), None)
        return days[d[3] - 1]

    def _week_id(self, d: tuple[int, int, int, int]) -> int | None:
        if not self.seasons:
            return next(iter(self.weeks), None)
        key = (d[1], d[2])
        best: tuple[tuple[int, int], int] | None = None
        latest: tuple[tuple[int, int], int] | None = None
        for date, week in self.seasons:
            start = (date[1] if date[1] != WILDCARD else 1, date[2] if date[2] != WILDCARD else 1)
            if latest is None or start > latest[0]:
                latest = (start, week)
            if start <= key and (best is None or start > best[0]):
                best = (start, week)
        chosen = best or latest
        return chosen[1] if chosen else None

    def value_at(self, t: int) -> tuple[int, int]:
        """(tier / value in force at ``t``, GBZ time it next changes, at most midnight)."""
        day_id = self.day_id(t)
        entries = self.days.get(day_id, ()) if day_id is not None else ()
        minute = (t % DAY) // 60
        value, nxt = (entries[0][1] if entries else 1), DAY
        for start, v in entries:
            if start <= minute:
                value = v
            else:
                nxt = start * 60
                break
        return value, t - t % DAY + nxt


def zcl_epoch_date(t: int) -> tuple[int, int, int, int]:
    """(year - 1900, month, day, ISO weekday) of a GBZ time, as in a ZCL date."""
    d = datetime(2000, 1, 1) + timedelta(seconds=t)
    return d.year - 1900, d.month, d.day, d.isoweekday()


def _date_matches(date: bytes, d: tuple[int, int, int, int]) -> bool:
    return all(p in (WILDCARD, q) for p, q in zip(date, d, strict=True))


@dataclass(frozen=True, slots=True)
class Tariff:
    """Tariff information as published (Price Publish Tariff Information)."""

    tariff_id: int = 0
    issuer_event: int = 0
    provider: int = 0
    scheme: int = 0x00  # upper nibble of tariff type/charging scheme: 0 TOU, 1 block
    label: bytes = b""
    tiers: int = 1
    block_thresholds: int = 0
    tier_block_mode: int = 0xFF

    @property
    def is_block(self) -> bool:
        return (self.scheme >> 4) != 0


@dataclass(frozen=True, slots=True)
class Period:
    """Billing or block period: start, duration and ZSE duration type."""

    start: int
    duration: int
    duration_type: int
    tariff_type: int = 0
    issuer_event: int = 0
    provider: int = 0
    control: int = 0
    resolution: int = 0

    def next_boundary(self, t: int) -> int:
        """First period boundary strictly after ``t`` (GBZ seconds)."""
        base = self.duration_type & 0x0F
        n = max(self.duration, 1)
        if base in (TIMEBASE_MINUTES, TIMEBASE_DAYS, TIMEBASE_WEEKS):
            step = n * {TIMEBASE_MINUTES: 60, TIMEBASE_DAYS: DAY, TIMEBASE_WEEKS: 7 * DAY}[base]
            if t < self.start:
                return self.start
            return self.start + ((t - self.start) // step + 1) * step
        # months: walk whole periods from the start date
        start = datetime(2000, 1, 1) + timedelta(seconds=self.start)
        if t < self.start:
            return self.start
        months = _months_between(start, datetime(2000, 1, 1) + timedelta(seconds=t))
        k = months // n * n
        while True:
            b = _add_months(start, k)
            s = int((b - datetime(2000, 1, 1)).total_seconds())
            if s > t:
                return s
            k += n


def _months_between(a: datetime, b: datetime) -> int:
    return max(0, (b.year - a.year) * 12 + b.month - a.month - 1)


def _add_months(d: datetime, n: int) -> datetime:
    m = d.month - 1 + n
    y, m = d.year + m // 12, m % 12 + 1
    days = [31, 29 if y % 4 == 0 and (y % 100 or y % 400 == 0) else 28, 31, 30, 31, 30, 31, 31,
            30, 31, 30, 31][m - 1]  # fmt: skip
    return d.replace(year=y, month=m, day=min(d.day, days))


class Snapshot(NamedTuple):
    """A billing / mode / tariff snapshot: registers plus prepayment status."""

    snapshot_id: int
    time: int
    cause: int
    total: int
    tiers: tuple[int, ...]
    blocks: tuple[int, ...]
    credit: int
    ec: int
    debts: tuple[int, int, int]


class LogEvent(NamedTuple):
    log_id: int
    event_id: int
    time: int
    data: bytes = b""


class TopUp(NamedTuple):
    code: bytes
    amount: int
    time: int


class DebtPayment(NamedTuple):
    time: int
    amount: int
    debt_type: int
    outstanding: int


class Sampling(NamedTuple):
    sample_id: int
    start: int
    sample_type: int
    interval: int
    max_samples: int


@dataclass(frozen=True, slots=True)
class History:
    """The seeded debt of the history before creation, for balances at any time then.

    Debt register ``debt`` (0-based; -1: none) was set to ``amount`` at ``start``
    and recovered by ``repayments`` (oldest first).
    """

    debt: int = -1
    start: int = 0
    amount: int = 0
    repayments: tuple[DebtPayment, ...] = ()

    def debt_at(self, t: int) -> int:
        """Outstanding debt at ``t`` (from ``start`` on)."""
        left = self.amount
        for p in self.repayments:
            if p.time > t:
                break
            left = p.outstanding
        return left


NO_HISTORY = History()


# ---------------------------------------------------------------------------
# The meter's state
# ---------------------------------------------------------------------------

#: Prepayment daily read log record: credit, EC, debt 1, debt 2, debt 3 (int32 each).
DAILY_FIELDS = 5


class GasMeterData:
    """Everything a GSME remembers; containers are replaced, never mutated in place.

    That rule makes :meth:`copy` (a shallow copy) a complete transaction
    snapshot, shared with the live state until something changes.
    """

    __slots__ = (
        "active_calendars",
        "attrs",
        "billing",
        "block_period",
        "blocks",
        "calendars",
        "cin",
        "closed_periods",
        "commissioned",
        "created",
        "daily",
        "daily_first",
        "debt_log",
        "event_config",
        "events",
        "history",
        "message",
        "model",
        "period_kwh",
        "pin_protected",
        "register_offset",
        "sampling",
        "snapshot_seq",
        "snapshots",
        "tariff",
        "tenancy",
        "tiers",
        "top_ups",
        "updated",
        "utrn_counters",
        "valve_closed_at",
    )

    def __init__(self, profile: DeviceProfile, model: GasModel, created: int) -> None:
        self.attrs = AttributeStore(profile)
        self.model = model
        self.created = created
        history = int(profile.setting("history", "commissioned_days_before_creation", 365))
        self.commissioned = created - created % DAY - history * DAY
        self.updated = created
        self.register_offset = int(profile.setting("model", "initial_register_litres", 0))
        self.valve_closed_at: int | None = None
        self.closed_periods: tuple[tuple[int, int], ...] = ()
        total = self.register_at(created)
        self.tiers: tuple[float, ...] = (float(total), 0.0, 0.0, 0.0)
        self.blocks: tuple[float, ...] = (0.0,) * MAX_BLOCKS
        self.period_kwh = 0.0
        self.tariff = _DEFAULT_TARIFFS.get(profile) or _default_tariff(profile)
        # shared with every meter of the profile until a command replaces them
        self.calendars, self.active_calendars = _shared_calendars(profile)
        self.billing: Period | None = initial_billing(profile, self.commissioned)
        self.block_period: Period | None = None
        self.snapshots: tuple[Snapshot, ...] = ()
        self.snapshot_seq = 0
        self.daily = array("i")
        self.daily_first = created - created % DAY + DAY  # first midnight after creation
        self.top_ups: tuple[TopUp, ...] = ()
        self.debt_log: tuple[DebtPayment, ...] = ()
        self.utrn_counters: tuple[int, ...] = ()
        self.events: tuple[LogEvent, ...] = ()
        self.event_config: Mapping[int, int] = _default_event_config(profile)
        self.sampling: tuple[Sampling, ...] = ()
        self.history = NO_HISTORY
        self.message: tuple[int, int, int, int, bytes] | None = None
        self.tenancy: tuple[int, int] | None = None
        self.pin_protected = True
        self.cin = b""

    def copy(self) -> GasMeterData:
        new = copy.copy(self)
        new.attrs = self.attrs.copy()
        return new

    # -- registers -----------------------------------------------------------------
    def register_at(self, t: int) -> int:
        """Volume register (litres) at ``t``: model volume minus what a closed valve held back."""
        m = self.model
        held = 0.0
        for start, end in self.closed_periods:
            if start < t:
                held += m.volume_at(min(end, t)) - m.volume_at(start)
        if self.valve_closed_at is not None and self.valve_closed_at < t:
            held += m.volume_at(t) - m.volume_at(self.valve_closed_at)
        return self.register_offset + int(m.volume_at(t) - m.volume_at(self.commissioned) - held)

    def slot_volume(self, start: int, end: int) -> int:
        """Litres delivered in [start, end) (0 before commissioning or while closed)."""
        start = max(start, self.commissioned)
        if end <= start:
            return 0
        return max(0, self.register_at(end) - self.register_at(start))

    def credit(self) -> int:
        return self.attrs.int(PREPAYMENT, A_CREDIT_REMAINING)

    def prepayment(self) -> bool:
        return bool(self.attrs.int(PREPAYMENT, A_PAYMENT_CONTROL) & PCC_PREPAYMENT_ENABLED)

    def supply(self) -> int:
        return self.attrs.int(METERING, A_SUPPLY_STATUS, SUPPLY_ON)

    def debts(self) -> tuple[int, int, int]:
        a = self.attrs
        return (
            a.int(PREPAYMENT, DEBT_BASE + D_AMOUNT),
            a.int(PREPAYMENT, DEBT_BASE + DEBT_STRIDE + D_AMOUNT),
            a.int(PREPAYMENT, DEBT_BASE + 2 * DEBT_STRIDE + D_AMOUNT),
        )

    # -- logs ------------------------------------------------------------------------
    def log(self, log_id: int, event_id: int, t: int, data: bytes = b"", cap: int = 100) -> None:
        kept = tuple(e for e in self.events if e.log_id == log_id)[: cap - 1]
        others = tuple(e for e in self.events if e.log_id != log_id)
        self.events = (LogEvent(log_id, event_id, t, data), *kept, *others)

    def take_snapshot(self, t: int, cause: int, cap: int) -> None:
        self.snapshot_seq += 1
        snap = Snapshot(
            self.snapshot_seq,
            t,
            cause,
            self.register_at(t),
            tuple(int(x) for x in self.tiers),
            tuple(int(x) for x in self.blocks),
            self.credit(),
            self.attrs.int(PREPAYMENT, A_EC_REMAINING),
            self.debts(),
        )
        self.snapshots = (snap, *self.snapshots)[:cap]

    def set_valve(self, state: int, t: int) -> None:
        """Set the supply status; a closed or armed valve delivers no gas."""
        closed = state != SUPPLY_ON
        if closed and self.valve_closed_at is None:
            self.valve_closed_at = t
        elif not closed and self.valve_closed_at is not None:
            self.closed_periods = (*self.closed_periods, (self.valve_closed_at, t))[-32:]
            self.valve_closed_at = None
        self.attrs.set(METERING, A_SUPPLY_STATUS, state)


_DEFAULT_TARIFFS: dict[DeviceProfile, Tariff] = {}


def _default_tariff(profile: DeviceProfile) -> Tariff:
    t = Tariff(
        tariff_id=int(profile.setting("tariff", "tariff_id", 1)),
        scheme=int(profile.setting("tariff", "scheme", 0x00)),
        tiers=int(profile.setting("tariff", "tiers", 1)),
    )
    _DEFAULT_TARIFFS[profile] = t
    return t


_DEFAULT_CALENDARS: dict[DeviceProfile, tuple[Calendar, ...]] = {}


def default_calendars(profile: DeviceProfile) -> tuple[Calendar, ...]:
    """The profile's ``[[calendar]]`` tables, parsed once and shared by its devices."""
    cals = _DEFAULT_CALENDARS.get(profile)
    if cals is None:
        cals = tuple(_calendar_from_toml(t) for t in profile.tables("calendar"))
        _DEFAULT_CALENDARS[profile] = cals
    return cals


_SHARED_CALENDARS: dict[DeviceProfile, tuple[Mapping[int, Calendar], Mapping[int, int]]] = {}


def _shared_calendars(profile: DeviceProfile) -> tuple[Mapping[int, Calendar], Mapping[int, int]]:
    shared = _SHARED_CALENDARS.get(profile)
    if shared is None:
        cals = default_calendars(profile)
        shared = (
            MappingProxyType({c.calendar_id: c for c in cals}),
            MappingProxyType({c.calendar_type: c.calendar_id for c in cals}),
        )
        _SHARED_CALENDARS[profile] = shared
    return shared


def _calendar_from_toml(t: Mapping[str, Any]) -> Calendar:
    days = {int(k): tuple((int(a), int(b)) for a, b in v) for k, v in t["days"].items()}
    weeks = {int(k): tuple(int(x) for x in v) for k, v in t["weeks"].items()}
    if any(len(w) != 7 for w in weeks.values()):
        raise ValueError("a week profile names 7 day profiles")
    return Calendar(
        calendar_id=int(t["id"]),
        calendar_type=int(t.get("type", 0)),
        name=str(t.get("name", "")).encode(),
        days=MappingProxyType(days),
        weeks=MappingProxyType(weeks),
        seasons=tuple((bytes.fromhex(d), int(w)) for d, w in t.get("seasons", ())),
        special_days=tuple((bytes.fromhex(d), int(i)) for d, i in t.get("special_days", ())),
    )


_DEFAULT_EVENT_CONFIG: dict[DeviceProfile, Mapping[int, int]] = {}


def _default_event_config(profile: DeviceProfile) -> Mapping[int, int]:
    cfg = _DEFAULT_EVENT_CONFIG.get(profile)
    if cfg is None:
        raw = profile.setting("events", "configuration", {})
        cfg = MappingProxyType({int(k, 0): int(v) for k, v in raw.items()})
        _DEFAULT_EVENT_CONFIG[profile] = cfg
    return cfg


# ---------------------------------------------------------------------------
# Advancing time: consumption, charges, debt recovery, snapshots
# ---------------------------------------------------------------------------


def _scaled(attrs: AttributeStore, value_attr: int, trailing_attr: int) -> float:
    digits = attrs.int(PRICE, trailing_attr) >> 4
    return attrs.int(PRICE, value_attr) / 10**digits


def kwh_per_litre(attrs: AttributeStore) -> float:
    cf = _scaled(attrs, A_CONVERSION_FACTOR, A_CF_TRAILING) or 1.0
    cv = _scaled(attrs, A_CALORIFIC_VALUE, A_CV_TRAILING) or 39.0
    return cf * cv / MJ_PER_KWH / 1000.0


def _split_blocks(kwh: float, used: float, thresholds: list[float]) -> list[float]:
    """kWh per block for ``kwh`` consumed after ``used`` kWh in the period."""
    out = [0.0] * MAX_BLOCKS
    left, pos = kwh, used
    for b in range(MAX_BLOCKS):
        cap = thresholds[b] if b < len(thresholds) else math.inf
        room = max(0.0, cap - pos)
        take = min(left, room) if b < MAX_BLOCKS - 1 else left
        out[b] += take
        left -= take
        pos += take
        if left <= 0:
            break
    return out


class Settings(NamedTuple):
    """Per-profile capacities, read once."""

    daily_capacity: int
    snapshot_capacity: int
    top_up_capacity: int
    debt_log_capacity: int
    event_capacity: int
    profile_capacity_s: int


_SETTINGS: dict[DeviceProfile, Settings] = {}


def settings(profile: DeviceProfile) -> Settings:
    s = _SETTINGS.get(profile)
    if s is None:
        g = profile.setting
        s = Settings(
            int(g("logs", "daily_read_log_days", 731)),
            int(g("logs", "billing_snapshots", 12)),
            int(g("logs", "top_up_log_entries", 5)),
            int(g("logs", "debt_log_entries", 10)),
            int(g("logs", "event_log_entries", 100)),
            int(g("logs", "profile_data_days", 396)) * DAY,
        )
        _SETTINGS[profile] = s
    return s


def advance_state(st: GasMeterData, now: int, caps: Settings) -> None:
    """Run the meter from ``st.updated`` to ``now`` in chunks (midnight, tier, period edges)."""
    t = st.updated
    if now <= t:
        return
    attrs = st.attrs
    m = st.model
    k_l = kwh_per_litre(attrs)
    prepay = st.prepayment()
    tiers = list(st.tiers)
    blocks = list(st.blocks)
    period_kwh = st.period_kwh
    credit = float(attrs.int(PREPAYMENT, A_CREDIT_REMAINING))
    bill = float(attrs.int(METERING, A_BILL_TO_DATE))
    ec = float(attrs.int(PREPAYMENT, A_EC_REMAINING))
    mult = attrs.int(PRICE, A_THRESHOLD_MULTIPLIER, 1)
    div = attrs.int(PRICE, A_THRESHOLD_DIVISOR, 1) or 1
    thresholds = [
        attrs.int(PRICE, a) * mult / div for a in A_BLOCK_THRESHOLD[: st.tariff.block_thresholds]
    ]
    tier_prices = [attrs.int(PRICE, a) for a in A_TIER_PRICE]
    block_prices = [attrs.int(PRICE, a) for a in A_BLOCK_PRICE]
    standing = attrs.int(PRICE, A_STANDING_CHARGE)
    cut_off = attrs.int(PREPAYMENT, A_CUT_OFF_VALUE)
    cal = _active_tariff_calendar(st)
    period = st.block_period or st.billing
    daily: array | None = None
    while t < now:
        midnight = t - t % DAY + DAY
        nxt = min(now, midnight)
        boundary = period.next_boundary(t) if period is not None else None
        if boundary is not None:
            nxt = min(nxt, boundary)
        tier, tier_end = cal.value_at(t) if cal is not None else (1, midnight)
        nxt = min(nxt, tier_end)
        litres = 0.0 if st.valve_closed_at is not None else m.volume_at(nxt) - m.volume_at(t)
        kwh = litres * k_l
        ti = min(max(tier, 1), MAX_TIERS) - 1
        tiers[ti] += litres
        if st.tariff.is_block:
            split = _split_blocks(kwh, period_kwh, thresholds)
            for b, part in enumerate(split):
                blocks[b] += part / k_l if k_l else 0.0
            cost = sum(part * block_prices[b] for b, part in enumerate(split))
        else:
            cost = kwh * tier_prices[ti]
        period_kwh += kwh
        t = nxt
        if t == midnight:
            cost += standing
        if prepay:
            credit -= cost
        else:
            bill += cost
        if t == midnight:
            credit = _collect_debts(st, t, credit, prepay, caps)
            if prepay and credit < 0 and ec > 0:
                used = min(ec, -credit)
                ec -= used
                credit += used
            if prepay and credit + ec <= cut_off and st.valve_closed_at is None:
                st.set_valve(SUPPLY_OFF, t)
                st.log(LOG_GENERAL, EV_SUPPLY_DISABLED_CREDIT, t, cap=caps.event_capacity)
            if daily is None:
                daily = array("i", st.daily)
            _record_daily(daily, int(credit), int(ec), st.debts())
        if boundary is not None and t == boundary:
            st.tiers, st.blocks = tuple(tiers), tuple(blocks)
            _set_money(attrs, credit, bill, ec)
            st.take_snapshot(t, CAUSE_BILLING_PERIOD, caps.snapshot_capacity)
            blocks = [0.0] * MAX_BLOCKS
            period_kwh = 0.0
            bill = 0.0
        if st.tenancy is not None and st.updated < st.tenancy[0] <= t:
            st.take_snapshot(st.tenancy[0], CAUSE_TENANCY_CHANGE, caps.snapshot_capacity)
    st.tiers, st.blocks, st.period_kwh = tuple(tiers), tuple(blocks), period_kwh
    _set_money(attrs, credit, bill, ec)
    if daily is not None:
        _store_daily(st, daily, caps)
    st.updated = now


def _set_money(attrs: AttributeStore, credit: float, bill: float, ec: float) -> None:
    attrs.set(PREPAYMENT, A_CREDIT_REMAINING, _clamp_i32(credit))
    attrs.set(METERING, A_BILL_TO_DATE, min(max(int(bill), 0), 0xFFFFFFFF))
    attrs.set(PREPAYMENT, A_EC_REMAINING, _clamp_i32(ec))


def _clamp_i32(v: float) -> int:
    return max(-(2**31), min(int(v), 2**31 - 1))


def _collect_debts(st: GasMeterData, t: int, credit: float, prepay: bool, caps: Settings) -> float:
    """Time-based debt recovery at midnight (prepayment mode only)."""
    if not prepay:
        return credit
    a = st.attrs
    total = 0
    for n in range(3):
        base = DEBT_BASE + n * DEBT_STRIDE
        amount = a.int(PREPAYMENT, base + D_AMOUNT)
        if amount <= 0 or a.int(PREPAYMENT, base + D_METHOD) != DEBT_METHOD_TIME_BASED:
            total += max(amount, 0)
            continue
        if a.int(PREPAYMENT, base + D_START) > t:
            total += amount
            continue
        days = DEBT_FREQUENCY_DAYS.get(a.int(PREPAYMENT, base + D_FREQUENCY), 1.0)
        per_day = int(a.int(PREPAYMENT, base + D_RECOVERY_AMOUNT) / days)
        take = min(amount, per_day)
        if take <= 0:
            total += amount
            continue
        a.set(PREPAYMENT, base + D_AMOUNT, amount - take)
        credit -= take
        total += amount - take
        st.debt_log = (DebtPayment(t, take, n, amount - take), *st.debt_log)[
            : caps.debt_log_capacity
        ]
    a.set(PREPAYMENT, A_ACCUMULATED_DEBT, _clamp_i32(total))
    return credit


def _record_daily(daily: array, credit: int, ec: int, debts: tuple[int, int, int]) -> None:
    """Append one prepayment daily read log record (credit, EC, debts 1-3)."""
    daily.extend((_clamp_i32(credit), _clamp_i32(ec), *(_clamp_i32(d) for d in debts)))


def _store_daily(st: GasMeterData, daily: array, caps: Settings) -> None:
    """Keep the newest ``daily_capacity`` records; the array is new, never shared."""
    excess = len(daily) // DAILY_FIELDS - caps.daily_capacity
    if excess > 0:
        del daily[: excess * DAILY_FIELDS]
        st.daily_first += excess * DAY
    st.daily = daily


def _active_tariff_calendar(st: GasMeterData) -> Calendar | None:
    for ctype in (0, 1, 2):
        cid = st.active_calendars.get(ctype)
        if cid is not None and cid in st.calendars:
            return st.calendars[cid]
    return None


def daily_record(st: GasMeterData, midnight: int) -> tuple[int, int, int, int, int] | None:
    """Prepayment daily record at a midnight: stored after creation, quiet history before."""
    if midnight < st.commissioned or midnight > st.updated:
        return None
    if midnight < st.daily_first:
        if midnight >= st.created:
            return None
        credit, debts = quiet_balances(st, midnight)
        return credit, 0, *debts
    i = (midnight - st.daily_first) // DAY * DAILY_FIELDS
    if i + DAILY_FIELDS > len(st.daily):
        return None
    r = st.daily[i : i + DAILY_FIELDS]
    return r[0], r[1], r[2], r[3], r[4]


def quiet_balances(st: GasMeterData, t: int) -> tuple[int, tuple[int, int, int]]:
    """Credit and debts at ``t`` before creation: the profile's defaults, except the
    seeded debt as its recovery had left it (:class:`History`)."""
    p = st.attrs.profile
    debts = [_default_int(p, DEBT_BASE + n * DEBT_STRIDE + D_AMOUNT) for n in range(3)]
    h = st.history
    if h.debt >= 0 and t >= h.start:
        debts[h.debt] = h.debt_at(t)
    return _default_int(p, A_CREDIT_REMAINING), (debts[0], debts[1], debts[2])


def _default_int(profile: DeviceProfile, attr: int) -> int:
    """A Prepayment attribute's profile default (0 when absent or not an integer)."""
    spec = profile.spec(PREPAYMENT, attr)
    return spec.default.value if spec is not None and isinstance(spec.default.value, int) else 0


def initial_billing(profile: DeviceProfile, commissioned: int) -> Period:
    """The billing period a meter is commissioned with (quarterly unless the profile says)."""
    return Period(
        commissioned,
        int(profile.setting("billing", "duration", 3)),
        int(profile.setting("billing", "duration_type", TIMEBASE_MONTHS)),
    )


def commissioning_snapshot(st: GasMeterData) -> Snapshot:
    """Commissioning set the tariff and the payment mode: the meter snapshotted both."""
    spec = st.attrs.profile.spec(PREPAYMENT, A_PAYMENT_CONTROL)
    prepay = spec is not None and int(spec.default.value or 0) & PCC_PREPAYMENT_ENABLED  # type: ignore[arg-type]
    mode = CAUSE_MODE_TO_PREPAYMENT if prepay else CAUSE_MODE_TO_CREDIT
    t = st.commissioned
    credit, debts = quiet_balances(st, t)
    return Snapshot(t // DAY, t, CAUSE_TARIFF_CHANGE | mode, st.register_at(t), (0,) * MAX_TIERS,
                    (0,) * MAX_BLOCKS, credit, 0, debts)  # fmt: skip


# ---------------------------------------------------------------------------
# Service history: what a meter in service logged before gbhil created it
# ---------------------------------------------------------------------------


class HistoryPlan(NamedTuple):
    """A profile's ``[history]`` log seeding, read once (:func:`history_plan`)."""

    seed_logs: bool
    top_up_days: int
    top_up_jitter_days: int
    top_up_pounds: tuple[int, int]
    top_up_step: int
    debt_amount: int
    network_log_days: int
    network_interval: int
    network_samples: int


_HISTORY_PLANS: dict[DeviceProfile, HistoryPlan] = {}
#: Random bytes per seeded top up: day jitter, time of day (2), amount, UTRN MAC (4).
_TOP_UP_BYTES = 8
#: Top ups happen between 07:00 and 22:00.
_TOP_UP_FIRST_MINUTE, _TOP_UP_WINDOW_MINUTES = 7 * 60, 15 * 60
_MONEY_PER_POUND = 100 * MONEY_PER_PENNY


def history_plan(profile: DeviceProfile) -> HistoryPlan:
    """Parse and check ``[history]`` (``top_ups``, ``debt``, ``network_data_log``)."""
    plan = _HISTORY_PLANS.get(profile)
    if plan is not None:
        return plan
    h = profile.settings.get("history", {})
    top, debt, net = (h.get(k, {}) for k in ("top_ups", "debt", "network_data_log"))
    lo, hi = (int(x) for x in top.get("pounds", (10, 40)))
    plan = HistoryPlan(  # a profile without the tables seeds nothing
        bool(h.get("seed_logs", True)),
        int(top.get("interval_days", 0)),
        int(top.get("jitter_days", 0)),
        (lo, hi),
        int(top.get("step_pounds", 5)),
        int(debt.get("amount", 0)),
        int(net.get("started_days_before_creation", -1)),
        int(net.get("interval_s", 360)),
        int(net.get("max_samples", 0)),
    )
    if plan.top_up_days > 0 and not 0 <= plan.top_up_jitter_days < plan.top_up_days:
        raise ValueError("history.top_ups: jitter_days must be below interval_days")
    if not (0 < lo <= hi <= VALUE_MAX and plan.top_up_step > 0):
        raise ValueError(f"history.top_ups: pounds must rise within 1..{VALUE_MAX}, step > 0")
    if not 0 < plan.network_interval <= DAY or not 0 <= plan.network_samples <= 0xFFFF:
        raise ValueError("history.network_data_log: interval_s 1..86400, max_samples 0..65535")
    _HISTORY_PLANS[profile] = plan
    return plan


def history_utrn(counter_bits: int, pounds: int, mac: bytes) -> bytes:
    """A UTRN-shaped top-up reference: PTUT fields and check digit as GBCS has them; the
    MAC is seeded bytes, not a MAC (no supplier key at creation)."""
    high = ptut_high(counter_bits << COUNTER_SHIFT, pounds, VALUE_CLASS_POUNDS)
    digits = str(PTUT_OFFSET + (high << 32 | int.from_bytes(mac, "big")))
    return (digits + check_digit(digits)).encode()


def seed_history(st: GasMeterData, eui: bytes) -> None:
    """Seed a new meter's logs with its service since commissioning (profile ``[history]``).

    From the EUI and the creation time: a UTRN top up every ``interval_days``
    (+- ``jitter_days``) between 07:00 and 22:00; a debt of ``amount`` set at
    commissioning on the first payment-based debt register, recovered at its
    Debt Recovery Top Up Percentage from each top up; a network data log
    started ``started_days_before_creation`` days before the day of creation.
    The top-up and debt logs keep their newest entries; what is outstanding
    at creation stays on the debt register.
    """
    plan = history_plan(st.attrs.profile)
    if not plan.seed_logs:
        return
    caps = settings(st.attrs.profile)
    days = (st.created - st.commissioned) // DAY + 1
    shortest = max(plan.top_up_days - plan.top_up_jitter_days, 1)
    count = days // shortest + 1 if plan.top_up_days > 0 else 0
    rnd = hashlib.shake_256(b"gbhil-gsme-history" + eui).digest(3 + _TOP_UP_BYTES * count)
    top_ups = _history_top_ups(st, plan, rnd[2:], count)
    _history_debt(st, top_ups, plan.debt_amount, caps)
    newest = top_ups[::-1][: caps.top_up_capacity]
    st.top_ups = tuple(
        TopUp(history_utrn(k & COUNTER_BITS_MAX, amount // _MONEY_PER_POUND, mac), amount, t)
        for k, t, amount, mac in newest
    )
    if plan.network_samples and plan.network_log_days >= 0:
        interval = plan.network_interval
        slot = int.from_bytes(rnd[:2], "big") % max(DAY // interval, 1) * interval
        day = st.created - st.created % DAY - plan.network_log_days * DAY
        start = min(max(day + slot, st.commissioned), st.created)
        sampling = Sampling(NETWORK_DATA_SAMPLE_ID, start, SAMPLE_TYPE_CONSUMPTION, interval,
                            plan.network_samples)  # fmt: skip
        st.sampling = (sampling,)


def _history_top_ups(
    st: GasMeterData, plan: HistoryPlan, rnd: bytes, count: int
) -> list[tuple[int, int, int, bytes]]:
    """(number, time, amount, MAC bytes) of the seeded top ups before creation, oldest first.

    ``rnd``: one byte for the first top up's day, then ``_TOP_UP_BYTES`` per top up.
    """
    out: list[tuple[int, int, int, bytes]] = []
    if not count:
        return out
    lo, hi = plan.top_up_pounds
    choices = (hi - lo) // plan.top_up_step + 1
    day = st.commissioned // DAY + 1 + rnd[0] % plan.top_up_days
    spread = 2 * plan.top_up_jitter_days + 1
    for k in range(count):
        r = rnd[1 + k * _TOP_UP_BYTES : 1 + (k + 1) * _TOP_UP_BYTES]
        minute = _TOP_UP_FIRST_MINUTE + int.from_bytes(r[1:3], "big") % _TOP_UP_WINDOW_MINUTES
        t = day * DAY + minute * 60
        if t >= st.created:
            break
        pounds = lo + r[3] % choices * plan.top_up_step
        out.append((k + 1, t, pounds * _MONEY_PER_POUND, r[4:8]))
        day += plan.top_up_days + r[0] % spread - plan.top_up_jitter_days
    return out


def _history_debt(
    st: GasMeterData, top_ups: list[tuple[int, int, int, bytes]], amount: int, caps: Settings
) -> None:
    """Recover a debt of ``amount`` set at commissioning from the seeded top ups."""
    a = st.attrs
    n = next((n for n in range(3)
              if a.int(PREPAYMENT, DEBT_BASE + n * DEBT_STRIDE + D_METHOD) == DEBT_METHOD_PERCENTAGE
              and a.int(PREPAYMENT, DEBT_BASE + n * DEBT_STRIDE + D_TOP_UP_PERCENTAGE) > 0),
             None)  # fmt: skip
    if n is None or amount <= 0:
        return
    base = DEBT_BASE + n * DEBT_STRIDE
    percentage = a.int(PREPAYMENT, base + D_TOP_UP_PERCENTAGE)
    left = amount
    paid: list[DebtPayment] = []
    for _, t, paid_in, _ in top_ups:
        take = min(left, paid_in * percentage // PERCENTAGE_SCALE)
        if take > 0:
            left -= take
            paid.append(DebtPayment(t, take, n, left))
    st.history = History(n, st.commissioned, amount, tuple(paid))
    st.debt_log = tuple(paid[::-1][: caps.debt_log_capacity])
    if left != a.int(PREPAYMENT, base + D_AMOUNT):
        a.set(PREPAYMENT, base + D_AMOUNT, left)
        a.set(PREPAYMENT, base + D_START, st.commissioned)
        a.set(PREPAYMENT, A_ACCUMULATED_DEBT, _clamp_i32(sum(st.debts())))


# ---------------------------------------------------------------------------
# Command layouts (received direction) and response layouts
# ---------------------------------------------------------------------------

U8, U16, U24, U32, U48 = "u8", "u16", "u24", "u32", "u48"
I32, UTC, MAP8, MAP16, MAP32, ENUM8 = "i32", "utc", "map8", "map16", "map32", "enum8"
OCT, DATE, REST = "octstr", "date", "rest"

L_PUBLISH_BLOCK_PERIOD = Layout((("provider", U32), ("issuer_event", U32), ("start", UTC),
    ("duration", U24), ("control", MAP8), ("duration_type", MAP8), ("tariff_type", MAP8),
    ("resolution", ENUM8)))  # fmt: skip
L_PUBLISH_CONVERSION_FACTOR = Layout(
    (("issuer_event", U32), ("start", UTC), ("factor", U32), ("trailing", MAP8))
)
L_PUBLISH_CALORIFIC_VALUE = Layout(
    (("issuer_event", U32), ("start", UTC), ("value", U32), ("unit", ENUM8), ("trailing", MAP8))
)
L_PUBLISH_TARIFF_INFORMATION = Layout((("provider", U32), ("issuer_event", U32),
    ("tariff_id", U32), ("start", UTC), ("tariff_type", MAP8), ("label", OCT), ("tiers", U8),
    ("block_thresholds", U8), ("unit", ENUM8), ("currency", U16), ("trailing", MAP8),
    ("standing_charge", U32), ("tier_block_mode", U8), ("multiplier", U24),
    ("divisor", U24)))  # fmt: skip
L_PUBLISH_PRICE_MATRIX = Layout(
    (("provider", U32), ("issuer_event", U32), ("start", UTC), ("tariff_id", U32),
     ("command_index", U8), ("commands", U8), ("control", MAP8)),
    (("tier_block", U8), ("price", U32)),
)  # fmt: skip
L_PUBLISH_BLOCK_THRESHOLDS = Layout(
    (("provider", U32), ("issuer_event", U32), ("start", UTC), ("tariff_id", U32),
     ("command_index", U8), ("commands", U8), ("control", MAP8), ("thresholds", REST))
)  # fmt: skip
L_PUBLISH_BILLING_PERIOD = Layout((("provider", U32), ("issuer_event", U32), ("start", UTC),
    ("duration", U24), ("duration_type", MAP8), ("tariff_type", MAP8)))  # fmt: skip
L_GET_CURRENT_PRICE = Layout((("options", MAP8),))
L_GET_BILLING_PERIOD = Layout((("earliest", UTC), ("min_issuer_event", U32), ("count", U8),
    ("tariff_type", MAP8)))  # fmt: skip
L_PUBLISH_PRICE = Layout((("provider", U32), ("label", OCT), ("issuer_event", U32),
    ("current_time", UTC), ("unit", ENUM8), ("currency", U16), ("trailing_tier", MAP8),
    ("tiers_register", MAP8), ("start", UTC), ("duration", U16), ("price", U32)))  # fmt: skip

L_PUBLISH_CALENDAR = Layout((("provider", U32), ("issuer_event", U32), ("calendar_id", U32),
    ("start", UTC), ("calendar_type", ENUM8), ("time_reference", U8), ("name", OCT),
    ("seasons", U8), ("weeks", U8), ("days", U8)))  # fmt: skip
L_PUBLISH_DAY_PROFILE = Layout(
    (("provider", U32), ("issuer_event", U32), ("calendar_id", U32), ("day_id", U8),
     ("entries", U8), ("command_index", U8), ("commands", U8), ("calendar_type", ENUM8)),
    (("start_minute", U16), ("value", U8)),
)  # fmt: skip
L_PUBLISH_WEEK_PROFILE = Layout((("provider", U32), ("issuer_event", U32), ("calendar_id", U32),
    ("week_id", U8), ("mon", U8), ("tue", U8), ("wed", U8), ("thu", U8), ("fri", U8),
    ("sat", U8), ("sun", U8)))  # fmt: skip
L_PUBLISH_SEASONS = Layout(
    (("provider", U32), ("issuer_event", U32), ("calendar_id", U32), ("command_index", U8),
     ("commands", U8)),
    (("date", DATE), ("week_id", U8)),
)  # fmt: skip
L_PUBLISH_SPECIAL_DAYS = Layout(
    (("provider", U32), ("issuer_event", U32), ("calendar_id", U32), ("start", UTC),
     ("calendar_type", ENUM8), ("total", U8), ("command_index", U8), ("commands", U8)),
    (("date", DATE), ("day_id", U8)),
)  # fmt: skip
L_GET_CALENDAR = Layout((("earliest", UTC), ("min_issuer_event", U32), ("count", U8),
    ("calendar_type", ENUM8), ("provider", U32)))  # fmt: skip
L_GET_DAY_PROFILES = Layout(
    (("provider", U32), ("calendar_id", U32), ("start_id", U8), ("count", U8))
)
L_GET_SEASONS = Layout((("provider", U32), ("calendar_id", U32)))
L_GET_SPECIAL_DAYS = Layout((("start", UTC), ("count", U8), ("calendar_type", ENUM8),
    ("provider", U32), ("calendar_id", U32)))  # fmt: skip

L_GET_SNAPSHOT = Layout((("earliest", UTC), ("latest", UTC), ("offset", U8), ("cause", MAP32)))
L_START_SAMPLING = Layout((("issuer_event", U32), ("start", UTC), ("sample_type", ENUM8),
    ("interval", U16), ("max_samples", U16)))  # fmt: skip
L_GET_SAMPLED_DATA = Layout(
    (("sample_id", U16), ("earliest", UTC), ("sample_type", ENUM8), ("count", U16))
)
L_CHANGE_SUPPLY = Layout((("provider", U32), ("issuer_event", U32), ("request_time", UTC),
    ("implementation", UTC), ("proposed", ENUM8), ("control", MAP8)))  # fmt: skip
L_SET_SUPPLY_STATUS = Layout((("issuer_event", U32), ("tamper", ENUM8), ("depletion", ENUM8),
    ("uncontrolled", ENUM8), ("load_limit", ENUM8)))  # fmt: skip
L_SET_UNCONTROLLED_FLOW = Layout((("provider", U32), ("issuer_event", U32),
    ("threshold", U16), ("unit", ENUM8), ("multiplier", U16), ("divisor", U16),
    ("stabilisation", U8), ("measurement", U16)))  # fmt: skip
L_PUBLISH_SNAPSHOT_HEAD = Layout((("snapshot_id", U32), ("time", UTC), ("found", U8),
    ("command_index", U8), ("commands", U8), ("cause", MAP32),
    ("payload_type", ENUM8)))  # fmt: skip
L_SAMPLED_DATA_HEAD = Layout((("sample_id", U16), ("start", UTC), ("sample_type", ENUM8),
    ("interval", U16), ("count", U16)))  # fmt: skip
L_SUPPLY_STATUS_RESPONSE = Layout((("provider", U32), ("issuer_event", U32),
    ("implementation", UTC), ("status", ENUM8)))  # fmt: skip

L_SELECT_EC = Layout((("issue_time", UTC), ("originator", ENUM8)))
L_CHANGE_DEBT = Layout((("issuer_event", U32), ("label", OCT), ("amount", I32),
    ("method", ENUM8), ("amount_type", ENUM8), ("start", UTC), ("collection_time", U16),
    ("frequency", ENUM8), ("recovery_amount", I32), ("percentage", U16)))  # fmt: skip
L_EC_SETUP = Layout((("issuer_event", U32), ("start", UTC), ("limit", U32), ("threshold", U32)))
L_CONSUMER_TOP_UP = Layout((("originator", ENUM8), ("code", OCT)))
L_CREDIT_ADJUSTMENT = Layout(
    (("issuer_event", U32), ("start", UTC), ("adjustment_type", ENUM8), ("value", I32))
)
L_CHANGE_PAYMENT_MODE = Layout((("provider", U32), ("issuer_event", U32),
    ("implementation", UTC), ("configuration", MAP16), ("cut_off", I32)))  # fmt: skip
L_GET_TOP_UP_LOG = Layout((("latest", UTC), ("count", U8)))
L_SET_LOW_CREDIT = Layout((("level", U32),))
L_GET_DEBT_LOG = Layout((("latest", UTC), ("count", U8), ("debt_type", ENUM8)))
L_SET_MAX_CREDIT = Layout((("provider", U32), ("issuer_event", U32), ("implementation", UTC),
    ("max_credit", U32), ("max_per_top_up", U32)))  # fmt: skip
L_SET_DEBT_CAP = Layout(
    (("provider", U32), ("issuer_event", U32), ("implementation", UTC), ("cap", I32))
)
L_CHANGE_PAYMENT_MODE_RESPONSE = Layout((("friendly_credit", MAP8), ("calendar_id", U32),
    ("ec_limit", U32), ("ec_threshold", U32)))  # fmt: skip
L_TOP_UP_RESPONSE = Layout((("result", ENUM8), ("value", I32), ("source", ENUM8), ("credit", I32)))
L_PREPAY_SNAPSHOT = Layout((("snapshot_id", U32), ("time", UTC), ("found", U8),
    ("command_index", U8), ("commands", U8), ("cause", MAP32), ("payload_type", ENUM8),
    ("accumulated_debt", I32), ("debt1", U32), ("debt2", U32), ("debt3", U32),
    ("ec", I32), ("credit", I32)))  # fmt: skip
L_TOP_UP_LOG = Layout(
    (("command_index", U8), ("commands", U8)), (("code", OCT), ("amount", I32), ("time", UTC))
)
L_DEBT_LOG = Layout(
    (("command_index", U8), ("commands", U8)),
    (("time", UTC), ("amount", U32), ("debt_type", ENUM8), ("outstanding", U32)),
)

L_DISPLAY_MESSAGE = Layout((("message_id", U32), ("control", MAP8), ("start", UTC),
    ("duration", U16), ("text", OCT), ("extended_control", "map8?")))  # fmt: skip
L_CANCEL_MESSAGE = Layout((("message_id", U32), ("control", MAP8)))

L_CHANGE_OF_TENANCY = Layout((("provider", U32), ("issuer_event", U32), ("tariff_type", MAP8),
    ("implementation", UTC), ("control", MAP32)))  # fmt: skip
L_NEW_PASSWORD = Layout((("issuer_event", U32), ("implementation", UTC), ("duration", U16),
    ("password_type", ENUM8), ("password", OCT)))  # fmt: skip
L_UPDATE_SITE_ID = Layout(
    (("issuer_event", U32), ("time", UTC), ("provider", U32), ("site_id", OCT))
)
L_SET_EVENT_CONFIGURATION = Layout((("issuer_event", U32), ("start", UTC),
    ("configuration", MAP8), ("control", ENUM8), ("payload", REST)))  # fmt: skip
L_GET_EVENT_CONFIGURATION = Layout((("event_id", U16),))
L_UPDATE_CIN = Layout(
    (("issuer_event", U32), ("implementation", UTC), ("provider", U32), ("cin", OCT))
)
L_REPORT_EVENT_CONFIGURATION = Layout(
    (("command_index", U8), ("commands", U8)), (("event_id", U16), ("configuration", MAP8))
)

L_GET_EVENT_LOG = Layout((("control_log", MAP8), ("event_id", U16), ("start", UTC),
    ("end", UTC), ("count", U8), ("offset", U16)))  # fmt: skip
L_CLEAR_EVENT_LOG = Layout((("log_id", MAP8),))
L_PUBLISH_EVENT_LOG = Layout(
    (("total", U16), ("command_index", U8), ("commands", U8), ("control", MAP8)),
    (("log_id", U8), ("event_id", U16), ("time", UTC), ("data", OCT)),
)
L_CLEAR_EVENT_LOG_RESPONSE = Layout((("cleared", MAP8),))

# Response command ids (sent in the opposite direction)
R_PUBLISH_PRICE, R_PUBLISH_BILLING_PERIOD = 0x00, 0x09
R_PUBLISH_CALENDAR, R_PUBLISH_DAY, R_PUBLISH_WEEK, R_PUBLISH_SEASONS, R_PUBLISH_SPECIAL = (
    0x00,
    0x01,
    0x02,
    0x03,
    0x04,
)
R_PUBLISH_SNAPSHOT, R_SAMPLED_DATA, R_SUPPLY_STATUS, R_START_SAMPLING = 0x06, 0x07, 0x0C, 0x0D
R_PUBLISH_PREPAY_SNAPSHOT, R_CHANGE_PAYMENT_MODE, R_TOP_UP = 0x01, 0x02, 0x03
R_PUBLISH_TOP_UP_LOG, R_PUBLISH_DEBT_LOG = 0x05, 0x06
R_REPORT_EVENT_CONFIGURATION = 0x04
R_PUBLISH_EVENT_LOG, R_CLEAR_EVENT_LOG = 0x01, 0x02


# ---------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------


def _gas(ctx: Ctx) -> GasMeter:
    dev = ctx.device
    assert isinstance(dev, GasMeter)
    return dev


def _caps(ctx: Ctx) -> Settings:
    return settings(_gas(ctx).profile_data)


def _log_event(ctx: Ctx, st: GasMeterData, log_id: int, event_id: int) -> None:
    st.log(log_id, event_id, ctx.now, cap=_caps(ctx).event_capacity)


# -- Price ----------------------------------------------------------------------------


def h_publish_tariff_information(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    if f["tiers"] > MAX_TIERS or f["block_thresholds"] > len(A_BLOCK_THRESHOLD):
        raise ZclError(STATUS_INVALID_FIELD, "more tiers or block thresholds than a GSME has")
    if f["divisor"] == 0:
        raise ZclError(STATUS_INVALID_VALUE, "block threshold divisor 0")

    def effect(s: GasMeterData, now: int) -> None:
        s.tariff = Tariff(
            f["tariff_id"], f["issuer_event"], f["provider"], f["tariff_type"] & 0xF0, f["label"],
            f["tiers"], f["block_thresholds"], f["tier_block_mode"],
        )  # fmt: skip
        a = s.attrs
        a.set(PRICE, A_PRICE_UNIT, f["unit"])
        a.set(PRICE, A_CURRENCY, f["currency"])
        a.set(PRICE, A_PRICE_TRAILING, f["trailing"])
        a.set(PRICE, A_STANDING_CHARGE, f["standing_charge"])
        a.set(PRICE, A_THRESHOLD_MULTIPLIER, f["multiplier"])
        a.set(PRICE, A_THRESHOLD_DIVISOR, f["divisor"])
        s.take_snapshot(now, CAUSE_TARIFF_CHANGE, settings(s.attrs.profile).snapshot_capacity)

    return Result(effect, key="tariff-information")


def h_publish_price_matrix(ctx: Ctx, st: GasMeterData) -> Result:
    tou = bool(ctx.fields["control"] & 0x01)
    prices: list[tuple[int, int]] = []
    for r in ctx.rows:
        if tou:
            tier = r["tier_block"] & 0x0F if r["tier_block"] & 0x0F else r["tier_block"] >> 4
            if not 1 <= tier <= MAX_TIERS:
                raise ZclError(STATUS_INVALID_FIELD, f"tier {tier}")
            prices.append((A_TIER_PRICE[tier - 1], r["price"]))
        else:
            block = r["tier_block"] & 0x0F
            if block >= MAX_BLOCKS:
                raise ZclError(STATUS_INVALID_FIELD, f"block {block + 1}")
            prices.append((A_BLOCK_PRICE[block], r["price"]))

    def effect(s: GasMeterData, now: int) -> None:
        for attr, price in prices:
            s.attrs.set(PRICE, attr, price)

    return Result(effect, key="price-matrix")


def h_publish_block_thresholds(ctx: Ctx, st: GasMeterData) -> Result:
    data: bytes = ctx.fields["thresholds"]
    values: list[int] = []
    pos = 0
    while pos < len(data):
        n = data[pos] & 0x0F
        end = pos + 1 + 6 * n
        if end > len(data):
            raise ZclError(0x80, "block thresholds end early")
        values += [int.from_bytes(data[p : p + 6], "little") for p in range(pos + 1, end, 6)]
        pos = end
    if len(values) > len(A_BLOCK_THRESHOLD) or values != sorted(values):
        raise ZclError(STATUS_INVALID_VALUE, "block thresholds must rise, at most three")

    def effect(s: GasMeterData, now: int) -> None:
        for attr, v in zip(A_BLOCK_THRESHOLD, values, strict=False):
            s.attrs.set(PRICE, attr, v)

    return Result(effect, key="block-thresholds")


def h_publish_conversion_factor(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    cf = f["factor"] / 10 ** (f["trailing"] >> 4)
    if not CF_RANGE[0] <= cf <= CF_RANGE[1]:
        raise ZclError(STATUS_INVALID_VALUE, f"conversion factor {cf} implausible")

    def effect(s: GasMeterData, now: int) -> None:
        s.attrs.set(PRICE, A_CONVERSION_FACTOR, f["factor"])
        s.attrs.set(PRICE, A_CF_TRAILING, f["trailing"])

    return Result(effect)


def h_publish_calorific_value(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    cv = f["value"] / 10 ** (f["trailing"] >> 4)
    if not CV_RANGE_MJ[0] <= cv <= CV_RANGE_MJ[1]:
        raise ZclError(STATUS_INVALID_VALUE, f"calorific value {cv} MJ/m3 implausible")

    def effect(s: GasMeterData, now: int) -> None:
        s.attrs.set(PRICE, A_CALORIFIC_VALUE, f["value"])
        s.attrs.set(PRICE, A_CV_UNIT, f["unit"])
        s.attrs.set(PRICE, A_CV_TRAILING, f["trailing"])

    return Result(effect)


def _period_from(f: Fields, block: bool) -> Period:
    if f["duration"] == 0 or f["duration_type"] & 0x0F > TIMEBASE_MONTHS:
        raise ZclError(STATUS_INVALID_VALUE, "period duration")
    return Period(
        f["start"], f["duration"], f["duration_type"], f["tariff_type"], f["issuer_event"],
        f["provider"], f.get("control", 0) if block else 0, f.get("resolution", 0),
    )  # fmt: skip


def h_publish_billing_period(ctx: Ctx, st: GasMeterData) -> Result:
    period = _period_from(ctx.fields, block=False)
    st.billing = period
    return Result(changed=True)


def h_publish_block_period(ctx: Ctx, st: GasMeterData) -> Result:
    period = _period_from(ctx.fields, block=True)
    st.block_period = period
    return Result(changed=True)


def h_get_current_price(ctx: Ctx, st: GasMeterData) -> Result:
    a = st.attrs
    cal = _active_tariff_calendar(st)
    tier = cal.value_at(ctx.now)[0] if cal is not None else 1
    price = (
        a.int(PRICE, A_BLOCK_PRICE[0])
        if st.tariff.is_block
        else a.int(PRICE, A_TIER_PRICE[tier - 1])
    )
    body = L_PUBLISH_PRICE.build({
        "provider": st.tariff.provider, "label": st.tariff.label,
        "issuer_event": st.tariff.issuer_event, "current_time": ctx.now,
        "unit": a.int(PRICE, A_PRICE_UNIT), "currency": a.int(PRICE, A_CURRENCY),
        "trailing_tier": (a.int(PRICE, A_PRICE_TRAILING) & 0xF0) | tier,
        "tiers_register": (st.tariff.tiers << 4) | tier, "start": 0, "duration": 0xFFFF,
        "price": price,
    })  # fmt: skip
    return Result(respond=lambda s: [cluster_reply(ctx, R_PUBLISH_PRICE, body)])


def h_get_billing_period(ctx: Ctx, st: GasMeterData) -> Result:
    p = st.billing
    if p is None:
        return _not_found(ctx)
    body = L_PUBLISH_BILLING_PERIOD.build({
        "provider": p.provider, "issuer_event": p.issuer_event, "start": p.start,
        "duration": p.duration, "duration_type": p.duration_type, "tariff_type": p.tariff_type,
    })  # fmt: skip
    return Result(respond=lambda s: [cluster_reply(ctx, R_PUBLISH_BILLING_PERIOD, body)])


def _not_found(ctx: Ctx) -> Result:
    return Result(respond=lambda s: [default_response(ctx.component, STATUS_NOT_FOUND)])


# -- Calendar -------------------------------------------------------------------------


def _calendar(st: GasMeterData, calendar_id: int) -> Calendar:
    cal = st.calendars.get(calendar_id)
    if cal is None:
        raise ZclError(STATUS_NOT_FOUND, f"no calendar 0x{calendar_id:08X}")
    return cal


def _put_calendar(st: GasMeterData, cal: Calendar) -> None:
    st.calendars = {**st.calendars, cal.calendar_id: cal}


def h_publish_calendar(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    cid, ctype = f["calendar_id"], f["calendar_type"]
    # The definition is kept even when the activation is cancelled: the day, week and
    # season publishes that follow in the same message refer to it.
    old = st.calendars.get(cid)
    _put_calendar(st, Calendar(
        cid, ctype, f["provider"], f["issuer_event"], f["start"], f["name"],
        old.days if old else MappingProxyType({}), old.weeks if old else MappingProxyType({}),
        old.seasons if old else (), old.special_days if old else (),
    ))  # fmt: skip

    def effect(s: GasMeterData, now: int) -> None:
        if cid not in s.calendars:
            raise ZclError(STATUS_NOT_FOUND, "calendar gone")
        s.active_calendars = {**s.active_calendars, ctype: cid}

    return Result(effect, key=f"calendar:{ctype}", changed=True)


def h_publish_day_profile(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    cal = _calendar(st, f["calendar_id"])
    entries = tuple((r["start_minute"], r["value"]) for r in ctx.rows)
    if [e[0] for e in entries] != sorted(e[0] for e in entries) or any(
        e[0] >= 24 * 60 for e in entries
    ):
        raise ZclError(STATUS_INVALID_VALUE, "day profile entries must rise within the day")
    if cal.calendar_type != CAL_TYPE_FRIENDLY_CREDIT and any(
        not 0 <= e[1] <= MAX_TIERS for e in entries
    ):
        raise ZclError(STATUS_INVALID_VALUE, "price tier out of range")
    days = {**cal.days, f["day_id"]: entries}
    _put_calendar(st, _replace_cal(cal, days=MappingProxyType(days)))
    return Result(changed=True)


def h_publish_week_profile(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    cal = _calendar(st, f["calendar_id"])
    days = tuple(f[d] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    missing = [d for d in days if d not in cal.days]
    if missing:
        raise ZclError(STATUS_INVALID_VALUE, f"week refers to undefined day profiles {missing}")
    weeks = {**cal.weeks, f["week_id"]: days}
    _put_calendar(st, _replace_cal(cal, weeks=MappingProxyType(weeks)))
    return Result(changed=True)


def h_publish_seasons(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    cal = _calendar(st, f["calendar_id"])
    seasons = tuple((r["date"], r["week_id"]) for r in ctx.rows)
    missing = [w for _, w in seasons if w not in cal.weeks]
    if missing:
        raise ZclError(STATUS_INVALID_VALUE, f"seasons refer to undefined weeks {missing}")
    if f["command_index"] > 0:
        seasons = cal.seasons + seasons
    _put_calendar(st, _replace_cal(cal, seasons=seasons))
    return Result(changed=True)


def h_publish_special_days(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    cal = _calendar(st, f["calendar_id"])
    days = tuple((r["date"], r["day_id"]) for r in ctx.rows)
    if len(days) != f["total"] and f["commands"] <= 1:
        raise ZclError(STATUS_INVALID_FIELD, "special day count does not match")
    missing = [d for _, d in days if d not in cal.days]
    if missing:
        raise ZclError(STATUS_INVALID_VALUE, f"special days refer to undefined days {missing}")
    cid = cal.calendar_id

    def effect(s: GasMeterData, now: int) -> None:
        c = _calendar(s, cid)
        _put_calendar(s, _replace_cal(c, special_days=days, special_start=now))

    return Result(effect, key=f"special-days:{cal.calendar_type}")


def _replace_cal(cal: Calendar, **changes: Any) -> Calendar:
    from dataclasses import replace

    return replace(cal, **changes)


def _requested_calendar(st: GasMeterData, calendar_id: int, calendar_type: int | None) -> Calendar:
    if calendar_id in st.calendars:
        return st.calendars[calendar_id]
    if calendar_id == CAL_ID_CURRENT_FRIENDLY or calendar_type == CAL_TYPE_FRIENDLY_CREDIT:
        cid = st.active_calendars.get(CAL_TYPE_FRIENDLY_CREDIT)
    else:
        cal = _active_tariff_calendar(st)
        cid = cal.calendar_id if cal else None
    if cid is None or cid not in st.calendars:
        raise ZclError(STATUS_NOT_FOUND, "no such calendar", fatal=False)
    return st.calendars[cid]


def _cal_head(cal: Calendar) -> dict[str, int]:
    return {"provider": cal.provider, "issuer_event": cal.issuer_event,
            "calendar_id": cal.calendar_id}  # fmt: skip


def h_get_calendar(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    ctype = f["calendar_type"]
    cal = _requested_calendar(st, CAL_ID_CURRENT_TARIFF, ctype if ctype != 0xFF else None)
    body = L_PUBLISH_CALENDAR.build({
        **_cal_head(cal), "start": cal.start, "calendar_type": cal.calendar_type,
        "time_reference": 0, "name": cal.name, "seasons": len(cal.seasons),
        "weeks": len(cal.weeks), "days": len(cal.days),
    })  # fmt: skip
    return Result(respond=lambda s: [cluster_reply(ctx, R_PUBLISH_CALENDAR, body)])


def h_get_day_profiles(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    cal = _requested_calendar(st, f["calendar_id"], None)
    ids = sorted(d for d in cal.days if d >= f["start_id"])
    if f["count"]:
        ids = ids[: f["count"]]
    if not ids:
        raise ZclError(STATUS_NOT_FOUND, "no day profiles", fatal=False)
    parts = []
    for d in ids:
        entries = cal.days[d]
        body = L_PUBLISH_DAY_PROFILE.build(
            {**_cal_head(cal), "day_id": d, "entries": len(entries), "command_index": 0,
             "commands": 1, "calendar_type": cal.calendar_type},
            [{"start_minute": s, "value": v} for s, v in entries],
        )  # fmt: skip
        parts.append(cluster_reply(ctx, R_PUBLISH_DAY, body))
    return Result(respond=lambda s: parts)


def h_get_week_profiles(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    cal = _requested_calendar(st, f["calendar_id"], None)
    ids = sorted(w for w in cal.weeks if w >= f["start_id"])
    if f["count"]:
        ids = ids[: f["count"]]
    if not ids:
        raise ZclError(STATUS_NOT_FOUND, "no week profiles", fatal=False)
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    parts = [
        cluster_reply(
            ctx,
            R_PUBLISH_WEEK,
            L_PUBLISH_WEEK_PROFILE.build(
                {**_cal_head(cal), "week_id": w, **dict(zip(names, cal.weeks[w], strict=True))}
            ),
        )
        for w in ids
    ]
    return Result(respond=lambda s: parts)


def h_get_seasons(ctx: Ctx, st: GasMeterData) -> Result:
    cal = _requested_calendar(st, ctx.fields["calendar_id"], None)
    if not cal.seasons:
        raise ZclError(STATUS_NOT_FOUND, "no seasons", fatal=False)
    body = L_PUBLISH_SEASONS.build(
        {**_cal_head(cal), "command_index": 0, "commands": 1},
        [{"date": d, "week_id": w} for d, w in cal.seasons],
    )
    return Result(respond=lambda s: [cluster_reply(ctx, R_PUBLISH_SEASONS, body)])


def h_get_special_days(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    cal = _requested_calendar(st, f["calendar_id"], f["calendar_type"])
    days = cal.special_days[: f["count"]] if f["count"] else cal.special_days
    if not days:
        raise ZclError(STATUS_NOT_FOUND, "no special days", fatal=False)
    body = L_PUBLISH_SPECIAL_DAYS.build(
        {**_cal_head(cal), "start": cal.special_start, "calendar_type": cal.calendar_type,
         "total": len(days), "command_index": 0, "commands": 1},
        [{"date": d, "day_id": i} for d, i in days],
    )  # fmt: skip
    return Result(respond=lambda s: [cluster_reply(ctx, R_PUBLISH_SPECIAL, body)])


# -- Metering -----------------------------------------------------------------------------


def _snapshots_in(ctx: Ctx, st: GasMeterData) -> list[Snapshot]:
    """Snapshots matching window and cause, newest first (stored, then synthesised)."""
    f = ctx.fields
    lo, hi, cause = f["earliest"], f["latest"], f["cause"]
    found = [s for s in st.snapshots if lo <= s.time <= hi and s.cause & cause]
    if cause & CAUSE_GENERAL:
        found += _daily_snapshots(st, lo, hi)
    if cause & CAUSE_BILLING_PERIOD:
        found += _quiet_billing_snapshots(st, lo, hi)
    first = commissioning_snapshot(st)
    if first.cause & cause and lo <= first.time <= hi and first.time < st.created:
        found.append(first)
    found.sort(key=lambda s: s.time, reverse=True)
    return found


def _daily_snapshots(st: GasMeterData, lo: int, hi: int) -> list[Snapshot]:
    caps = settings(st.attrs.profile)
    oldest = st.updated - st.updated % DAY - (caps.daily_capacity - 1) * DAY
    first = max(lo + (-lo) % DAY, oldest, st.commissioned)
    out: list[Snapshot] = []
    t = first
    while t <= hi and t <= st.updated:
        rec = daily_record(st, t)
        if rec is not None:
            credit, ec, d1, d2, d3 = rec
            out.append(Snapshot(t // DAY, t, CAUSE_GENERAL, st.register_at(t), (), (), credit,
                                ec, (d1, d2, d3)))  # fmt: skip
        t += DAY
    return out


def _quiet_billing_snapshots(st: GasMeterData, lo: int, hi: int) -> list[Snapshot]:
    """Billing snapshots of the quiet history before the device was created."""
    period = initial_billing(st.attrs.profile, st.commissioned)
    out: list[Snapshot] = []
    t = period.next_boundary(max(lo - 1, st.commissioned))
    end = min(hi, st.created)
    caps = settings(st.attrs.profile)
    while t <= end and len(out) < caps.snapshot_capacity:
        total = st.register_at(t)
        credit, debts = quiet_balances(st, t)
        out.append(Snapshot(t // DAY, t, CAUSE_BILLING_PERIOD, total, (total, 0, 0, 0),
                            (0,) * MAX_BLOCKS, credit, 0, debts))  # fmt: skip
        t = period.next_boundary(t)
    return out


def h_get_snapshot(ctx: Ctx, st: GasMeterData) -> Result:
    found = _snapshots_in(ctx, st)
    off = ctx.fields["offset"]
    if off >= len(found):
        return _not_found(ctx)
    s = found[off]
    tiers = (tuple(s.tiers) + (0,) * MAX_TIERS)[:MAX_TIERS]
    blocks = (tuple(s.blocks) + (0,) * MAX_BLOCKS)[:MAX_BLOCKS]
    payload = (
        s.total.to_bytes(6, "little") + bytes((MAX_TIERS,))
        + b"".join(v.to_bytes(6, "little") for v in tiers)
        + bytes((1 << 4 | MAX_BLOCKS,)) + b"".join(v.to_bytes(6, "little") for v in blocks)
    )  # fmt: skip
    body = L_PUBLISH_SNAPSHOT_HEAD.build({
        "snapshot_id": s.snapshot_id, "time": s.time, "found": len(found), "command_index": 0,
        "commands": 1, "cause": s.cause, "payload_type": SNAPSHOT_PAYLOAD_BLOCK_TIER_NO_BILLING,
    }) + payload  # fmt: skip
    return Result(respond=lambda _: [cluster_reply(ctx, R_PUBLISH_SNAPSHOT, body)])


def h_start_sampling(ctx: Ctx, st: GasMeterData) -> Result:
    """GCS31: (re)start the network data log; an unusable request answers id 0xFFFF."""
    f = ctx.fields
    if f["interval"] == 0 or f["max_samples"] == 0 or f["sample_type"] != SAMPLE_TYPE_CONSUMPTION:
        body = SAMPLE_ID_INVALID.to_bytes(2, "little")
        return Result(respond=lambda s: [cluster_reply(ctx, R_START_SAMPLING, body)])
    start = f["start"] or ctx.now
    session = Sampling(
        NETWORK_DATA_SAMPLE_ID, start, f["sample_type"], f["interval"], f["max_samples"]
    )
    st.sampling = (session,)  # (re)starts the network data log: old samples are gone
    body = NETWORK_DATA_SAMPLE_ID.to_bytes(2, "little")
    return Result(respond=lambda s: [cluster_reply(ctx, R_START_SAMPLING, body)], changed=True)


def h_get_sampled_data(ctx: Ctx, st: GasMeterData) -> Result:
    """Profile data (sample id 0, half-hourly) or a Start Sampling session's samples."""
    f = ctx.fields
    sid, earliest, count = f["sample_id"], f["earliest"], f["count"]
    if sid == SAMPLE_ID_PROFILE:
        interval = PROFILE_INTERVAL
        lo = max(st.commissioned, st.updated - _caps(ctx).profile_capacity_s)
        first = max(_align_up(earliest, interval), _align_up(lo, interval))
        end = min(_align_up(earliest, interval) + count * interval, st.updated)
        n = max(0, (end - first) // interval)
    else:
        session = next((x for x in st.sampling if x.sample_id == sid), None)
        if session is None:
            return _not_found(ctx)
        interval = session.interval
        k = max(0, -((session.start - earliest) // interval))
        done = min(session.max_samples, max(0, (st.updated - session.start) // interval))
        first = session.start + k * interval
        n = max(0, min(count, done - k))
    if n == 0:
        return _not_found(ctx)
    samples = [
        min(st.slot_volume(first + i * interval, first + (i + 1) * interval), 0xFFFFFF)
        for i in range(n)
    ]
    body = L_SAMPLED_DATA_HEAD.build({
        "sample_id": sid, "start": first, "sample_type": SAMPLE_TYPE_CONSUMPTION,
        "interval": interval, "count": n,
    }) + b"".join(v.to_bytes(3, "little") for v in samples)  # fmt: skip
    return Result(respond=lambda s: [cluster_reply(ctx, R_SAMPLED_DATA, body)])


def _align_up(t: int, step: int) -> int:
    return t + (-t) % step


def h_change_supply(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    proposed = f["proposed"]
    if proposed == SUPPLY_ON:
        raise ZclError(STATUS_ACTION_DENIED, "a gas valve is never opened remotely")
    if proposed not in (SUPPLY_OFF, SUPPLY_ARMED):
        raise ZclError(STATUS_INVALID_VALUE, f"supply status {proposed}")

    def effect(s: GasMeterData, now: int) -> None:
        s.set_valve(proposed, now)
        event = EV_SUPPLY_ARMED if proposed == SUPPLY_ARMED else EV_VALVE_CLOSED
        s.log(LOG_GENERAL, event, now, cap=settings(s.attrs.profile).event_capacity)

    def respond(s: GasMeterData) -> list[Part]:
        if not f["control"] & SUPPLY_ACK_REQUIRED:
            return [default_response(ctx.component, STATUS_SUCCESS)]
        body = L_SUPPLY_STATUS_RESPONSE.build({
            "provider": f["provider"], "issuer_event": f["issuer_event"],
            "implementation": f["implementation"], "status": s.supply(),
        })  # fmt: skip
        return [cluster_reply(ctx, R_SUPPLY_STATUS, body)]

    return Result(effect, respond, key="supply")


def h_set_supply_status(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    states = (f["tamper"], f["depletion"], f["uncontrolled"])
    if any(v > SUPPLY_STATE_MAX for v in states):
        raise ZclError(STATUS_INVALID_VALUE, "supply state out of range")
    for attr, v in zip((A_SUPPLY_TAMPER, A_SUPPLY_DEPLETION, A_SUPPLY_UNCONTROLLED_FLOW), states,
                       strict=True):  # fmt: skip
        st.attrs.set(METERING, attr, v)
    return Result(changed=True)


def h_set_uncontrolled_flow(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    if f["divisor"] == 0 or f["multiplier"] == 0:
        raise ZclError(STATUS_INVALID_VALUE, "multiplier and divisor must not be 0")
    keys = ("threshold", "unit", "multiplier", "divisor", "stabilisation", "measurement")
    for attr, k in zip(A_UNCONTROLLED_FLOW, keys, strict=True):
        st.attrs.set(METERING, attr, f[k])
    return Result(changed=True)


# -- Prepayment -----------------------------------------------------------------------------


def h_select_emergency_credit(ctx: Ctx, st: GasMeterData) -> Result:
    a = st.attrs
    if not st.prepayment():
        raise ZclError(STATUS_ACTION_DENIED, "emergency credit needs prepayment mode")
    if a.int(PREPAYMENT, A_EC_REMAINING) > 0:
        raise ZclError(STATUS_ACTION_DENIED, "emergency credit already in use")
    if st.credit() > a.int(PREPAYMENT, A_EC_THRESHOLD):
        raise ZclError(STATUS_ACTION_DENIED, "credit above the emergency credit threshold")
    a.set(PREPAYMENT, A_EC_REMAINING, a.int(PREPAYMENT, A_EC_LIMIT))
    _log_event(ctx, st, LOG_GENERAL, EV_EC_ACTIVATED)
    if st.supply() == SUPPLY_OFF:
        st.set_valve(SUPPLY_ARMED, ctx.now)
    return Result(changed=True)


def h_change_debt(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    kind = f["amount_type"]
    if kind > 5 or f["method"] > 2 or f["frequency"] not in DEBT_FREQUENCY_DAYS:
        raise ZclError(STATUS_INVALID_FIELD, "debt amount type, method or frequency")
    if f["percentage"] > PERCENTAGE_SCALE or f["recovery_amount"] < 0:
        raise ZclError(STATUS_INVALID_VALUE, "recovery amount or percentage")
    n, incremental = kind // 2, kind % 2 == 1
    base = DEBT_BASE + n * DEBT_STRIDE
    a = st.attrs
    amount = a.int(PREPAYMENT, base + D_AMOUNT) + f["amount"] if incremental else f["amount"]
    if not 0 <= amount <= 0xFFFFFFFF:
        raise ZclError(STATUS_INVALID_VALUE, f"debt {n + 1} would become {amount}")
    others = sum(d for i, d in enumerate(st.debts()) if i != n)
    cap = a.int(PREPAYMENT, A_OVERALL_DEBT_CAP)
    if cap > 0 and others + amount > cap:
        raise ZclError(STATUS_INVALID_VALUE, "overall debt cap exceeded")
    a.set(PREPAYMENT, base + D_LABEL, f["label"])
    a.set(PREPAYMENT, base + D_AMOUNT, amount)
    a.set(PREPAYMENT, base + D_METHOD, f["method"])
    a.set(PREPAYMENT, base + D_START, f["start"])
    a.set(PREPAYMENT, base + D_COLLECTION_TIME, f["collection_time"])
    a.set(PREPAYMENT, base + D_FREQUENCY, f["frequency"])
    a.set(PREPAYMENT, base + D_RECOVERY_AMOUNT, f["recovery_amount"])
    a.set(PREPAYMENT, base + D_TOP_UP_PERCENTAGE, f["percentage"])
    a.set(PREPAYMENT, A_ACCUMULATED_DEBT, _clamp_i32(others + amount))
    return Result(changed=True)


def h_emergency_credit_setup(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    if f["threshold"] > 0x7FFFFFFF or f["limit"] > 0x7FFFFFFF:
        raise ZclError(STATUS_INVALID_VALUE, "emergency credit out of range")

    def effect(s: GasMeterData, now: int) -> None:
        s.attrs.set(PREPAYMENT, A_EC_LIMIT, f["limit"])
        s.attrs.set(PREPAYMENT, A_EC_THRESHOLD, f["threshold"])

    return Result(effect, key="emergency-credit")


def h_credit_adjustment(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    kind, value = f["adjustment_type"], f["value"]
    if kind > ADJUST_CREDIT_MODE_INCREMENTAL:
        raise ZclError(STATUS_INVALID_FIELD, f"credit adjustment type {kind}")

    def effect(s: GasMeterData, now: int) -> None:
        a = s.attrs
        if kind in (ADJUST_CREDIT_INCREMENTAL, ADJUST_CREDIT_ABSOLUTE):
            new = s.credit() + value if kind == ADJUST_CREDIT_INCREMENTAL else value
            limit = a.int(PREPAYMENT, A_MAX_CREDIT_LIMIT)
            if not -(2**31) <= new < 2**31 or (limit and new > limit):
                s.log(LOG_GENERAL, EV_METER_BALANCE_TOO_HIGH, now)
                raise ZclError(STATUS_INVALID_VALUE, "meter balance out of range")
            a.set(PREPAYMENT, A_CREDIT_REMAINING, new)
        else:
            old = a.int(METERING, A_BILL_TO_DATE)
            new = old + value if kind == ADJUST_CREDIT_MODE_INCREMENTAL else value
            if not 0 <= new <= 0xFFFFFFFF:
                raise ZclError(STATUS_INVALID_VALUE, "credit-mode meter balance out of range")
            a.set(METERING, A_BILL_TO_DATE, new)

    return Result(effect, key="credit-adjustment")


def h_change_payment_mode(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    config, cut_off = f["configuration"], f["cut_off"]
    if config & ~PCC_KNOWN_BITS:
        raise ZclError(STATUS_INVALID_FIELD, f"payment control configuration 0x{config:04X}")

    def effect(s: GasMeterData, now: int) -> None:
        was = s.prepayment()
        s.attrs.set(PREPAYMENT, A_PAYMENT_CONTROL, config)
        if cut_off != CUT_OFF_UNCHANGED:
            s.attrs.set(PREPAYMENT, A_CUT_OFF_VALUE, cut_off)
        if was != s.prepayment():
            cause = CAUSE_MODE_TO_PREPAYMENT if s.prepayment() else CAUSE_MODE_TO_CREDIT
            s.take_snapshot(now, cause, settings(s.attrs.profile).snapshot_capacity)

    def respond(s: GasMeterData) -> list[Part]:
        friendly = s.active_calendars.get(CAL_TYPE_FRIENDLY_CREDIT)
        a = s.attrs
        body = L_CHANGE_PAYMENT_MODE_RESPONSE.build({
            "friendly_credit": 0x01 if friendly is not None else 0x00,
            "calendar_id": friendly or 0, "ec_limit": a.int(PREPAYMENT, A_EC_LIMIT),
            "ec_threshold": a.int(PREPAYMENT, A_EC_THRESHOLD),
        })  # fmt: skip
        return [cluster_reply(ctx, R_CHANGE_PAYMENT_MODE, body)]

    return Result(effect, respond, key="payment-mode")


def h_get_prepay_snapshot(ctx: Ctx, st: GasMeterData) -> Result:
    found = _snapshots_in(ctx, st)
    off = ctx.fields["offset"]
    if off >= len(found):
        return _not_found(ctx)
    s = found[off]
    body = L_PREPAY_SNAPSHOT.build({
        "snapshot_id": s.snapshot_id, "time": s.time, "found": len(found), "command_index": 0,
        "commands": 1, "cause": s.cause, "payload_type": PREPAY_PAYLOAD_DEBT_CREDIT,
        "accumulated_debt": _clamp_i32(sum(s.debts)), "debt1": s.debts[0], "debt2": s.debts[1],
        "debt3": s.debts[2], "ec": s.ec, "credit": s.credit,
    })  # fmt: skip
    return Result(respond=lambda _: [cluster_reply(ctx, R_PUBLISH_PREPAY_SNAPSHOT, body)])


def _log_window(ctx: Ctx) -> tuple[int, int]:
    lo = ctx.component.from_datetime or 0
    return lo, ctx.fields["latest"]


def h_get_top_up_log(ctx: Ctx, st: GasMeterData) -> Result:
    lo, hi = _log_window(ctx)
    rows = [t for t in st.top_ups if lo <= t.time <= hi]
    if ctx.fields["count"]:
        rows = rows[: ctx.fields["count"]]
    if not rows:
        return _not_found(ctx)
    body = L_TOP_UP_LOG.build(
        {"command_index": 0, "commands": 1},
        [{"code": t.code, "amount": t.amount, "time": t.time} for t in rows],
    )
    return Result(respond=lambda _: [cluster_reply(ctx, R_PUBLISH_TOP_UP_LOG, body)])


def h_get_debt_log(ctx: Ctx, st: GasMeterData) -> Result:
    lo, hi = _log_window(ctx)
    kind = ctx.fields["debt_type"]
    rows = [d for d in st.debt_log if lo <= d.time <= hi and kind in (DEBT_TYPE_ALL, d.debt_type)]
    if ctx.fields["count"]:
        rows = rows[: ctx.fields["count"]]
    if not rows:
        return _not_found(ctx)
    body = L_DEBT_LOG.build(
        {"command_index": 0, "commands": 1},
        [d._asdict() for d in rows],
    )
    return Result(respond=lambda _: [cluster_reply(ctx, R_PUBLISH_DEBT_LOG, body)])


def h_set_low_credit(ctx: Ctx, st: GasMeterData) -> Result:
    level = ctx.fields["level"]
    if level > 0x7FFFFFFF:
        raise ZclError(STATUS_INVALID_VALUE, "low credit warning level out of range")
    return Result(lambda s, now: s.attrs.set(PREPAYMENT, A_LOW_CREDIT_WARNING, level),
                  key="low-credit")  # fmt: skip


def h_set_max_credit(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    if f["max_per_top_up"] > f["max_credit"] or f["max_credit"] > 0x7FFFFFFF:
        raise ZclError(STATUS_INVALID_VALUE, "maximum credit per top up exceeds the limit")

    def effect(s: GasMeterData, now: int) -> None:
        s.attrs.set(PREPAYMENT, A_MAX_CREDIT_LIMIT, f["max_credit"])
        s.attrs.set(PREPAYMENT, A_MAX_CREDIT_PER_TOP_UP, f["max_per_top_up"])

    return Result(effect, key="max-credit")


def h_set_debt_cap(ctx: Ctx, st: GasMeterData) -> Result:
    cap = ctx.fields["cap"]
    if cap < 0:
        raise ZclError(STATUS_INVALID_VALUE, "negative debt cap")
    return Result(lambda s, now: s.attrs.set(PREPAYMENT, A_OVERALL_DEBT_CAP, cap), key="debt-cap")


def h_consumer_top_up(ctx: Ctx, st: GasMeterData) -> Result:
    """Check the UTRN (gbcs-facts 2.9) and add the credit; a rejection answers, not fails."""
    dev = _gas(ctx)
    f = ctx.fields
    cmd = ctx.cmd
    if cmd.message_code == PCS01:
        supplier = dev.keys.party(Role.SUPPLIER) or b""
        counter = None  # reconstructed from the UTRN's counter bits
    else:
        supplier, counter = cmd.originator, cmd.counter
    result, value = _top_up(ctx, st, f["code"], supplier, counter)
    credit = st.credit() if result in (TOP_UP_ACCEPTED, TOP_UP_ACCEPTED_READY_TO_ARM) else None
    body = L_TOP_UP_RESPONSE.build({
        "result": result, "value": value if credit is not None else INVALID_INT32,
        "source": f["originator"], "credit": credit if credit is not None else INVALID_INT32,
    })  # fmt: skip
    return Result(respond=lambda _: [cluster_reply(ctx, R_TOP_UP, body)], changed=True)


def _top_up(
    ctx: Ctx, st: GasMeterData, code: bytes, supplier: bytes, counter: int | None
) -> tuple[int, int]:
    dev = _gas(ctx)
    z = dev.security.shared_secret(supplier, dev.eui, prepayment=True) if supplier else None
    if z is None:
        return TOP_UP_REJECTED_ERROR, 0
    if counter is None:
        from gbhil.gbcs.errors import GbcsDecodeError
        from gbhil.gbcs.utrn import COUNTER_SHIFT, parse_utrn

        try:
            counter = parse_utrn(code).counter_bits << COUNTER_SHIFT
        except GbcsDecodeError:
            _log_event(ctx, st, LOG_SECURITY, EV_UTRN_NOT_AUTHENTIC)
            return TOP_UP_REJECTED_INVALID, 0
    check = verify_utrn(code, z, supplier, dev.eui, counter)
    if not check.ok or check.utrn is None:
        _log_event(ctx, st, LOG_SECURITY, EV_UTRN_NOT_AUTHENTIC)
        return TOP_UP_REJECTED_INVALID, 0
    if counter in st.utrn_counters:
        _log_event(ctx, st, LOG_SECURITY, EV_UTRN_DUPLICATE)
        return TOP_UP_REJECTED_DUPLICATE, 0
    amount = check.utrn.value * PENCE_PER_UNIT[check.utrn.value_class] * MONEY_PER_PENNY
    a = st.attrs
    per_top_up = a.int(PREPAYMENT, A_MAX_CREDIT_PER_TOP_UP)
    if per_top_up and amount > per_top_up:
        _log_event(ctx, st, LOG_GENERAL, EV_UTRN_EXCEEDS_MAX)
        return TOP_UP_REJECTED_TOO_LARGE, 0
    limit = a.int(PREPAYMENT, A_MAX_CREDIT_LIMIT)
    if limit and st.credit() + amount > limit:
        _log_event(ctx, st, LOG_GENERAL, EV_METER_BALANCE_TOO_HIGH)
        return TOP_UP_REJECTED_MAX_CREDIT, 0
    credit = st.credit() + amount - _recover_from_top_up(ctx, st, amount)
    a.set(PREPAYMENT, A_CREDIT_REMAINING, _clamp_i32(credit))
    caps = _caps(ctx)
    st.utrn_counters = (counter, *st.utrn_counters)[:64]
    st.top_ups = (TopUp(code, amount, ctx.now), *st.top_ups)[: caps.top_up_capacity]
    _log_event(ctx, st, LOG_GENERAL, EV_CREDIT_ADDED)
    if st.supply() == SUPPLY_OFF and credit + a.int(PREPAYMENT, A_EC_REMAINING) > a.int(
        PREPAYMENT, A_CUT_OFF_VALUE
    ):
        st.set_valve(SUPPLY_ARMED, ctx.now)
        return TOP_UP_ACCEPTED_READY_TO_ARM, amount
    return TOP_UP_ACCEPTED, amount


def _recover_from_top_up(ctx: Ctx, st: GasMeterData, amount: int) -> int:
    """Percentage-based debt recovery from a top up; returns what it took."""
    a = st.attrs
    taken = 0
    for n in range(3):
        base = DEBT_BASE + n * DEBT_STRIDE
        debt = a.int(PREPAYMENT, base + D_AMOUNT)
        if debt <= 0 or a.int(PREPAYMENT, base + D_METHOD) != DEBT_METHOD_PERCENTAGE:
            continue
        take = min(debt, amount * a.int(PREPAYMENT, base + D_TOP_UP_PERCENTAGE) // PERCENTAGE_SCALE)
        if take <= 0:
            continue
        a.set(PREPAYMENT, base + D_AMOUNT, debt - take)
        taken += take
        st.debt_log = (DebtPayment(ctx.now, take, n, debt - take), *st.debt_log)[
            : _caps(ctx).debt_log_capacity
        ]
    if taken:
        a.set(PREPAYMENT, A_ACCUMULATED_DEBT, _clamp_i32(sum(st.debts())))
    return taken


# -- Messaging, Device Management, Events ---------------------------------------------------


def h_display_message(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    st.message = (f["message_id"], f["control"], f["start"], f["duration"], f["text"])
    return Result(changed=True)


def h_cancel_message(ctx: Ctx, st: GasMeterData) -> Result:
    if st.message is None or st.message[0] != ctx.fields["message_id"]:
        raise ZclError(STATUS_NOT_FOUND, "no such message")
    st.message = None
    return Result(changed=True)


def h_change_of_tenancy(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    st.tenancy = (f["implementation"] or ctx.now, f["control"])
    if f["implementation"] <= ctx.now:
        st.take_snapshot(ctx.now, CAUSE_TENANCY_CHANGE, _caps(ctx).snapshot_capacity)
    return Result(changed=True)


def h_new_password(ctx: Ctx, st: GasMeterData) -> Result:
    st.pin_protected = bool(ctx.fields["password"])
    return Result(changed=True)


def h_update_site_id(ctx: Ctx, st: GasMeterData) -> Result:
    site = ctx.fields["site_id"]
    if not (site.isdigit() and MPRN_DIGITS[0] <= len(site) <= MPRN_DIGITS[1]):
        raise ZclError(STATUS_INVALID_VALUE, "an MPRN is 6 to 10 digits")
    st.attrs.set(METERING, A_SITE_ID, site)
    return Result(changed=True)


def h_update_cin(ctx: Ctx, st: GasMeterData) -> Result:
    cin = ctx.fields["cin"]
    if not cin.isdigit():
        raise ZclError(STATUS_INVALID_VALUE, "a CIN is digits")
    st.cin = cin
    return Result(changed=True)


def h_set_event_configuration(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    if f["control"] != 0x00:  # apply by list; GBCS uses nothing else
        raise ZclError(STATUS_INVALID_FIELD, f"event configuration control {f['control']}")
    payload: bytes = f["payload"]
    if not payload or len(payload) != 1 + 2 * payload[0]:
        raise ZclError(0x80, "event id list length")
    ids = [int.from_bytes(payload[i : i + 2], "little") for i in range(1, len(payload), 2)]
    unknown = [e for e in ids if e not in st.event_config]
    if unknown:
        raise ZclError(STATUS_INVALID_VALUE, f"events not configurable: {unknown}")
    st.event_config = {**st.event_config, **dict.fromkeys(ids, f["configuration"])}
    return Result(changed=True)


def h_get_event_configuration(ctx: Ctx, st: GasMeterData) -> Result:
    eid = ctx.fields["event_id"]
    if eid == EVENT_ID_ALL_NON_CRITICAL:
        rows = sorted(st.event_config.items())
    elif eid in st.event_config:
        rows = [(eid, st.event_config[eid])]
    else:
        return _not_found(ctx)
    body = L_REPORT_EVENT_CONFIGURATION.build(
        {"command_index": 0, "commands": 1},
        [{"event_id": e, "configuration": c} for e, c in rows],
    )
    return Result(respond=lambda _: [cluster_reply(ctx, R_REPORT_EVENT_CONFIGURATION, body)])


def _all_events(st: GasMeterData) -> list[LogEvent]:
    """Stored events plus the quiet history's commissioning: device commissioned (general
    log) and the supplier's credentials installed (security log)."""
    return [
        *st.events,
        LogEvent(LOG_GENERAL, EV_COMMISSIONED, st.commissioned),
        LogEvent(LOG_SECURITY, EV_CREDENTIALS_UPDATED, st.commissioned),
    ]


def h_get_event_log(ctx: Ctx, st: GasMeterData) -> Result:
    f = ctx.fields
    log_id = f["control_log"] & LOG_ID_MASK
    rows = [
        e for e in _all_events(st)
        if (log_id == LOG_ALL or e.log_id == log_id)
        and (f["event_id"] == 0 or e.event_id == f["event_id"])
        and f["start"] <= e.time <= f["end"]
    ]  # fmt: skip
    total = len(rows)
    rows = rows[f["offset"] :]
    if f["count"]:
        rows = rows[: f["count"]]
    if not rows:
        return _not_found(ctx)
    body = L_PUBLISH_EVENT_LOG.build(
        {"total": total, "command_index": 0, "commands": 1, "control": 0},
        [e._asdict() for e in rows],
    )
    return Result(respond=lambda _: [cluster_reply(ctx, R_PUBLISH_EVENT_LOG, body)])


def h_clear_event_log(ctx: Ctx, st: GasMeterData) -> Result:
    """GBCS lets a Remote Party clear the general event log only; the security log stays."""
    log_id = ctx.fields["log_id"] & LOG_ID_MASK
    cleared = 0
    if log_id in (LOG_ALL, LOG_GENERAL):
        st.events = tuple(e for e in st.events if e.log_id != LOG_GENERAL)
        cleared = CLEARED_GENERAL
        _log_event(ctx, st, LOG_SECURITY, EV_EVENT_LOG_CLEARED)
    body = L_CLEAR_EVENT_LOG_RESPONSE.build({"cleared": cleared})
    return Result(respond=lambda _: [cluster_reply(ctx, R_CLEAR_EVENT_LOG, body)], changed=True)


# ---------------------------------------------------------------------------
# Command tables
# ---------------------------------------------------------------------------


def _spec(
    cluster: int,
    direction: int,
    cmd: int,
    layout: Layout,
    handler: Callable[[Ctx, GasMeterData], Result],
    time_field: str | None = None,
) -> CommandSpec:
    return CommandSpec(cluster, direction, cmd, layout, handler, time_field)


#: Read-only commands: what a GPF answers from its mirror too.
READ_COMMANDS: tuple[CommandSpec, ...] = (
    _spec(PRICE, C2S, 0x00, L_GET_CURRENT_PRICE, h_get_current_price),
    _spec(PRICE, C2S, 0x0B, L_GET_BILLING_PERIOD, h_get_billing_period),
    _spec(CALENDAR, C2S, 0x00, L_GET_CALENDAR, h_get_calendar),
    _spec(CALENDAR, C2S, 0x01, L_GET_DAY_PROFILES, h_get_day_profiles),
    _spec(CALENDAR, C2S, 0x02, L_GET_DAY_PROFILES, h_get_week_profiles),
    _spec(CALENDAR, C2S, 0x03, L_GET_SEASONS, h_get_seasons),
    _spec(CALENDAR, C2S, 0x04, L_GET_SPECIAL_DAYS, h_get_special_days),
    _spec(METERING, C2S, 0x06, L_GET_SNAPSHOT, h_get_snapshot),
    _spec(METERING, C2S, 0x08, L_GET_SAMPLED_DATA, h_get_sampled_data),
    _spec(PREPAYMENT, C2S, 0x07, L_GET_SNAPSHOT, h_get_prepay_snapshot),
    _spec(PREPAYMENT, C2S, 0x08, L_GET_TOP_UP_LOG, h_get_top_up_log),
    _spec(PREPAYMENT, C2S, 0x0A, L_GET_DEBT_LOG, h_get_debt_log),
    _spec(DEVICE_MGMT, S2C, 0x05, L_GET_EVENT_CONFIGURATION, h_get_event_configuration),
    _spec(EVENTS, C2S, 0x00, L_GET_EVENT_LOG, h_get_event_log),
)

GSME_COMMANDS: CommandTable = command_table(
    *READ_COMMANDS,
    _spec(PRICE, S2C, 0x01, L_PUBLISH_BLOCK_PERIOD, h_publish_block_period),
    _spec(PRICE, S2C, 0x02, L_PUBLISH_CONVERSION_FACTOR, h_publish_conversion_factor, "start"),
    _spec(PRICE, S2C, 0x03, L_PUBLISH_CALORIFIC_VALUE, h_publish_calorific_value, "start"),
    _spec(PRICE, S2C, 0x04, L_PUBLISH_TARIFF_INFORMATION, h_publish_tariff_information, "start"),
    _spec(PRICE, S2C, 0x05, L_PUBLISH_PRICE_MATRIX, h_publish_price_matrix, "start"),
    _spec(PRICE, S2C, 0x06, L_PUBLISH_BLOCK_THRESHOLDS, h_publish_block_thresholds, "start"),
    _spec(PRICE, S2C, 0x09, L_PUBLISH_BILLING_PERIOD, h_publish_billing_period),
    _spec(CALENDAR, S2C, 0x00, L_PUBLISH_CALENDAR, h_publish_calendar, "start"),
    _spec(CALENDAR, S2C, 0x01, L_PUBLISH_DAY_PROFILE, h_publish_day_profile),
    _spec(CALENDAR, S2C, 0x02, L_PUBLISH_WEEK_PROFILE, h_publish_week_profile),
    _spec(CALENDAR, S2C, 0x03, L_PUBLISH_SEASONS, h_publish_seasons),
    _spec(CALENDAR, S2C, 0x04, L_PUBLISH_SPECIAL_DAYS, h_publish_special_days, "start"),
    _spec(METERING, C2S, 0x07, L_START_SAMPLING, h_start_sampling),
    _spec(METERING, C2S, 0x0B, L_CHANGE_SUPPLY, h_change_supply, "implementation"),
    _spec(METERING, C2S, 0x0D, L_SET_SUPPLY_STATUS, h_set_supply_status),
    _spec(METERING, C2S, 0x0E, L_SET_UNCONTROLLED_FLOW, h_set_uncontrolled_flow),
    _spec(PREPAYMENT, C2S, 0x00, L_SELECT_EC, h_select_emergency_credit),
    _spec(PREPAYMENT, C2S, 0x02, L_CHANGE_DEBT, h_change_debt),
    _spec(PREPAYMENT, C2S, 0x03, L_EC_SETUP, h_emergency_credit_setup, "start"),
    _spec(PREPAYMENT, C2S, 0x04, L_CONSUMER_TOP_UP, h_consumer_top_up),
    _spec(PREPAYMENT, C2S, 0x05, L_CREDIT_ADJUSTMENT, h_credit_adjustment, "start"),
    _spec(PREPAYMENT, C2S, 0x06, L_CHANGE_PAYMENT_MODE, h_change_payment_mode, "implementation"),
    _spec(PREPAYMENT, C2S, 0x09, L_SET_LOW_CREDIT, h_set_low_credit),
    _spec(PREPAYMENT, C2S, 0x0B, L_SET_MAX_CREDIT, h_set_max_credit, "implementation"),
    _spec(PREPAYMENT, C2S, 0x0C, L_SET_DEBT_CAP, h_set_debt_cap, "implementation"),
    _spec(MESSAGING, S2C, 0x00, L_DISPLAY_MESSAGE, h_display_message),
    _spec(MESSAGING, S2C, 0x01, L_CANCEL_MESSAGE, h_cancel_message),
    _spec(DEVICE_MGMT, S2C, 0x00, L_CHANGE_OF_TENANCY, h_change_of_tenancy),
    _spec(DEVICE_MGMT, S2C, 0x02, L_NEW_PASSWORD, h_new_password),
    _spec(DEVICE_MGMT, S2C, 0x03, L_UPDATE_SITE_ID, h_update_site_id),
    _spec(DEVICE_MGMT, S2C, 0x04, L_SET_EVENT_CONFIGURATION, h_set_event_configuration),
    _spec(DEVICE_MGMT, S2C, 0x06, L_UPDATE_CIN, h_update_cin),
    _spec(EVENTS, C2S, 0x01, L_CLEAR_EVENT_LOG, h_clear_event_log),
)


# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------


def registers(st: GasMeterData, cluster: int, attribute_id: int) -> ZclValue | None:
    """Time-driven attributes computed from the state instead of stored."""
    if cluster == METERING:
        if attribute_id == A_SUMMATION:
            return ZclValue(0x25, max(st.register_at(st.updated), 0))
        if attribute_id in A_TIER_SUMMATION:
            return ZclValue(0x25, int(st.tiers[A_TIER_SUMMATION.index(attribute_id)]))
        if attribute_id in A_BLOCK_SUMMATION:
            return ZclValue(0x25, int(st.blocks[A_BLOCK_SUMMATION.index(attribute_id)]))
    return None


class GasMeter(ZclDevice):
    """What the GSME and the GPF's mirror share: gas state, profile, reads."""

    profile_data: DeviceProfile
    data: GasMeterData

    def read_attribute(self, state: Any, cluster: int, attribute_id: int) -> ZclValue | None:
        v = registers(state, cluster, attribute_id)
        return v if v is not None else state.attrs.get(cluster, attribute_id)


class Gsme(GasMeter):
    """Gas Smart Metering Equipment."""

    DEVICE_TYPE = DeviceType.GSME
    GENERIC_ALERT_FAMILY = "GBZ"
    COMMANDS: ClassVar[CommandTable] = GSME_COMMANDS
    ENCRYPTED_RESPONSES: ClassVar[frozenset[int]] = ENCRYPTED_RESPONSE_CODES
    _HANDLERS: ClassVar[dict[int, Handler] | None] = None

    __slots__ = (
        "_faults",
        "_urp",
        "awake",
        "awake_until",
        "awake_window",
        "clock_reliable",
        "data",
        "profile_data",
        "wake_interval",
    )

    def __init__(self, eui: bytes, keys: Any, clock: Any, profile: Any = None) -> None:
        prof = (
            profile
            if isinstance(profile, DeviceProfile)
            else load_profile(PROFILE_DIR / "gsme.toml")
        )
        super().__init__(eui, keys, clock, prof)
        self.profile_data = prof
        self._faults = None
        self._urp = None
        self.data = GasMeterData(prof, make_model(prof, eui), gbz_seconds(clock.now()))
        seed_history(self.data, eui)
        self.clock_reliable = True
        self.awake = True
        self.awake_until: datetime | None = None
        self.wake_interval = timedelta(seconds=int(prof.setting("power", "wake_interval_s", 1800)))
        self.awake_window = timedelta(seconds=int(prof.setting("power", "awake_window_s", 10)))
        # GCS38 and CS06 report one version: the running image's, the profile's at first.
        shipped = self.data.attrs.get(METERING, A_FIRMWARE_VERSION)
        if shipped is not None and isinstance(shipped.value, bytes):
            self.firmware = firmware.FirmwareSlots(shipped.value)

    def read_attribute(self, state: Any, cluster: int, attribute_id: int) -> ZclValue | None:
        if (cluster, attribute_id) == (METERING, A_FIRMWARE_VERSION):
            return ZclValue(cat.ZCL_TYPE_OCTET_STRING, firmware.slots(self).running_version)
        return super().read_attribute(state, cluster, attribute_id)

    def handlers(self) -> dict[int, Handler]:
        cls = type(self)
        if cls._HANDLERS is None:
            gbz_handler: Handler = cls.handle_gbz  # type: ignore[assignment]
            table: dict[int, Handler] = {
                **joining.handlers(), **firmware.handlers(), **credentials.handlers(),
                **timesync.handlers(),
            }  # fmt: skip
            table.update(dict.fromkeys(GSME_MESSAGE_CODES, gbz_handler))
            cls._HANDLERS = table
        return cls._HANDLERS

    # -- time ----------------------------------------------------------------------
    def advance(self, now: datetime) -> None:
        advance_state(self.data, gbz_seconds(now), settings(self.profile_data))

    def response_clock_status(self, cmd: Command) -> int:
        """0x00 reliable GSME time, 0x02 unreliable (gbcs-facts 1.3)."""
        return 0x00 if self.clock_reliable else 0x02

    # -- battery: the HAN layer drives the wake / sleep cycle --------------------------
    def next_wake(self, after: datetime) -> datetime:
        """When the GSME next wakes to poll the CHF (every ``wake_interval`` from creation)."""
        created = from_seconds(self.data.created)
        n = (after - created) // self.wake_interval + 1
        return created + n * self.wake_interval

    def wake(self) -> list[bytes]:
        """Wake up: catch up with time and send what future-dated work produced."""
        now = self.clock.now()
        self.awake = True
        self.awake_until = now + self.awake_window
        self.advance(now)
        return self.run_due()

    def sleep(self) -> None:
        self.awake = False
        self.awake_until = None

    def should_sleep(self) -> bool:
        return self.awake and self.awake_until is not None and self.clock.now() >= self.awake_until

    def lose_power(self) -> list[bytes]:
        """Battery removed / supply lost: the GSME reports 0x8F1D, then goes dark."""
        alert = self.generic_alert(ALERT_POWER_SUPPLY_LOSS)
        self.powered = False
        self.awake = False
        return [alert]

    def restore_power(self) -> None:
        self.powered = True
        self.advance(self.clock.now())

    def generic_alert(self, code: int) -> bytes:
        """GBZ generic alert: header count 0, alert code and timestamp (gbcs-facts 3.2)."""
        critical = code >> 8 == 0x8F
        payload = gbz.GbzMessage((), gbz.GbzAlert(code, gbz_seconds(self.clock.now())))
        mc = MESSAGE_CODE_GENERIC_CRITICAL if critical else MESSAGE_CODE_GENERIC_NON_CRITICAL
        return self.build_alert(Alert(mc, payload, critical=critical)).encode()

    # -- local interactions -------------------------------------------------------------
    def press_button(self) -> bool:
        """The consumer opens an armed valve; returns whether gas flows now."""
        now = self.clock.now()
        self.advance(now)
        if self.data.supply() != SUPPLY_ARMED:
            return self.data.supply() == SUPPLY_ON
        st = self.data.copy()
        st.set_valve(SUPPLY_ON, gbz_seconds(now))
        self.data = st
        return True

    @property
    def valve(self) -> str:
        return SUPPLY_NAMES.get(self.data.supply(), "unknown")

    # -- security events into the ZCL security log ----------------------------------------
    def log(
        self,
        at: datetime,
        kind: str,
        detail: str,
        counter: int | None = None,
        originator: bytes | None = None,
    ) -> None:
        super().log(at, kind, detail, counter, originator)
        if kind == "refused" and getattr(self, "data", None) is not None:
            st = self.data.copy()
            st.log(LOG_SECURITY, EV_AUTH_FAILURE, gbz_seconds(at),
                   cap=settings(self.profile_data).event_capacity)  # fmt: skip
            self.data = st


def from_seconds(s: int) -> datetime:
    from gbhil.devices.zcl_server import from_gbz_seconds

    return from_gbz_seconds(s)
