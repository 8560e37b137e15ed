"""1.x tariffs and prices on the ESME (ECS01b, ECS01d, ECS05).

Prices go to the passive unit charges of the class 113 charge objects and become active at
the execution date-time written to attribute 7 (now, a date-time, or never = cancel). The
primary element's price table holds 48 TOU rates (index 0x01-0x30) and 4 x 8 block prices
(0xA1-0xD8: block letter A-D, TOU rate 1-8); rates the request leaves out are 0.
"""

from __future__ import annotations

from lxml import etree

from gbhil.dcc.transforms.base import (
    BuildContext,
    BuildError,
    access_request,
    action,
    builder,
    cluster_command,
    dlms_execution,
    find,
    find_all,
    gbz_message,
    gbz_start,
    integer,
    le,
    obis,
    set_,
    text,
    utc_le,
    zcl_string,
)
from gbhil.dcc.transforms.zcl_calendar import (
    CALENDAR_DELIVERED,
    calendar_start,
    publish_whole_calendar,
)
from gbhil.gbcs.axdr import Array, Int8, Int16, OctetString, Structure, Uint16

CHARGE_CLASS = 113
UNIT_CHARGE_PASSIVE = 6
ACTIVATION_TIME = 7
STANDING_CHARGE = "0-0:19.20.4.255"
PRIMARY_PRICES = "0-0:19.20.0.255"
SECONDARY_PRICES = "0-0:19.20.5.255"
#: Commodity references of the price tables: active import of the element (class 3, attr 2).
PRIMARY_REGISTER = "1-0:1.8.0.255"
SECONDARY_REGISTER = "1-20:1.8.0.255"
TOU_RATES = 48
BLOCKS = 4
BLOCK_RATES = 8
SECONDARY_RATES = 4
#: Commodity scale of the price tables (prices in 10^-3 of the currency unit, GBCS).
COMMODITY_SCALE = 3
INT16_RANGE = range(-(2**15), 2**15)


def _int16(value: int, what: str) -> Int16:
    if value not in INT16_RANGE:
        raise BuildError(f"{what} {value} does not fit a GBCS price (int16)")
    return Int16(value)


def _price_table(scale: int, register: str, entries: list[tuple[int, int]]) -> Structure:
    return Structure(
        (
            Structure((Int8(COMMODITY_SCALE), Int8(scale))),
            Structure((Uint16(3), OctetString(obis(register)), Int8(2))),
            Array(tuple(Structure((OctetString(bytes((i,))), _int16(p, "price")))
                        for i, p in entries)),
        )
    )


def _indexed(parent: etree._Element | None, element: str, limit: int) -> dict[int, int]:
    """``<element index="n">price</element>`` children of ``parent`` as {n: price}."""
    out: dict[int, int] = {}
    if parent is None:
        return out
    for e in find_all(parent, element):
        index = int(e.get("index", "0"))
        if not 1 <= index <= limit:
            raise BuildError(f"{element} index {index} is outside 1..{limit}")
        out[index] = int((e.text or "0").strip())
    return out


