"""4.x reads, 6.2.x configuration reads, 6.13 logs, 7.x status reads, 11.2 firmware version.

Most reads are a fixed list of COSEM attributes (ESME, CHF) or ZCL attributes (GSME, GPF);
the tables below are those lists. Sensitive ESME registers go through the Data Protection
object so the meter encrypts the answer for the requester; log reads take the request's
ReadLogPeriod as a DLMS range (seconds since 2000), a protected range (date-times) or, on
gas, ZCL snapshot/log requests.
"""

from __future__ import annotations

from gbhil.dcc.transforms.base import (
    BuildContext,
    Builder,
    Zcl,
    access_request,
    builder,
    cluster_command,
    fixed_gets,
    fixed_reads,
    gbz_message,
    get,
    get_range,
    le,
    log_period,
    protected_read,
    read_attributes,
    seconds_2000,
    utc_le,
)

# ZCL clusters (gbhil.gbcs.zcl_catalogue names them).
BASIC = 0x0000
PRICE = 0x0700
METERING = 0x0702
PREPAYMENT = 0x0705
CALENDAR = 0x0707
DEVICE_MANAGEMENT = 0x0708
EVENTS = 0x0709

# --- ESME / CHF: fixed attribute lists ----------------------------------------------------

#: use case -> (class id, logical name, attribute) read in order (as the RTDS commands do).
FIXED_GETS: dict[str, tuple[tuple[int, str, int], ...]] = {
    "ECS17c": ((1, "0-0:94.44.34.20", 2),),
    "ECS18a": (
        (1, "0-0:94.44.5.2", 2),
        (4, "1-0:2.6.0.255", 2), (4, "1-0:2.6.0.255", 3), (4, "1-0:2.6.0.255", 5),
    ),
    "ECS18b": (
        (1, "0-0:94.44.5.0", 2), (1, "0-0:94.44.5.1", 2),
        (4, "1-0:1.6.0.255", 2), (4, "1-0:1.6.0.255", 3), (4, "1-0:1.6.0.255", 5),
        (4, "1-0:1.6.1.255", 2), (4, "1-0:1.6.1.255", 3), (4, "1-0:1.6.1.255", 5),
        (10, "0-0:12.0.0.255", 2),
    ),
    "ECS24": (
        (3, "0-0:94.44.1.7", 2), (3, "0-0:94.44.1.7", 3),
        (20, "0-0:13.0.0.255", 3), (20, "0-0:13.0.0.255", 4), (20, "0-0:13.0.0.255", 5),
        (11, "0-0:11.0.0.255", 2),
        *((21, f"0-0:16.0.{n}.255", 2) for n in range(11, 19)),
        (9000, "0-0:94.44.2.0", 2),
        (113, "0-0:19.20.4.255", 5), (113, "0-0:19.20.0.255", 5),
    ),
    "ECS25r1": tuple((1, f"0-30:97.98.{n}.255", 2) for n in (15, 16, 17, 18)),
    "ECS25r2": ((1, "0-33:97.98.15.255", 2), (1, "0-33:97.98.18.255", 2)),
    "ECS26a": (
        (113, "0-0:19.20.1.255", 5), (11, "0-0:11.0.2.255", 2), (113, "0-0:19.20.1.255", 8),
        (113, "0-0:19.20.1.255", 5), (113, "0-0:19.20.2.255", 5), (113, "0-0:19.20.2.255", 8),
        (113, "0-0:19.20.2.255", 5), (113, "0-0:19.20.3.255", 13),
        (9000, "0-0:94.44.2.10", 2), (21, "0-0:16.0.1.255", 2), (9000, "0-0:94.44.2.20", 2),
        (111, "0-0:19.0.0.255", 16), (111, "0-0:19.0.0.255", 18), (111, "0-0:19.0.0.255", 19),
        (112, "0-0:19.10.1.255", 9), (112, "0-0:19.10.1.255", 10),
        (10, "0-0:12.0.1.255", 2), (111, "0-0:19.0.0.255", 11),
    ),
    "ECS26b": (
        *((71, f"0-0:17.0.{n}.255", a) for n in (1, 2, 3, 4) for a in (4, 6)),
        (1, "1-0:32.35.0.4", 2), (1, "1-0:32.31.0.4", 2),
    ),
    "ECS26k": (
        *((71, f"0-0:17.0.{n}.255", a) for n in (1, 2, 3, 4) for a in (4, 6)),
        (1, "1-0:32.35.0.4", 2), (1, "1-0:32.31.0.4", 2),
        (1, "1-0:52.31.0.4", 2), (1, "1-0:52.35.0.4", 2),
        (1, "1-0:72.31.0.4", 2), (1, "1-0:72.35.0.4", 2),
    ),
    "ECS26c": ((1, "0-0:94.44.0.0", 2), (1, "0-0:94.44.0.2", 2), (1, "0-0:94.44.0.1", 2)),
    "ECS26d": ((22, "0-0:15.0.0.255", 4),),
    "ECS26l": ((22, "0-0:15.0.0.255", 4),),
    "ECS26e": (
        (1, "0-0:96.1.1.255", 2), (1, "0-0:96.1.2.255", 2), (1, "0-0:96.1.4.255", 2),
        (1, "0-0:96.1.6.255", 2), (1, "0-0:94.44.0.4", 2),
    ),
    "ECS26m": (
        (1, "0-0:96.1.2.255", 2), (1, "0-0:96.1.4.255", 2), (1, "0-0:96.1.6.255", 2),
        (1, "0-0:94.44.0.4", 2),
    ),
    "ECS26i": ((1, "0-0:96.1.1.255", 2), (1, "0-0:96.1.4.255", 2), (1, "0-0:96.1.6.255", 2)),
    "ECS26j": ((111, "0-0:19.0.0.255", 2),),
    "ECS27": (
        (9000, "0-0:94.44.0.3", 2), (3, "0-0:94.44.42.255", 2), (3, "0-0:94.44.42.255", 3),
        (71, "0-0:17.0.0.255", 4), (71, "0-0:17.0.0.255", 6), (71, "0-0:17.0.0.255", 7),
    ),
    "ECS40": ((1, "0-0:94.44.34.11", 2), (1, "1-0:0.0.2.255", 2)),
    "ECS45": ((70, "0-0:96.3.10.255", 3),),
    "ECS52": ((1, "0-0:0.2.1.255", 2),),
    "ECS61d": (
        *((1, f"0-0:94.44.0.{n}", 2) for n in range(11, 16)),
        (11, "0-0:11.0.3.255", 2), (10, "0-0:12.0.2.255", 2),
    ),
    "ECS61e": tuple((1, f"0-0:94.44.0.{n}", 2) for n in (21, 22, 23, 24, 25, 31, 32, 33, 34, 35)),
    "ECS82": ((112, "0-0:19.10.0.255", 2),),
    "CCS05CCS04": ((104, "0-0:30.3.0.255", 4),),
    "CCS06": ((104, "0-0:30.3.0.255", 4),),
    "DBCH01": ((1, "0-0:94.44.10.2", 2),),
    "DBCH03": ((1, "0-0:94.44.10.0", 2),),
}

