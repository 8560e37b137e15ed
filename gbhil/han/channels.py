"""Catalogue of Zigbee channel pages, channels, channel masks and PHY airtime.

Everything on the HAN that names a frequency goes through here: the simulated
medium keys its broadcast domains by ``(page, channel)``, the pcap writer puts
page and channel into the TAP header, and GBCS sub-GHz configuration (DBCH)
carries 32-bit channel masks. One validated catalogue keeps those in step.

Sources (see docs/han.md):

* Page 0 is the 2.4 GHz O-QPSK PHY, channels 11-26, 250 kb/s (IEEE 802.15.4;
  radio-stack.md section 6).
* GB sub-GHz pages (radio-stack.md 3.1; ZBOSS ``ZB_PAGE2x_SUB_GHZ_*`` constants,
  which cite Zigbee R22 D.10.2.1.3.2): page 28 = 863-876 MHz channels 0-26;
  page 29 = channels 27-34 plus channel 62; page 30 = channels 35-61;
  page 31 = 915-921 MHz channels 0-26.
* 32-bit channel mask: bits 31-27 the page, bits 26-0 a channel bitmap. Bit ``i``
  is channel ``i`` on pages 0, 28 and 31; pages 29 and 30 number their bits from
  the page's first channel (page 29: bits 0-7 = channels 27-34, bit 8 =
  channel 62; page 30: bits 0-26 = channels 35-61), as ZBOSS does.
* Sub-GHz bit rate and PHY header: not given by the project's sources; the
  defaults below (100 kb/s 2-FSK, 4-octet preamble, 2-octet SFD, 2-octet PHR,
  the IEEE 802.15.4 SUN FSK minimums) are documented assumptions and can be
  replaced per page with :func:`phy_profile` overrides in the medium.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final, NamedTuple


class HanError(Exception):
    """Base class of every error raised by :mod:`gbhil.han`."""


class ChannelError(HanError, ValueError):
    """A page, channel or channel mask that the GB HAN cannot use."""


class Band(Enum):
    """Radio band: a dual-band node has one radio (one channel) per band."""

    GHZ_2_4 = "2.4GHz"
    SUB_GHZ = "sub-GHz"


class PageChannel(NamedTuple):
    """A channel on a channel page: the unit a radio listens on."""

    page: int
    channel: int

    def __str__(self) -> str:
        return f"page {self.page} channel {self.channel}"


@dataclass(frozen=True, slots=True)
class PhyProfile:
    """What the airtime of one frame depends on.

    ``overhead_octets`` is everything the radio sends before the PSDU
    (preamble + SFD + PHR); the PSDU is the MAC frame including its FCS.
    """

    name: str
    bit_rate: int  # bits per second over the air
    overhead_octets: int
    max_psdu: int  # largest MAC frame (incl. FCS) the PHY carries

    def __post_init__(self) -> None:
        if self.bit_rate <= 0:
            raise ChannelError(f"PHY {self.name!r}: bit rate must be positive, got {self.bit_rate}")
        if self.overhead_octets < 0:
            raise ChannelError(f"PHY {self.name!r}: negative overhead {self.overhead_octets}")
        if self.max_psdu <= 0:
            raise ChannelError(f"PHY {self.name!r}: max PSDU must be positive")

    def airtime(self, psdu_octets: int) -> float:
        """Seconds on air for a PSDU (MAC frame incl. FCS) of ``psdu_octets``."""
        if psdu_octets < 0:
            raise ChannelError(f"PSDU length must not be negative, got {psdu_octets}")
        if psdu_octets > self.max_psdu:
            raise ChannelError(
                f"PSDU of {psdu_octets} octets exceeds the {self.name} maximum of {self.max_psdu}"
            )
        return (self.overhead_octets + psdu_octets) * 8 / self.bit_rate


@dataclass(frozen=True, slots=True)
class PageInfo:
    """One channel page: its band, channels and how the mask bitmap numbers them."""

    page: int
    band: Band
    description: str
    channels: tuple[int, ...]  # in mask bit order: bit i <-> channels[i] (or channel == bit)
    bit_is_channel: bool  # True: bit i is channel i; False: bit i is channels[i]
    phy: PhyProfile

    def bit_of(self, channel: int) -> int:
        """Bit position of ``channel`` in this page's 27-bit bitmap."""
        if channel not in self.channels:
            raise ChannelError(
                f"channel {channel} is not on page {self.page} ({self.description}); "
                f"valid: {_ranges(self.channels)}"
            )
        return channel if self.bit_is_channel else self.channels.index(channel)

    def channel_of(self, bit: int) -> int:
        """Channel number carried by bitmap bit ``bit``."""
        if self.bit_is_channel:
            if bit not in self.channels:
                raise ChannelError(f"bit {bit} is not a channel of page {self.page}")
            return bit
        if not 0 <= bit < len(self.channels):
            raise ChannelError(f"bit {bit} is not a channel of page {self.page}")
        return self.channels[bit]


