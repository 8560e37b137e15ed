"""3.x customer messages and logs, 6.x device configuration, 9.1 CIN, 14.1 gas network data.

GBZ commands in which the DSP acts as the Price/Messaging/Device Management server carry
the DSP's current time as Issuer Event ID; "implementation time 0" means at once (DSP
future dating holds the whole command instead).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from lxml import etree

from gbhil.dcc.transforms.base import (
    DLMS_NEVER,
    BuildContext,
    Builder,
    BuildError,
    access_request,
    action,
    asn1_command,
    boolean,
    builder,
    cluster_command,
    datetime_field,
    decimal,
    dlms_datetime,
    find,
    find_all,
    gbz_message,
    get,
    has,
    integer,
    le,
    opt_text,
    scaled,
    set_,
    text,
    time_field,
    utc_le,
    zcl_string,
)
from gbhil.gbcs.axdr import Array, BitString, Enum, Int8, OctetString, Structure, Uint32

PRICE = 0x0700
METERING = 0x0702
MESSAGING = 0x0703
DEVICE_MANAGEMENT = 0x0708

# --- 3.x ---------------------------------------------------------------------------------

SUPPLIER_MESSAGE = "0-2:96.13.1.255"
PRIVACY_PIN = "0-0:94.44.3.1"
EVENT_LOG = "0-0:99.98.0.255"
SUPPLIER_TELEPHONE = "0-0:96.13.0.255"
SUPPLIER_NAME = "0-0:96.13.1.255"
CONTACT_CLASS = 9000
DISPLAY_MESSAGE = 0x00
MESSAGE_UNTIL_CHANGED = 0xFFFF
REQUEST_NEW_PASSWORD_RESPONSE = 0x02
PASSWORD_TYPE_PIN = 0x02


def _ascii(ctx: BuildContext, path: str) -> bytes:
    value = text(ctx.body, path)
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise BuildError(f"{path} is not printable ASCII") from None


@builder("ECS10")
def esme_message(ctx: BuildContext) -> bytes:
    message = OctetString(_ascii(ctx, "SupplierMessage"))
    return access_request(ctx.counter, [set_(1, SUPPLIER_MESSAGE, 2, message)])


@builder("GCS07")
def gsme_message(ctx: BuildContext) -> bytes:
    payload = (
        utc_le(ctx.now) + b"\x00" + le(0, 4, "start time") + le(MESSAGE_UNTIL_CHANGED, 2, "d")
        + zcl_string(_ascii(ctx, "SupplierMessage"), "SupplierMessage")
    )
    return gbz_message([cluster_command(MESSAGING, DISPLAY_MESSAGE, payload, server=True)])


@builder("ECS14")
def esme_disable_pin(ctx: BuildContext) -> bytes:
    return access_request(ctx.counter, [set_(1, PRIVACY_PIN, 2, OctetString(b""))])


@builder("GCS11")
def gsme_disable_pin(ctx: BuildContext) -> bytes:
    payload = (
        utc_le(ctx.now) + le(0, 4, "implementation time") + le(0, 2, "duration")
        + bytes((PASSWORD_TYPE_PIN,)) + zcl_string(b"", "password")
    )
    return gbz_message(
        [cluster_command(DEVICE_MANAGEMENT, REQUEST_NEW_PASSWORD_RESPONSE, payload, server=True)]
    )


@builder("ECS15a")
def clear_event_log(ctx: BuildContext) -> bytes:
    return access_request(ctx.counter, [action(7, EVENT_LOG, 1)])


@builder("ECS16")
def supplier_contact(ctx: BuildContext) -> bytes:
    return access_request(
        ctx.counter,
        [
            set_(CONTACT_CLASS, SUPPLIER_TELEPHONE, 2,
                 OctetString(_ascii(ctx, "SupplierTelephoneNumber"))),
            set_(CONTACT_CLASS, SUPPLIER_NAME, 2, OctetString(_ascii(ctx, "SupplierName"))),
        ],
    )


# --- 6.x ESME ----------------------------------------------------------------------------

LOAD_LIMIT_COUNTER = "0-0:94.44.42.255"
#: RMS voltage monitors: extreme over, extreme under, sag, swell (class 71 limiters).
RMS_MONITORS = (
    ("0-0:17.0.1.255", "RMSExtremeOverVoltage"),
    ("0-0:17.0.2.255", "RMSExtremeUnderVoltage"),
    ("0-0:17.0.3.255", "RMSVoltageSag"),
    ("0-0:17.0.4.255", "RMSVoltageSwell"),
)
#: OBIS C of the voltage of phase 1, 2, 3.
PHASE_C = {1: 32, 2: 52, 3: 72}
LIMITER_THRESHOLD = 4
LIMITER_PERIOD = 6
PROFILE_PERIOD = 4


def _phase_settings(ctx: BuildContext) -> dict[int, tuple[int, int, int]]:
    """phase -> (over threshold, under threshold, measurement period)."""
    if has(ctx.body, "SinglePhaseVoltageSettings"):
        return {1: _triple(ctx.body, "SinglePhaseVoltageSettings/")}
    out: dict[int, tuple[int, int, int]] = {}
    for element in find_all(ctx.body, "PolyPhaseVoltageSettings"):
        phase = integer(element, "Phase")
        if phase not in PHASE_C or phase in out:
            raise BuildError(f"Phase {phase} is not 1, 2 or 3, or repeated")
        out[phase] = _triple(element, "PhaseVoltageSettings/")
    if sorted(out) != [1, 2, 3]:
        raise BuildError("a polyphase meter needs settings for phases 1, 2 and 3")
    return out


def _triple(element: etree._Element, prefix: str) -> tuple[int, int, int]:
    return (
        integer(element, f"{prefix}AverageRMSOverVoltageThreshold"),
        integer(element, f"{prefix}AverageRMSUnderVoltageThreshold"),
        integer(element, f"{prefix}AverageRMSVoltageMeasurementPeriod"),
    )


@builder("ECS29a", "ECS29b", "ECS29c", "ECS29d")
def voltage_configuration(ctx: BuildContext) -> bytes:
    """6.5: the order of the sets differs between the reset and no-reset use cases (RTDS)."""
    phases = _phase_settings(ctx)
    monitors = [
        item
        for ln, name in RMS_MONITORS
        for item in (
            set_(71, ln, LIMITER_THRESHOLD,
                 Uint32(integer(ctx.body, f"RMSVoltageSettings/{name}Threshold"))),
            set_(71, ln, LIMITER_PERIOD,
                 Uint32(integer(ctx.body, f"RMSVoltageSettings/{name}MeasurementPeriod"))),
        )
    ]
    periods = [
        set_(7, f"1-0:{PHASE_C[p]}.24.0.255", PROFILE_PERIOD, Uint32(phases[p][2]))
        for p in sorted(phases)
    ]
    items = []
    if ctx.use_case in ("ECS29a", "ECS29b"):
        items += periods + monitors
        for p in sorted(phases):
            over, under = (f"1-0:{PHASE_C[p]}.35.0.4", Uint32(phases[p][0])), (
                f"1-0:{PHASE_C[p]}.31.0.4", Uint32(phases[p][1]))
            pair = (over, under) if p == 1 else (under, over)
            items += [set_(1, ln, 2, value) for ln, value in pair]
        items += [
            action(3, f"1-0:{PHASE_C[p]}.{m}.0.4", 1) for p in sorted(phases) for m in (32, 36)
        ]
    else:
        for p in sorted(phases):
            items += [
                set_(1, f"1-0:{PHASE_C[p]}.31.0.4", 2, Uint32(phases[p][1])),
                set_(1, f"1-0:{PHASE_C[p]}.35.0.4", 2, Uint32(phases[p][0])),
            ]
        items += periods + monitors
    return access_request(ctx.counter, items)


def _rms_counter_reset(phases: Iterable[int]) -> Builder:
    def build(ctx: BuildContext) -> bytes:
        return access_request(
            ctx.counter,
            [action(3, f"1-0:{PHASE_C[p]}.{m}.0.4", 1) for p in phases for m in (32, 36)],
        )

    return build


builder("ECS29e")(_rms_counter_reset((1,)))
builder("ECS29f")(_rms_counter_reset((1, 2, 3)))


@builder("ECS28b")
def load_limit_counter_reset(ctx: BuildContext) -> bytes:
    return access_request(ctx.counter, [action(3, LOAD_LIMIT_COUNTER, 1)])


BILLING_SCHEDULE = "0-0:15.0.0.255"
TARIFF_BLOCK_RESET_SCHEDULE = "0-0:15.1.0.255"
EXECUTION_TIME = 4
_ANY_DATE = b"\xff\xff\xff\xff\xff"
_MIDNIGHT = b"\x00\x00\x00\x00"
#: Months between billing dates of the month-based periodicities.
MONTH_STEP = {"Quarterly": 3, "SixMonthly": 6, "Yearly": 12}


def _dlms_time(when: dt.time) -> bytes:
    return bytes((when.hour, when.minute, when.second, when.microsecond // 10000))


def _date(month: int, day: int, weekday: int = 0xFF) -> bytes:
    return b"\xff\xff" + bytes((month, day, weekday))


def billing_dates(ctx: BuildContext) -> list[bytes]:
    """Execution dates (DLMS date, wildcards) of the ElectricityBillingCalendar choice."""
    calendar = "ElectricityBillingCalendar"
    if has(ctx.body, f"{calendar}/Daily"):
        return [_ANY_DATE]
    if has(ctx.body, f"{calendar}/Weekly"):
        return [_date(0xFF, 0xFF, integer(ctx.body, f"{calendar}/Weekly"))]
    if has(ctx.body, f"{calendar}/Monthly"):
        return [_date(0xFF, integer(ctx.body, f"{calendar}/Monthly"))]
    for name, step in MONTH_STEP.items():
        if has(ctx.body, f"{calendar}/{name}"):
            day = integer(ctx.body, f"{calendar}/{name}/DayOfMonth")
            start = integer(ctx.body, f"{calendar}/{name}/BillingPeriodStartMonth")
            months = sorted((start - 1 + k * step) % 12 + 1 for k in range(12 // step))
            return [_date(m, day) for m in months]
    raise BuildError("ElectricityBillingCalendar names no periodicity")


@builder("ECS30", "ECS30a")
def esme_billing_calendar(ctx: BuildContext) -> bytes:
    at = _dlms_time(time_field(ctx.body, "ElectricityBillingCalendar/BillingTime"))
    schedule = Array(
        tuple(Structure((OctetString(at), OctetString(d))) for d in billing_dates(ctx))
    )
    return access_request(ctx.counter, [set_(22, BILLING_SCHEDULE, EXECUTION_TIME, schedule)])


@builder("ECS48")
def daily_block_counter_reset(ctx: BuildContext) -> bytes:
    daily = boolean(ctx.body, "DailyTariffBlockCounterMatrixReset")
    entries = (Structure((OctetString(_MIDNIGHT), OctetString(_ANY_DATE))),) if daily else ()
    return access_request(
        ctx.counter, [set_(22, TARIFF_BLOCK_RESET_SCHEDULE, EXECUTION_TIME, Array(entries))]
    )


MPAN = "0-0:94.44.34.11"


@builder("ECS39a")
def import_mpan(ctx: BuildContext) -> bytes:
    mpan = _ascii(ctx, "ImportMPANs/ImportMPAN")
    secondary = opt_text(ctx.body, "ImportMPANs/SecondaryImportMPAN")
    if secondary is not None:
        mpan += secondary.encode("ascii")
    return access_request(ctx.counter, [set_(1, MPAN, 2, OctetString(mpan))])


#: 6.18.2 optional elements -> the maximum demand register each one resets.
MAX_DEMAND_REGISTERS = (
    ("MaxDemandActivePowerImportValue", "1-0:1.6.0.255"),
    ("MaxDemandConfigTimeActivePowerImportValue", "1-0:1.6.1.255"),
    ("MaxDemandActivePowerExportValue", "1-0:2.6.0.255"),
)


@builder("ECS57")
def reset_maximum_demand(ctx: BuildContext) -> bytes:
    items = [action(4, ln, 1) for element, ln in MAX_DEMAND_REGISTERS if has(ctx.body, element)]
    if not items:
        raise BuildError("ResetMaximumDemandRegisters names no register")
    return access_request(ctx.counter, items)


CLOCK = "0-0:1.0.0.255"
CLOCK_TIME_SOURCE = 9
TIME_SOURCE_EXTERNAL = 5
PRESET_ADJUSTING_TIME = 5
ADJUST_TO_PRESET_TIME = 4


def _clock_window(ctx: BuildContext) -> tuple[dt.datetime, dt.datetime]:
    current = datetime_field(ctx.body, "CurrentDateTime")
    tolerance = integer(ctx.body, "TolerancePeriod")
    return current, current + dt.timedelta(seconds=tolerance)


@builder("ECS70", "ECS70Commission")
def esme_set_clock(ctx: BuildContext) -> bytes:
    """6.11 / 8.1.1: valid between CurrentDateTime and CurrentDateTime + TolerancePeriod."""
    start, end = _clock_window(ctx)
    preset = Structure(
        (OctetString(DLMS_NEVER), OctetString(dlms_datetime(start)),
         OctetString(dlms_datetime(end)))
    )
    return access_request(
        ctx.counter,
        [
            set_(8, CLOCK, CLOCK_TIME_SOURCE, Enum(TIME_SOURCE_EXTERNAL)),
            action(8, CLOCK, PRESET_ADJUSTING_TIME, preset),
            action(8, CLOCK, ADJUST_TO_PRESET_TIME, Int8(0)),
            get(8, CLOCK, 2),
            get(8, CLOCK, 4),
        ],
    )


@builder("GCS28", "GCS28Commission")
def gsme_set_clock(ctx: BuildContext) -> bytes:
    start, end = _clock_window(ctx)
    return asn1_command(
        ctx.message_code, {"validityIntervalStart": start, "validityIntervalEnd": end}
    )


# --- 6.x GSME ----------------------------------------------------------------------------

PUBLISH_CONVERSION_FACTOR = 0x02
PUBLISH_CALORIFIC_VALUE = 0x03
CONVERSION_FACTOR_PLACES = 5
CALORIFIC_VALUE_PLACES = 1
CALORIFIC_UNIT_MJ_PER_M3 = 0x01


def _trailing_digits(places: int) -> bytes:
    """ZCL trailing-digit bitmap: decimal places in the high nibble."""
    return bytes((places << 4,))


@builder("GCS23")
def gas_conversion(ctx: BuildContext) -> bytes:
    factor = scaled(decimal(ctx.body, "ConversionFactor"), CONVERSION_FACTOR_PLACES,
                    "ConversionFactor")
    calorific = scaled(decimal(ctx.body, "CalorificValue"), CALORIFIC_VALUE_PLACES,
                       "CalorificValue")
    head = utc_le(ctx.now) + le(0, 4, "start time")
    return gbz_message(
        [
            cluster_command(
                PRICE, PUBLISH_CONVERSION_FACTOR,
                head + le(factor, 4, "ConversionFactor")
                + _trailing_digits(CONVERSION_FACTOR_PLACES),
                server=True,
            ),
            cluster_command(
                PRICE, PUBLISH_CALORIFIC_VALUE,
                head + le(calorific, 4, "CalorificValue") + bytes((CALORIFIC_UNIT_MJ_PER_M3,))
                + _trailing_digits(CALORIFIC_VALUE_PLACES),
                server=True,
            ),
        ]
    )


SET_SUPPLY_STATUS = 0x0D
SET_UNCONTROLLED_FLOW_THRESHOLD = 0x0E
UNIT_CUBIC_METRE = 0x01
FLOW_DECIMAL_PLACES = 4
#: Set Supply Status values: "Unchanged" is 0x03 in every RTDS command; the value for
#: "Locked" is not in RTDS (0x01 assumed).
SUPPLY_STATE = {"Unchanged": 0x03, "Locked": 0x01}
UNCONTROLLED_FLOW_STATE = 0x00
LOAD_LIMIT_STATE_UNCHANGED = 0x03


@builder("GCS24", "GCS24a")
def gas_flow(ctx: BuildContext) -> bytes:
    if ctx.use_case == "GCS24a":
        threshold = scaled(decimal(ctx.body, "UncontrolledGasFlowRateDecimal"),
                           FLOW_DECIMAL_PLACES, "UncontrolledGasFlowRateDecimal")
        divisor = 10**FLOW_DECIMAL_PLACES
    else:
        threshold, divisor = integer(ctx.body, "UncontrolledGasFlowRate"), 1
    threshold_payload = (
        le(0, 4, "provider id") + utc_le(ctx.now) + le(threshold, 2, "flow rate")
        + bytes((UNIT_CUBIC_METRE,)) + le(1, 2, "multiplier") + le(divisor, 2, "divisor")
        + le(integer(ctx.body, "StabilisationPeriod"), 1, "StabilisationPeriod")
        + le(integer(ctx.body, "MeasurementPeriod"), 2, "MeasurementPeriod")
    )
    tamper = SUPPLY_STATE[text(ctx.body, "SupplyTamperState")]
    depletion = SUPPLY_STATE[text(ctx.body, "SupplyDepletionState")]
    status_payload = utc_le(ctx.now) + bytes(
        (tamper, depletion, UNCONTROLLED_FLOW_STATE, LOAD_LIMIT_STATE_UNCHANGED)
    )
    return gbz_message(
        [
            cluster_command(METERING, SET_UNCONTROLLED_FLOW_THRESHOLD, threshold_payload),
            cluster_command(METERING, SET_SUPPLY_STATUS, status_payload),
        ]
    )


PUBLISH_BILLING_PERIOD = 0x09
PUBLISH_BLOCK_PERIOD = 0x01
#: Gas billing periodicity -> (duration, ZCL duration type: 0x2n = "not specified" control,
#: timebase n: 1 days, 2 weeks, 3 months). Only month-based types are in RTDS.
GAS_PERIODICITY = {
    "Daily": (1, 0x21), "Weekly": (1, 0x22), "Monthly": (1, 0x23), "Quarterly": (3, 0x23),
    "SixMonthly": (6, 0x23), "Yearly": (12, 0x23),
}
BLOCK_PERIOD_REPEATING = 0x02
TARIFF_TYPE_DELIVERED = 0x00
TARIFF_RESOLUTION_BLOCK = 0x01


@builder("GCS25", "GCS25a")
def gas_billing_calendar(ctx: BuildContext) -> bytes:
    start = utc_le(datetime_field(ctx.body, "GasBillingCalendar/BillingPeriodStart"))
    periodicity = text(ctx.body, "GasBillingCalendar/Periodicity")
    if periodicity not in GAS_PERIODICITY:
        raise BuildError(f"Periodicity {periodicity!r} is unknown")
    count, duration_type = GAS_PERIODICITY[periodicity]
    head = le(0, 4, "provider id") + utc_le(ctx.now) + start + le(count, 3, "duration")
    return gbz_message(
        [
            cluster_command(PRICE, PUBLISH_BILLING_PERIOD,
                            head + bytes((duration_type, TARIFF_TYPE_DELIVERED)), server=True),
            cluster_command(
                PRICE, PUBLISH_BLOCK_PERIOD,
                head + bytes((BLOCK_PERIOD_REPEATING, duration_type, TARIFF_TYPE_DELIVERED,
                              TARIFF_RESOLUTION_BLOCK)),
                server=True,
            ),
        ]
    )


UPDATE_SITE_ID = 0x03
UPDATE_CIN = 0x06


@builder("GCS41")
def gas_mprn(ctx: BuildContext) -> bytes:
    payload = (
        utc_le(ctx.now) + le(0, 4, "implementation time") + le(0, 4, "provider id")
        + zcl_string(_ascii(ctx, "ImportMPRN"), "ImportMPRN")
    )
    return gbz_message([cluster_command(DEVICE_MANAGEMENT, UPDATE_SITE_ID, payload, server=True)])


# --- 6.22 GSME event configuration -------------------------------------------------------

SET_EVENT_CONFIGURATION = 0x04
APPLY_BY_LIST = 0x00
#: ZCL event configuration bits: log as general event, push to WAN, push to HAN, audible
#: alarm.
EVENT_LOG_GENERAL = 0x03
EVENT_WAN = 0x08
EVENT_HAN = 0x10
EVENT_ALARM = 0x40
_FLAGS = (("WANAlert", EVENT_WAN), ("HANAlert", EVENT_HAN), ("EventLog", EVENT_LOG_GENERAL),
          ("Alarm", EVENT_ALARM))


def _group_key(config: int) -> tuple[bool, bool, bool, bool]:
    """Order of the configuration groups; fitted to the one RTDS GCS20 command."""
    return (
        not config & EVENT_HAN, not config & EVENT_WAN,
        bool(config & EVENT_LOG_GENERAL), bool(config & EVENT_ALARM),
    )


@builder("GCS20")
def gas_event_configuration(ctx: BuildContext) -> bytes:
    settings = find(ctx.body, "GasSupplierAlertEventSettings")
    if settings is None:
        raise BuildError("only GasSupplierAlertEventSettings is built for a GSME")
    groups: dict[int, list[int]] = {}
    for event in settings:
        if not isinstance(event.tag, str):
            continue
        name = event.tag.rsplit("}", 1)[-1]
        try:
            code = int(name.removeprefix("x"), 16)
        except ValueError:
            raise BuildError(f"{name} is not an event code element") from None
        config = 0
        for flag, bit in _FLAGS:
            if text(event, flag) == "Enable":
                config |= bit
        groups.setdefault(config, []).append(code)
    parts = [
        cluster_command(
            DEVICE_MANAGEMENT, SET_EVENT_CONFIGURATION,
            utc_le(ctx.now) + le(0, 4, "start time") + bytes((config, APPLY_BY_LIST, len(codes)))
            + b"".join(le(c, 2, "event id") for c in codes),
            server=True,
        )
        for config, codes in sorted(groups.items(), key=lambda kv: _group_key(kv[0]))
    ]
    return gbz_message(parts)


# --- 6.22 ESME alert and event behaviours (ECS25a-b3) ---------------------------------------

#: Use case -> (the ConfigureAlertBehaviour choice it serves, the class 1 object it sets,
#: the high octet of every alert code it may name: 0x81 supplier, 0x80 network operator).
ALERT_BEHAVIOURS: dict[str, tuple[str, str, int]] = {
    "ECS25a": ("ElectricitySupplierAlerts", "0-30:97.98.11.255", 0x81),
    "ECS25a1": ("ElectricitySupplierHANAlertSettings", "0-30:97.98.12.255", 0x81),
    "ECS25a2": ("ElectricitySupplierAlarmSettings", "0-30:97.98.13.255", 0x81),
    "ECS25a3": ("ElectricitySupplierLoggingSettings", "0-30:97.98.14.255", 0x81),
    "ECS25b": ("ElectricityNetworkOperatorAlerts", "0-33:97.98.11.255", 0x80),
    "ECS25b3": ("ElectricityNetworkOperatorLoggingSettings", "0-33:97.98.14.255", 0x80),
}
#: One bit per alert code of the family (the code's low octet), in a 256-bit string.
BEHAVIOUR_BITS = 256
ENABLE = "Enable"
DISABLE = "Disable"


def alert_behaviour_bits(settings: Iterable[tuple[int, bool]], family: int) -> bytes:
    """The 64 octets of an ECS25 set: a 256-bit mask of the codes addressed, then their new
    state (1 = enabled); bit n (counting from the last bit) is alert code ``family``:n.
    Read off the RTDS ECS25a-b commands, whose bits are exactly their codes' low octets."""
    mask = value = 0
    for code, enabled in settings:
        if code >> 8 != family:
            raise BuildError(f"alert 0x{code:04X} is not one of the 0x{family:02X}xx alerts "
                             "this command configures")
        mask |= 1 << (code & 0xFF)
        if enabled:
            value |= 1 << (code & 0xFF)
    octets = BEHAVIOUR_BITS // 8
    return mask.to_bytes(octets, "big") + value.to_bytes(octets, "big")