for _uc, _objects in FIXED_GETS.items():
    builder(_uc)(fixed_gets(*_objects))

#: Registers read through the Data Protection object: use case -> (method object, objects).
PROTECTED: dict[str, tuple[str, tuple[tuple[int, str, int], ...]]] = {
    "ECS17b": ("0-0:43.2.8.255", ((1, "0-0:94.44.34.10", 2),)),
    "ECS17e": ("0-0:43.2.10.255", ((1, "0-0:94.44.34.2", 2),)),
    "ECS19": ("0-0:43.2.1.255", ((1, "0-0:94.44.34.30", 2),)),
}


def _protected(method_object: str, objects: tuple[tuple[int, str, int], ...]) -> Builder:
    def build(ctx: BuildContext) -> bytes:
        return protected_read(ctx, method_object, objects)

    return build


for _uc, (_method, _objs) in PROTECTED.items():
    builder(_uc)(_protected(_method, _objs))

#: Logs read through the Data Protection object with the request's period (date-times).
PROTECTED_LOGS: dict[str, tuple[str, tuple[tuple[int, str, int], ...]]] = {
    "ECS20b": ("0-0:43.2.3.255", ((7, "0-0:98.1.2.255", 2),)),
    "ECS20c": ("0-0:43.2.2.255", ((7, "0-0:98.1.0.255", 2), (7, "0-0:98.1.1.255", 2))),
    "ECS66": ("0-0:43.2.4.255", ((7, "0-0:99.1.3.255", 2),)),
}


