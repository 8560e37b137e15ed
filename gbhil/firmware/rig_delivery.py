"""The CSP's firmware delivery on a simulated rig: image to the CHF, then OTA over the HAN.

The CHF's OTA server (:class:`gbhil.han.ota.OtaServer`) offers the image to the target
Devices only. Always-on Devices (ESME, PPMID) get an Image Notify and pull the image at
once; a GSME pulls at its next wake. A Device that loses power mid-transfer keeps the
blocks it has and resumes from there when power returns (:mod:`gbhil.han.ota`). The CHF
stages an image for itself directly (it is the OTA server).

Simulation shortcut: real GSMEs query the CHF for images on their own schedule; here the
delivery asks the rig's GSME node to do it at its next wake.

Devices hosted in another process (:class:`gbhil.bus.han_bridge.RemoteNode`, MQTT rigs)
are reached the same way: the Image Notify crosses the bus like any HAN frame, and a
sleepy one is asked to check at its next wake with the :data:`OP_CHECK_FIRMWARE` node
command, which its device host obeys (:mod:`gbhil.bus.device_host`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from gbhil.devices import firmware as device_firmware
from gbhil.duis.model import format_eui
from gbhil.han.ota import parse_ota_file

#: Node command to a device host: ask the CHF for an image (a sleepy device: at its next
#: wake); the answer's :data:`SLEEPY` says whether it waits for a wake.
OP_CHECK_FIRMWARE: Final = "check_firmware"
SLEEPY: Final = "sleepy"


def _joined(node: Any) -> bool:
    """A local node knows; a remote stand-in remembers its last join result."""
    joined = getattr(node, "joined", None)
    if joined is not None:
        return bool(joined)
    result = getattr(node, "last_result", None)
    return bool(result is not None and result.accepted)


class HanOtaDelivery:
    """:class:`gbhil.firmware.distribution.FirmwareDelivery` for a :class:`SimulatedRig`."""

    def __init__(self, rig: Any) -> None:
        self.rig = rig

    def _nodes(self) -> dict[str, Any]:
        return {format_eui(node.eui): node for node in self.rig.nodes.values()
                if _joined(node)}

    async def deliver(self, comms_hub: str, image: bytes, targets: Sequence[str],
                      ) -> frozenset[str]:
        hub = self.rig.hub
        chf = self.rig.chf
        if format_eui(chf.eui) != comms_hub:
            return frozenset(targets)  # the CSP reaches no Comms Hub of that ID here
        nodes = self._nodes()
        on_han = [t for t in targets if t in nodes]
        unknown = frozenset(t for t in targets if t not in nodes and t != comms_hub)
        if comms_hub in targets:
            file = parse_ota_file(image)
            device_firmware.slots(chf).stage(file.manufacturer_image, file.header.version_bytes)
        if not on_han:
            return unknown
        euis = {nodes[t].eui for t in on_han}
        for served in hub.ota.images:
            if served.data == image and served.targets is not None:
                euis |= served.targets
        offered = hub.ota.add_image(image, targets=euis)
        for target in on_han:
            node = nodes[target]
            if hasattr(node, "check_firmware"):
                node.check_firmware = True  # sleepy: asks at its next wake
            elif callable(getattr(node, "command", None)):  # hosted in another process
                answer = await node.command(OP_CHECK_FIRMWARE)
                if not answer.get(SLEEPY):
                    await hub.ota.notify(node.eui, offered)
            else:
                await hub.ota.notify(node.eui, offered)
        return unknown


__all__ = ["OP_CHECK_FIRMWARE", "SLEEPY", "HanOtaDelivery"]