@builder("ECS01b")
def primary_price(ctx: BuildContext) -> bytes:
    base = "PriceElements/ElectricityPriceElements"
    tariffs = [
        t for k in ("TOUTariff", "BlockTariff", "HybridTariff")
        if (t := find(ctx.body, f"{base}/{k}")) is not None
    ]
    if len(tariffs) != 1:
        raise BuildError("ElectricityPriceElements needs one of TOU, Block or Hybrid tariff")
    tariff = tariffs[0]
    tou = _indexed(tariff, "TOUPrice", TOU_RATES)
    blocks: dict[tuple[int, int], int] = {}
    for rate_prices in find_all(tariff, "BlockPrices"):
        rate = int(rate_prices.get("index", "0"))
        if not 1 <= rate <= BLOCK_RATES:
            raise BuildError(f"BlockPrices index {rate} is outside 1..{BLOCK_RATES}")
        for block, price in _indexed(rate_prices, "BlockPrice", BLOCKS).items():
            blocks[(block, rate)] = price
    entries = [(i, tou.get(i, 0)) for i in range(1, TOU_RATES + 1)]
    entries += [
        (((9 + block) << 4) | rate, blocks.get((block, rate), 0))
        for block in range(1, BLOCKS + 1)
        for rate in range(1, BLOCK_RATES + 1)
    ]
    standing = Structure(
        (
            Structure((Int8(0), Int8(integer(ctx.body, f"{base}/StandingChargeScale")))),
            Structure((Uint16(0), OctetString(bytes(6)), Int8(0))),
            Array((Structure((OctetString(b""),
                              _int16(integer(ctx.body, f"{base}/StandingCharge"),
                                     "StandingCharge"))),)),
        )
    )
    when = OctetString(dlms_execution(ctx.execution))
    return access_request(
        ctx.counter,
        [
            set_(CHARGE_CLASS, STANDING_CHARGE, UNIT_CHARGE_PASSIVE, standing),
            set_(CHARGE_CLASS, PRIMARY_PRICES, UNIT_CHARGE_PASSIVE,
                 _price_table(integer(ctx.body, f"{base}/PriceScale"), PRIMARY_REGISTER,
                              entries)),
            set_(CHARGE_CLASS, STANDING_CHARGE, ACTIVATION_TIME, when),
            set_(CHARGE_CLASS, PRIMARY_PRICES, ACTIVATION_TIME, when),
        ],
    )


@builder("ECS01d")
def secondary_price(ctx: BuildContext) -> bytes:
    prices = _indexed(find(ctx.body, "PriceElements"), "ElectricityPriceElement",
                      SECONDARY_RATES)
    entries = [(i, prices.get(i, 0)) for i in range(1, SECONDARY_RATES + 1)]
    table = _price_table(integer(ctx.body, "PriceElements/PriceScale"), SECONDARY_REGISTER,
                         entries)
    return access_request(
        ctx.counter,
        [
            set_(CHARGE_CLASS, SECONDARY_PRICES, UNIT_CHARGE_PASSIVE, table),
            set_(CHARGE_CLASS, SECONDARY_PRICES, ACTIVATION_TIME,
                 OctetString(dlms_execution(ctx.execution))),
        ],
    )


BLOCK_COUNTER_SCRIPTS = "0-0:10.0.100.255"
RESET_BLOCK_COUNTERS = 99


@builder("ECS05")
def reset_block_counters(ctx: BuildContext) -> bytes:
    return access_request(
        ctx.counter, [action(9, BLOCK_COUNTER_SCRIPTS, 1, Uint16(RESET_BLOCK_COUNTERS))]
    )


# --- 1.1.1 gas tariff ----------------------------------------------------------------------

PRICE = 0x0700
PUBLISH_TARIFF_INFORMATION = 0x04
PUBLISH_PRICE_MATRIX = 0x05
PUBLISH_BLOCK_THRESHOLDS = 0x06
#: Tariff type / charging scheme octet: delivered, TOU or block charging.
TARIFF_TOU = 0x00
TARIFF_BLOCK = 0x10
ISSUER_TARIFF_ID = 1
CURRENCY = {"GBP": 826, "EUR": 978}
#: Gas prices carry five decimal places (ZCL trailing-digit octet 0x50).
PRICE_TRAILING_DIGITS = 0x50
TIER_BLOCK_MODE_NOT_USED = 0xFF
THRESHOLD_MULTIPLIER = 1
THRESHOLD_DIVISOR = 1000
UNIT_KWH = 0x00
#: Sub-payload control: 1 = TOU-based prices / thresholds for all tiers, 0 = block-based.
SUB_PAYLOAD_TOU = 0x01
SUB_PAYLOAD_BLOCK = 0x00
THRESHOLDS_ALL_TIERS = 0x01
GAS_RATES = 4