def _protected_log(method_object: str, objects: tuple[tuple[int, str, int], ...]) -> Builder:
    def build(ctx: BuildContext) -> bytes:
        return protected_read(ctx, method_object, objects, log_period(ctx.body))

    return build


for _uc, (_method, _objs) in PROTECTED_LOGS.items():
    builder(_uc)(_protected_log(_method, _objs))

#: Profile/log objects read with a range selection over the request's ReadLogPeriod.
RANGE_LOGS: dict[str, tuple[int, str]] = {
    "ECS20d": (7, "0-0:98.1.5.255"),
    "ECS21c": (7, "0-0:98.1.10.255"),
    "ECS22a": (7, "0-0:99.1.1.255"),
    "ECS22c": (7, "0-0:99.1.2.255"),
    "ECS35a": (7, "0-0:99.98.0.255"),
    "ECS35b": (7, "0-0:99.98.1.255"),
    "ECS35c": (7, "0-0:99.98.0.255"),
    "ECS35d": (7, "0-0:99.98.1.255"),
    "ECS35g": (7, "0-17:99.98.2.255"),
    "DBCH02": (7, "0-0:94.44.10.3"),
}


def _range_log(class_id: int, logical_name: str) -> Builder:
    def build(ctx: BuildContext) -> bytes:
        start, end = log_period(ctx.body)
        return access_request(ctx.counter, [get_range(class_id, logical_name, start, end)])

    return build


for _uc, (_cls, _ln) in RANGE_LOGS.items():
    builder(_uc)(_range_log(_cls, _ln))

#: Voltage quality per phase (R, S, T): counters, then the RMS profile over the period.
_PHASES = {"ECS23": ("32",), "ECS23b": ("32", "52", "72")}


def _network_data(phases: tuple[str, ...]) -> Builder:
    def build(ctx: BuildContext) -> bytes:
        start, end = log_period(ctx.body)
        items = []
        for p in phases:
            items += [
                get(3, f"1-0:{p}.32.0.4", 2), get(3, f"1-0:{p}.32.0.4", 3),
                get(3, f"1-0:{p}.36.0.4", 2), get(3, f"1-0:{p}.36.0.4", 3),
                get_range(7, f"1-0:{p}.24.0.255", start, end),
                get(7, f"1-0:{p}.24.0.255", 4),
            ]
        return access_request(ctx.counter, items)

    return build


for _uc, _ph in _PHASES.items():
    builder(_uc)(_network_data(_ph))


@builder("ECS61c")
def boost_button_details(ctx: BuildContext) -> bytes:
    """7.11: boost duration, the boost event log over the period, the five associations."""
    start, end = log_period(ctx.body)
    return access_request(
        ctx.counter,
        [
            get(1, "0-0:94.44.7.255", 2),
            get_range(7, "0-0:99.98.20.255", start, end),
            *(get(1, f"0-0:94.44.6.{n}", 2) for n in range(1, 6)),
        ],
    )


# --- GSME / GPF: ZCL attribute reads --------------------------------------------------------

_UNIT = (0x0302, 0x0301, 0x0300)  # divisor, multiplier, unit of measure

