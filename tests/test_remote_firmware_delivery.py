"""The CSP's firmware delivery to meters in a device host, through Mosquitto (issue 5).

:class:`gbhil.firmware.rig_delivery.HanOtaDelivery` is how SR 11.1 / 11.4 reach the HAN:
the CHF's OTA server offers the image to the targets. With the meters in another process
(:mod:`gbhil.bus.device_host`) the always-on ESME is sent an Image Notify across the
broker and pulls the image at once; the sleepy GSME is told with the ``check_firmware``
node command to ask at its next wake, and pulls it when it wakes. Both are seen where the
HIL firmware suite sees them, at the CHF: every octet served and Upgrade End SUCCESS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gbhil.bus.mqtt import MosquittoBroker
from gbhil.devices.trust import Role
from gbhil.duis.model import format_eui
from gbhil.firmware.rig_delivery import HanOtaDelivery
from gbhil.han.network import DEFAULT_IMAGE_TYPE, DEFAULT_MANUFACTURER_CODE
from gbhil.han.ota import TransferProgress, build_ota_file
from gbhil.han.zcl_frames import OtaStatus
from gbhil.rigs.simulated import PARTIES
from tests.test_bus_two_process import HOST_START_TIMEOUT_S, WAIT_S, broker, split_rig

__all__ = ["broker"]  # the fixture, shared with the two-process acceptance tests

#: Wall seconds between looks at the CHF's OTA progress.
POLL_WALL_S = 0.05
#: Versions of the two images (any the meters do not run).
ESME_VERSION = 0x01000301
GSME_VERSION = 0x01000302
PAYLOAD = b"gbhil remote delivery image " * 40


async def _until(ready: Callable[[], TransferProgress | None], what: str) -> TransferProgress:
    """Wait (bounded by WAIT_S of wall time) for a finished transfer."""
    async with asyncio.timeout(WAIT_S):
        while (progress := ready()) is None or progress.end_status is None:
            await asyncio.sleep(POLL_WALL_S)
    assert progress is not None, what
    return progress


def test_remote_esme_and_sleepy_gsme_pull_the_delivered_images(broker: MosquittoBroker) -> None:
    async def scenario() -> dict[str, object]:
        async with asyncio.timeout(HOST_START_TIMEOUT_S + 6 * WAIT_S):
            async with split_rig(broker, ["esme", "gsme"]) as split:
                rig = split.side.rig
                signer = rig.keystore.ds_private(PARTIES[Role.SUPPLIER])
                images = {
                    name: build_ota_file(
                        PAYLOAD, manufacturer_code=DEFAULT_MANUFACTURER_CODE,
                        image_type=DEFAULT_IMAGE_TYPE, file_version=version, signer=signer)
                    for name, version in (("esme", ESME_VERSION), ("gsme", GSME_VERSION))
                }  # fmt: skip
                delivery = HanOtaDelivery(rig)
                hub = format_eui(rig.chf.eui)
                progress = rig.hub.ota.progress

                unknown = await delivery.deliver(hub, images["esme"], [format_eui(rig.esme.eui)])
                esme = await _until(lambda: progress.get((rig.esme.eui, ESME_VERSION)), "esme")

                unknown |= await delivery.deliver(hub, images["gsme"], [format_eui(rig.gsme.eui)])
                # deliver() has awaited whatever it sends: the OTA server's record of the
                # exchanges with each meter so far (Image Notify, queries) is complete here
                before_wake = {
                    name: [e.kind for e in rig.hub.ota.events if e.peer == eui]
                    for name, eui in (("esme", rig.esme.eui), ("gsme", rig.gsme.eui))
                }
                await split.side.remote["gsme"].wake()
                gsme = await _until(lambda: progress.get((rig.gsme.eui, GSME_VERSION)), "gsme")
                return {"unknown": unknown, "esme": esme, "gsme": gsme, "before": before_wake,
                        "sizes": {n: len(i) for n, i in images.items()}}  # fmt: skip

    got = asyncio.run(scenario())
    sizes = got["sizes"]
    assert isinstance(sizes, dict)
    assert got["unknown"] == frozenset(), "both meters are on the CHF's HAN"
    for name in ("esme", "gsme"):
        progress = got[name]
        assert isinstance(progress, TransferProgress)
        assert progress.end_status is OtaStatus.SUCCESS, f"{name}: parsed and staged"
        assert progress.octets == sizes[name], f"{name}: every octet from the CHF"
        assert progress.offsets[0] == 0
    before = got["before"]
    assert isinstance(before, dict)
    assert "notify" in before["esme"], "the always-on ESME was sent an Image Notify"
    assert before["gsme"] == [], "no Image Notify to the sleepy GSME: it asks when it wakes"