# ---------------------------------------------------------------------------
# PHY profiles
# ---------------------------------------------------------------------------

#: IEEE 802.15.4 maximum PSDU (aMaxPhyPacketSize) for the O-QPSK PHY.
MAX_PSDU_2_4: Final = 127
#: 2.4 GHz O-QPSK: 4-octet preamble, 1-octet SFD, 1-octet PHR, 250 kb/s.
PHY_OQPSK_2_4: Final = PhyProfile("2.4 GHz O-QPSK", 250_000, 4 + 1 + 1, MAX_PSDU_2_4)
#: GB sub-GHz (assumption, see module docstring): 100 kb/s, 4 preamble + 2 SFD + 2 PHR.
PHY_SUB_GHZ_FSK: Final = PhyProfile("sub-GHz FSK", 100_000, 4 + 2 + 2, MAX_PSDU_2_4)

# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------

PAGE_2_4_GHZ: Final = 0
PAGE_28: Final = 28
PAGE_29: Final = 29
PAGE_30: Final = 30
PAGE_31: Final = 31

PAGES: Final[Mapping[int, PageInfo]] = {
    PAGE_2_4_GHZ: PageInfo(
        PAGE_2_4_GHZ, Band.GHZ_2_4, "2.4 GHz", tuple(range(11, 27)), True, PHY_OQPSK_2_4
    ),
    PAGE_28: PageInfo(
        PAGE_28, Band.SUB_GHZ, "863-876 MHz", tuple(range(0, 27)), True, PHY_SUB_GHZ_FSK
    ),
    PAGE_29: PageInfo(
        PAGE_29, Band.SUB_GHZ, "863-876 MHz", (*range(27, 35), 62), False, PHY_SUB_GHZ_FSK
    ),
    PAGE_30: PageInfo(
        PAGE_30, Band.SUB_GHZ, "863-876 MHz", tuple(range(35, 62)), False, PHY_SUB_GHZ_FSK
    ),
    PAGE_31: PageInfo(
        PAGE_31, Band.SUB_GHZ, "915-921 MHz", tuple(range(0, 27)), True, PHY_SUB_GHZ_FSK
    ),
}

SUB_GHZ_PAGES: Final = frozenset(p for p, info in PAGES.items() if info.band is Band.SUB_GHZ)

# ---------------------------------------------------------------------------
# 32-bit channel mask layout
# ---------------------------------------------------------------------------

MASK_PAGE_SHIFT: Final = 27
MASK_PAGE_BITS: Final = 0x1F  # 5-bit page
MASK_CHANNEL_BITS: Final = (1 << MASK_PAGE_SHIFT) - 1  # 27-bit bitmap
MASK_MAX: Final = 0xFFFF_FFFF