FIXED_ZCL: dict[str, tuple[Zcl, ...]] = {
    "GCS13a": (read_attributes(METERING, *_UNIT, 0x0000),),
    "GCS13b": (read_attributes(METERING, 0x0700, 0x0701, 0x0702, 0x0703, *_UNIT),),
    "GCS13c": (read_attributes(METERING, *_UNIT, 0x0100, 0x0102, 0x0104, 0x0106),),
    "GCS21a": (
        read_attributes(PRICE, 0x0306, 0x0305, 0x0304, 0x0303, 0x0302),
        read_attributes(METERING, 0x0B13, 0x0B12, 0x0B11, 0x0B10, 0x0B14, 0x0B15),
    ),
    "GCS21b": (
        read_attributes(
            PREPAYMENT, 0x0239, 0x0006, 0x0216, 0x0226, 0x0040, 0x0010, 0x0011, 0x0031,
            0x0021, 0x0022, 0x0217, 0x0227,
        ),
        read_attributes(PRICE, 0x0617),
        cluster_command(CALENDAR, 0x01, bytes.fromhex("00000000FEFFFFFF0100")),
        cluster_command(CALENDAR, 0x02, bytes.fromhex("00000000FEFFFFFF0100")),
        cluster_command(CALENDAR, 0x03, bytes.fromhex("00000000FEFFFFFF")),
        cluster_command(CALENDAR, 0x04, bytes.fromhex("00000000000300000000FEFFFFFF")),
    ),
    "GCS21d": (cluster_command(PRICE, 0x0B, bytes.fromhex("00000000FFFFFFFF0100")),),
    "GCS21k": (cluster_command(PRICE, 0x0B, bytes.fromhex("00000000FFFFFFFF0100")),),
    "GCS21e": (
        read_attributes(BASIC, 0x0004, 0x0005, 0x0003),
        read_attributes(METERING, 0x0608, 0x0607),
    ),
    "GCS21f": (
        read_attributes(
            PRICE, 0x0203, 0x0202, 0x0100, 0x0101, 0x0102, 0x0615, 0x0400, 0x0401, 0x0402,
            0x0403, 0x0410, 0x0420, 0x0430, 0x0440, 0x0616, 0x0617, 0x0301,
        ),
        cluster_command(CALENDAR, 0x01, bytes.fromhex("00000000FFFFFFFF0100")),
        cluster_command(CALENDAR, 0x02, bytes.fromhex("00000000FFFFFFFF0100")),
        cluster_command(CALENDAR, 0x03, bytes.fromhex("00000000FFFFFFFF")),
        cluster_command(CALENDAR, 0x04, bytes.fromhex("00000000000000000000FFFFFFFF")),
        cluster_command(PRICE, 0x00, b"\x00"),
    ),
    "GCS21j": (read_attributes(PREPAYMENT, 0x0000),),
    "GCS21m": (read_attributes(BASIC, 0x0004, 0x0005), read_attributes(METERING, 0x0608, 0x0607)),
    "GCS38": (read_attributes(METERING, 0x0206),),
    "GCS46": (read_attributes(METERING, 0x0307),),
    "GCS60": (read_attributes(METERING, 0x0A00), read_attributes(PREPAYMENT, 0x0001)),
    "GCS60a": (read_attributes(METERING, 0x0A00), read_attributes(PREPAYMENT, 0x0001)),
}

for _uc, _parts in FIXED_ZCL.items():
    builder(_uc)(fixed_reads(*_parts))

#: ZCL Get Snapshot / Get Prepay Snapshot: how many the DSP asks for, and the cause bitmap.
SNAPSHOT_GET = 0x06  # Metering
PREPAY_SNAPSHOT_GET = 0x07  # Prepayment
BILLING_SNAPSHOTS = 12
DAILY_SNAPSHOTS = 31
CAUSE_GENERAL = 0x00000001
CAUSE_BILLING_PERIOD = 0x00000002
CAUSE_CHANGE_OF_TARIFF_OR_MODE = 0x00006008


