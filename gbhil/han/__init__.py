"""The HAN layer: one APS-level transport interface and its simulated medium.

* :mod:`gbhil.han.transport` — :class:`HanTransport` and :class:`ApsFrame`, which
  the simulated medium and real radios both implement.
* :mod:`gbhil.han.channels` — channel pages, channels, 32-bit masks and airtime.
* :mod:`gbhil.han.medium` — :class:`SimulatedMedium`: pages/channels, loss,
  latency, airtime, sub-GHz duty cycle and frequency agility.
* :mod:`gbhil.han.pcap` — linktype-283 (TAP) capture that Wireshark dissects
  down to ZCL and GBCS.
"""

from gbhil.han.channels import (
    Band,
    ChannelError,
    ChannelMask,
    HanError,
    PageChannel,
    PhyProfile,
)
from gbhil.han.medium import (
    DutyCycleConfig,
    DutyCycleMode,
    FrequencyAgilityConfig,
    HanAlert,
    LinkQuality,
    MediumError,
    NodeCounters,
    SimulatedMedium,
    SimulatedNode,
)
from gbhil.han.pcap import PcapError, PcapWriter, read_frames
from gbhil.han.transport import (
    PROFILE_SMART_ENERGY,
    ApsFrame,
    CapturedFrame,
    FrameError,
    HanTransport,
    TxOptions,
    TxPriority,
    TxResult,
    TxStatus,
)

__all__ = [
    "PROFILE_SMART_ENERGY",
    "ApsFrame",
    "Band",
    "CapturedFrame",
    "ChannelError",
    "ChannelMask",
    "DutyCycleConfig",
    "DutyCycleMode",
    "FrameError",
    "FrequencyAgilityConfig",
    "HanAlert",
    "HanError",
    "HanTransport",
    "LinkQuality",
    "MediumError",
    "NodeCounters",
    "PageChannel",
    "PcapError",
    "PcapWriter",
    "PhyProfile",
    "SimulatedMedium",
    "SimulatedNode",
    "TxOptions",
    "TxPriority",
    "TxResult",
    "TxStatus",
    "read_frames",
]
