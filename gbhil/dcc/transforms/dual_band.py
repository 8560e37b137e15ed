"""6.28-6.32: the dual-band Communications Hub's sub-GHz configuration (DBCH01-05).

All go to the CHF through the ACB on the User's behalf. DBCH04 writes one structure to
0-0:94.44.10.0: the four channel-page masks (32-bit ZigBee page masks: page number in the
top five bits, one bit per channel below), then the thresholds as fixed-point integers.
DBCH01/03 are reads and DBCH02 a range read (see :mod:`reads`).
"""

from __future__ import annotations

from decimal import Decimal

from gbhil.dcc.transforms.base import (
    BuildContext,
    BuildError,
    access_request,
    builder,
    decimal,
    find,
    integer,
    scaled,
    set_,
)
from gbhil.duis.codes import CHANNEL_MASKS, channel_mask_violations
from gbhil.gbcs.axdr import BitString, Data, Structure, Uint8, Uint16

SUB_GHZ_CONFIGURATION = "0-0:94.44.10.0"
SUB_GHZ_CHANNEL_SCAN = "0-0:94.44.10.1"
#: ZigBee channel pages of the four masks, in XSD order (Page 28-31).
CHANNEL_PAGES = (28, 29, 30, 31)
PAGE_SHIFT = 27

#: Scalar settings in structure order: element, places (x 10^places), A-XDR type.
SETTINGS: tuple[tuple[str, int, type[Uint8] | type[Uint16]], ...] = (
    ("NormalLimitedDutyCycleThreshold", 2, Uint16),
    ("LimitedCriticalDutyCycleThreshold", 2, Uint16),
    ("MaximumSubGHzChannelChangesPerWeek", 0, Uint8),
    ("GSMECurfew", 0, Uint16),
    ("ChannelQuieterThreshold", 0, Uint8),
    ("ChannelNoisierThreshold", 0, Uint8),
    ("NonGSMEPoorCommsPercentageThreshold", 2, Uint16),
    ("NonGSMEPoorCommsMeasurementPeriods", 0, Uint8),
    ("LocalCHNoiseMeasurementPeriod", 0, Uint16),
    ("LocalCHFailurePercentage", 2, Uint16),
    ("LocalCHRetryPercentage", 2, Uint16),
)
_LIMITS = {Uint8: 0xFF, Uint16: 0xFFFF}


def channel_page_mask(page: int, first: int, channels: set[int]) -> int:
    """32-bit page mask: page in bits 27-31, channel ``first + n`` in bit n."""
    return (page << PAGE_SHIFT) | sum(1 << (c - first) for c in channels)


def _channels(ctx: BuildContext, element: str) -> set[int]:
    mask = find(ctx.body, element)
    if mask is None:
        return set()
    out: set[int] = set()
    for child in mask:
        if not isinstance(child.tag, str):
            continue
        name = child.tag.rsplit("}", 1)[-1]
        if not name.startswith("Channel") or not name[7:].isdigit():
            raise BuildError(f"{element} holds {name}, not ChannelN")
        out.add(int(name[7:]))
    return out


@builder("DBCH04")
def set_sub_ghz_configuration(ctx: BuildContext) -> bytes:
    selected = {m.element: _channels(ctx, m.element) for m in CHANNEL_MASKS}
    problems = channel_mask_violations(selected)
    if problems:
        code, reason = problems[0]
        raise BuildError(reason, code)
    items: list[Data] = [
        BitString(32, channel_page_mask(page, m.first_channel, selected[m.element])
                  .to_bytes(4, "big"))
        for page, m in zip(CHANNEL_PAGES, CHANNEL_MASKS, strict=True)
    ]
    for element, places, kind in SETTINGS:
        value: Decimal | int = decimal(ctx.body, element) if places else integer(ctx.body, element)
        number = scaled(Decimal(value), places, element)
        if not 0 <= number <= _LIMITS[kind]:
            raise BuildError(f"{element} {value} does not fit the GBCS field")
        items.append(kind(number))
    return access_request(ctx.counter, [set_(1, SUB_GHZ_CONFIGURATION, 2, Structure(tuple(items)))])


@builder("DBCH05")
def request_channel_scan(ctx: BuildContext) -> bytes:
    return access_request(ctx.counter, [set_(1, SUB_GHZ_CHANNEL_SCAN, 2, Uint8(0))])