def _snapshots(ctx: BuildContext, cluster: int, command: int, count: int, cause: int) -> list[Zcl]:
    start, end = log_period(ctx.body)
    head = utc_le(start) + utc_le(end)
    return [
        cluster_command(cluster, command, head + bytes((offset,)) + le(cause, 4, "cause"))
        for offset in range(count)
    ]


@builder("GCS15b")
def gas_billing_log_tariff(ctx: BuildContext) -> bytes:
    """4.4.2: change-of-mode/tariff snapshots, prepayment side then metering side."""
    return gbz_message(
        _snapshots(ctx, PREPAYMENT, PREPAY_SNAPSHOT_GET, BILLING_SNAPSHOTS,
                   CAUSE_CHANGE_OF_TARIFF_OR_MODE)
        + _snapshots(ctx, METERING, SNAPSHOT_GET, BILLING_SNAPSHOTS,
                     CAUSE_CHANGE_OF_TARIFF_OR_MODE)
    )


@builder("GCS15c")
def gas_billing_log_calendar(ctx: BuildContext) -> bytes:
    """4.4.3: billing-calendar snapshots, metering side then prepayment side."""
    return gbz_message(
        _snapshots(ctx, METERING, SNAPSHOT_GET, BILLING_SNAPSHOTS, CAUSE_BILLING_PERIOD)
        + _snapshots(ctx, PREPAYMENT, PREPAY_SNAPSHOT_GET, BILLING_SNAPSHOTS,
                     CAUSE_BILLING_PERIOD)
    )


@builder("GCS16b")
def gas_prepayment_daily_log(ctx: BuildContext) -> bytes:
    """4.14: one Get Prepay Snapshot per day slot of the 31-entry daily log."""
    return gbz_message(
        _snapshots(ctx, PREPAYMENT, PREPAY_SNAPSHOT_GET, DAILY_SNAPSHOTS, CAUSE_GENERAL)
    )


GET_DEBT_REPAYMENT_LOG = 0x0A
DEBT_REPAYMENTS = 10
DEBT_TYPE_PAYMENT_BASED = 0x02


@builder("GCS15d")
def gas_debt_payments(ctx: BuildContext) -> bytes:
    """4.4.4: Get Debt Repayment Log from the period start (GBZ from-date-time)."""
    start, end = log_period(ctx.body)
    payload = utc_le(end) + bytes((DEBT_REPAYMENTS, DEBT_TYPE_PAYMENT_BASED))
    return gbz_message(
        [cluster_command(PREPAYMENT, GET_DEBT_REPAYMENT_LOG, payload,
                         from_datetime=seconds_2000(start))]
    )


GET_SAMPLED_DATA = 0x08
HALF_HOUR = 1800
SAMPLE_CONSUMPTION = 0x00


@builder("GCS17")
def gas_profile(ctx: BuildContext) -> bytes:
    """4.8.1: half-hourly consumption samples from the period start, inclusive of the end."""
    start, end = log_period(ctx.body)
    samples = int((end - start).total_seconds()) // HALF_HOUR + 1
    payload = le(0, 2, "sample id") + utc_le(start) + bytes((SAMPLE_CONSUMPTION,))
    return gbz_message(
        [cluster_command(METERING, GET_SAMPLED_DATA, payload + le(samples, 2, "samples"))]
    )


GET_EVENT_LOG = 0x00
#: Event control / log id octet of Get Event Log as GBCS uses it for each log.
EVENT_LOG_CONTROL = {"CS10a": 0x13, "CS10b": 0x04}


def _event_log(control: int) -> Builder:
    def build(ctx: BuildContext) -> bytes:
        start, end = log_period(ctx.body)
        payload = bytes((control,)) + le(0, 2, "event id") + utc_le(start) + utc_le(end)
        return gbz_message(
            [cluster_command(EVENTS, GET_EVENT_LOG, payload + b"\x00" + le(0, 2, "offset"))]
        )

    return build


for _uc, _control in EVENT_LOG_CONTROL.items():
    builder(_uc)(_event_log(_control))