def _ranges(values: Iterable[int]) -> str:
    """``0-26`` / ``27-34, 62``: channel lists as people write them in errors."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)


def page_info(page: int) -> PageInfo:
    """The catalogue entry of ``page``; a ChannelError names the supported pages."""
    if isinstance(page, bool) or not isinstance(page, int):
        raise ChannelError(f"channel page must be an int, got {type(page).__name__}")
    try:
        return PAGES[page]
    except KeyError:
        raise ChannelError(
            f"channel page {page} is not supported on the GB HAN "
            f"(supported: {', '.join(str(p) for p in PAGES)})"
        ) from None


def validate(page: int, channel: int) -> PageChannel:
    """Check one page/channel pair and return it as a :class:`PageChannel`."""
    info = page_info(page)
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise ChannelError(f"channel must be an int, got {type(channel).__name__}")
    info.bit_of(channel)  # raises with the valid range
    return PageChannel(page, channel)


def band_of(page: int) -> Band:
    """2.4 GHz or sub-GHz: which radio of a dual-band node serves ``page``."""
    return page_info(page).band


def is_sub_ghz(page: int) -> bool:
    """True for GB sub-GHz pages 28-31 (duty-cycle managed)."""
    return page_info(page).band is Band.SUB_GHZ


def phy_profile(page: int) -> PhyProfile:
    """Default PHY of ``page`` (the medium may override it per page)."""
    return page_info(page).phy


def airtime(page: int, psdu_octets: int) -> float:
    """Seconds on air for a MAC frame of ``psdu_octets`` (incl. FCS) on ``page``."""
    return phy_profile(page).airtime(psdu_octets)


@dataclass(frozen=True, slots=True)
class ChannelMask:
    """A 32-bit Zigbee channel mask: one page and a set of its channels."""

    page: int
    channels: frozenset[int]

    def __post_init__(self) -> None:
        info = page_info(self.page)
        if not self.channels:
            raise ChannelError(f"channel mask for page {self.page} selects no channel")
        for ch in self.channels:
            info.bit_of(ch)

    @classmethod
    def of(cls, page: int, channels: Iterable[int]) -> ChannelMask:
        """Build from any iterable of channel numbers."""
        return cls(page, frozenset(channels))

    def encode(self) -> int:
        """The mask as an unsigned 32-bit integer."""
        info = PAGES[self.page]
        bitmap = 0
        for ch in self.channels:
            bitmap |= 1 << info.bit_of(ch)
        return (self.page << MASK_PAGE_SHIFT) | bitmap

    @classmethod
    def decode(cls, value: int) -> ChannelMask:
        """Parse a 32-bit mask; unknown pages, foreign bits and empty masks are errors."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise ChannelError(f"channel mask must be an int, got {type(value).__name__}")
        if not 0 <= value <= MASK_MAX:
            raise ChannelError(f"channel mask 0x{value:X} does not fit in 32 bits")
        page = (value >> MASK_PAGE_SHIFT) & MASK_PAGE_BITS
        info = page_info(page)
        bitmap = value & MASK_CHANNEL_BITS
        if bitmap == 0:
            raise ChannelError(f"channel mask 0x{value:08X} (page {page}) selects no channel")
        channels: set[int] = set()
        for bit in range(MASK_PAGE_SHIFT):
            if bitmap >> bit & 1:
                try:
                    channels.add(info.channel_of(bit))
                except ChannelError:
                    raise ChannelError(
                        f"channel mask 0x{value:08X}: bit {bit} is not a channel of page "
                        f"{page} (valid channels: {_ranges(info.channels)})"
                    ) from None
        return cls(page, frozenset(channels))

    def __iter__(self) -> Iterator[PageChannel]:
        return (PageChannel(self.page, ch) for ch in sorted(self.channels))

    def __contains__(self, item: object) -> bool:
        if isinstance(item, tuple) and len(item) == 2:
            return item[0] == self.page and item[1] in self.channels
        return False


def all_channels(page: int) -> ChannelMask:
    """Mask of every channel on ``page``."""
    return ChannelMask(page, frozenset(page_info(page).channels))


__all__ = [
    "MASK_CHANNEL_BITS",
    "MASK_PAGE_SHIFT",
    "PAGES",
    "PAGE_2_4_GHZ",
    "PAGE_28",
    "PAGE_29",
    "PAGE_30",
    "PAGE_31",
    "PHY_OQPSK_2_4",
    "PHY_SUB_GHZ_FSK",
    "SUB_GHZ_PAGES",
    "Band",
    "ChannelError",
    "ChannelMask",
    "HanError",
    "PageChannel",
    "PageInfo",
    "PhyProfile",
    "airtime",
    "all_channels",
    "band_of",
    "is_sub_ghz",
    "page_info",
    "phy_profile",
    "validate",
]
