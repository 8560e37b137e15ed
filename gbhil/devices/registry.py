"""Which class simulates which device type, loaded on first use."""

from __future__ import annotations

import importlib

from gbhil.devices.core import Device, DeviceType

#: Device type -> "module:Class".  Lazy, so a CLI call loads only what it needs.
DEVICE_CLASSES: dict[DeviceType, str] = {
    DeviceType.ESME: "gbhil.devices.esme:Esme",
    DeviceType.GSME: "gbhil.devices.gsme:Gsme",
    DeviceType.GPF: "gbhil.devices.gpf:Gpf",
    DeviceType.CHF: "gbhil.devices.chf:Chf",
    DeviceType.PPMID: "gbhil.devices.ppmid:Ppmid",
    DeviceType.HCALCS: "gbhil.devices.ppmid:Hcalcs",
    DeviceType.HHT: "gbhil.devices.hht:Hht",
}


def device_class(kind: DeviceType) -> type[Device]:
    module, _, name = DEVICE_CLASSES[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Device)):
        raise TypeError(f"{DEVICE_CLASSES[kind]} is not a Device")
    return cls