def _behaviour_settings(group: etree._Element) -> list[tuple[int, bool]]:
    out: list[tuple[int, bool]] = []
    for part in group:  # SupplierESMECommon, ...PolyPhase, ...SinglePhase
        for alert in part:
            if not isinstance(alert.tag, str):
                continue
            name = etree.QName(alert).localname
            try:
                code = int(name.removeprefix("x"), 16)
            except ValueError:
                raise BuildError(f"{name} is not an alert code element") from None
            state = (alert.text or "").strip()
            if state not in (ENABLE, DISABLE):
                raise BuildError(f"{name} must be Enable or Disable, not {state!r}")
            out.append((code, state == ENABLE))
    return out


@builder(*ALERT_BEHAVIOURS)
def alert_behaviour(ctx: BuildContext) -> bytes:
    element, obis, family = ALERT_BEHAVIOURS[ctx.use_case]
    group = find(ctx.body, element)
    if group is None:
        raise BuildError(f"{ctx.use_case} needs {element}")
    settings = _behaviour_settings(group)
    if not settings:
        raise BuildError(f"{element} names no alert")
    bits = alert_behaviour_bits(settings, family)
    return access_request(ctx.counter, [set_(1, obis, 2, BitString(len(bits) * 8, bits))])


# --- 9.1 and 14.1 --------------------------------------------------------------------------

