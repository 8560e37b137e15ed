"""The Communications Hub Function: device log (HAN whitelist), WAN side, CCS/DBCH use cases.

The CHF is where the WAN meets the HAN: it keeps the CHF Device Log that
decides who may join (install codes, TC link key hashes), relays GBCS between
the DCC and the devices, and reports its own state with CS14 and DBCH alerts.
Its GBCS use cases are DLMS COSEM (class 104 ZigBee network control etc.).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gbhil.devices import credentials, firmware
from gbhil.devices.core import Device, DeviceType, Handler

#: The CHF Device Log holds the HAN devices allowed to join (GBCS: at least 16 entries).
DEVICE_LOG_CAPACITY = 16
INSTALL_CODE_LENGTHS = (8, 10, 14, 18)  # Zigbee install codes incl. their CRC-16


@dataclass(slots=True)
class DeviceLogEntry:
    """One CHF Device Log entry."""

    eui: bytes
    device_type: int  # GBCS device type number (0 GSME, 1 ESME, 3 GPF, 4 HCALCS, 5 PPMID, 6 type 2)
    install_code: bytes | None = None
    link_key_hash: bytes = b""  # hashed TC link key once the device has joined
    joined: bool = False
    join_deadline: datetime | None = None

    @property
    def may_join(self) -> bool:
        return self.install_code is not None and not self.joined


@dataclass(slots=True)
class DeviceLog:
    entries: dict[bytes, DeviceLogEntry] = field(default_factory=dict)
    capacity: int = DEVICE_LOG_CAPACITY

    def add(self, entry: DeviceLogEntry) -> bool:
        if entry.eui not in self.entries and len(self.entries) >= self.capacity:
            return False
        old = self.entries.get(entry.eui)
        if old is not None:
            # GBCS CCS01: an existing entry keeps its link key; the key parameter is ignored.
            entry.link_key_hash, entry.joined = old.link_key_hash, old.joined
            entry.install_code = old.install_code or entry.install_code
        self.entries[entry.eui] = entry
        return True

    def remove(self, eui: bytes) -> bool:
        return self.entries.pop(eui, None) is not None

    def record_join(self, eui: bytes, link_key: bytes) -> None:
        e = self.entries[eui]
        e.joined = True
        e.link_key_hash = hashlib.sha256(link_key).digest()[:16]


class Chf(Device):
    """Communications Hub Function."""

    DEVICE_TYPE = DeviceType.CHF

    def __init__(self, eui: bytes, keys: Any, clock: Any, profile: Any = None) -> None:
        super().__init__(eui, keys, clock, profile)
        self.device_log = DeviceLog()

    def handlers(self) -> dict[int, Handler]:
        return {**firmware.handlers(), **credentials.handlers()}