def _gas_day(day: etree._Element) -> tuple[int, list[bytes]]:
    """A gas day profile: one entry from midnight with the TOU tier (0 for block)."""
    tier = integer(day, "TOUTariffAction") if find(day, "TOUTariffAction") is not None else 0
    return integer(day, "DayName"), [le(0, 2, "start time") + bytes((tier,))]


@builder("GCS01a")
def gsme_tariff(ctx: BuildContext) -> bytes:
    base = "GasTariffElements"
    prices = "PriceElements/GasPriceElements"
    tou = find(ctx.body, f"{prices}/TOUTariff")
    block = find(ctx.body, f"{prices}/BlockTariff")
    if (tou is None) == (block is None):
        raise BuildError("GasPriceElements needs a TOUTariff or a BlockTariff")
    currency = CURRENCY.get(text(ctx.body, f"{prices}/CurrencyUnits"))
    if currency is None:
        raise BuildError("CurrencyUnits is not a supported currency")
    thresholds = sorted(
        _indexed(find(ctx.body, f"{base}/ThresholdMatrix"), "BlockThreshold", 3).items()
    ) if block is not None else []
    start = le(gbz_start(ctx.execution), 4, "start time")
    matrix_start = le(calendar_start(ctx.execution), 4, "start time")
    head = le(0, 4, "provider id") + utc_le(ctx.now)
    tariff_id = le(ISSUER_TARIFF_ID, 4, "tariff id")
    info = (
        head + tariff_id + start
        + bytes((TARIFF_BLOCK if block is not None else TARIFF_TOU,)) + zcl_string(b"", "label")
        + bytes((0 if block is not None else len(find_all(tou, "TOUPrice")),
                 len(thresholds), UNIT_KWH))
        + le(currency, 2, "currency") + bytes((PRICE_TRAILING_DIGITS,))
        + le(integer(ctx.body, f"{prices}/StandingCharge"), 4, "StandingCharge")
        + bytes((TIER_BLOCK_MODE_NOT_USED,))
        + le(THRESHOLD_MULTIPLIER, 3, "multiplier") + le(THRESHOLD_DIVISOR, 3, "divisor")
    )
    parts = [
        *publish_whole_calendar(
            ctx, CALENDAR_DELIVERED, f"{base}/SwitchingTable/DayProfiles/DayProfile", _gas_day,
            weeks=f"{base}/SwitchingTable/WeekProfiles/WeekProfile",
            seasons=f"{base}/SwitchingTable/Seasons/Season",
            special_days=f"{base}/SpecialDays/SpecialDay",
        ),
        cluster_command(PRICE, PUBLISH_TARIFF_INFORMATION, info, server=True),
    ]
    if block is not None:
        parts.append(
            cluster_command(
                PRICE, PUBLISH_BLOCK_THRESHOLDS,
                head + matrix_start + tariff_id + bytes((0, 1, THRESHOLDS_ALL_TIERS,
                                                         len(thresholds)))
                + b"".join(le(v, 6, "BlockThreshold") for _, v in thresholds),
                server=True,
            )
        )
        entries = [
            bytes((i - 1,)) + le(p, 4, "BlockPrice")
            for i, p in sorted(_indexed(block, "BlockPrice", GAS_RATES).items())
        ]
        control = SUB_PAYLOAD_BLOCK
    else:
        entries = [
            bytes((i,)) + le(p, 4, "TOUPrice")
            for i, p in sorted(_indexed(tou, "TOUPrice", GAS_RATES).items())
        ]
        control = SUB_PAYLOAD_TOU
    parts.append(
        cluster_command(
            PRICE, PUBLISH_PRICE_MATRIX,
            head + matrix_start + tariff_id + bytes((0, 1, control)) + b"".join(entries),
            server=True,
        )
    )
    return gbz_message(parts)
