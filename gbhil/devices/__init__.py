"""Simulated SMETS2 devices: ESME, GSME, GPF, CHF, PPMID, HCALCS and HHT over GBCS."""

from gbhil.devices.core import Alert, Command, Deferred, Device, DeviceType, Outcome, Refusal, Reply
from gbhil.devices.trust import AnchorCell, CellUsage, DeviceKeys, Role

__all__ = [
    "Alert",
    "AnchorCell",
    "CellUsage",
    "Command",
    "Deferred",
    "Device",
    "DeviceKeys",
    "DeviceType",
    "Outcome",
    "Refusal",
    "Reply",
    "Role",
]