CIN = "0-3:96.13.1.255"


@builder("ECS50")
def esme_cin(ctx: BuildContext) -> bytes:
    return access_request(ctx.counter, [set_(1, CIN, 2, OctetString(ctx.cin.encode("ascii")))])


@builder("GCS36")
def gsme_cin(ctx: BuildContext) -> bytes:
    payload = (
        utc_le(ctx.now) + le(0, 4, "implementation time") + le(0, 4, "provider id")
        + zcl_string(ctx.cin.encode("ascii"), "CIN")
    )
    return gbz_message([cluster_command(DEVICE_MANAGEMENT, UPDATE_CIN, payload, server=True)])


START_SAMPLING = 0x07
NETWORK_DATA_SAMPLE_TYPE = 0x00
NETWORK_DATA_INTERVAL = 360
NETWORK_DATA_SAMPLES = 41


@builder("GCS31")
def gas_network_data(ctx: BuildContext) -> bytes:
    payload = (
        utc_le(ctx.now) + le(0, 4, "start sampling time") + bytes((NETWORK_DATA_SAMPLE_TYPE,))
        + le(NETWORK_DATA_INTERVAL, 2, "interval") + le(NETWORK_DATA_SAMPLES, 2, "samples")
    )
    return gbz_message([cluster_command(METERING, START_SAMPLING, payload)])

