"""OTA: the GBCS OTA file, and firmware pulled from the CHF in blocks, surviving a power cut."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest

from gbhil.devices import firmware
from gbhil.devices.ppmid import Ppmid
from gbhil.gbcs.security import verify_raw
from gbhil.han import CapturedFrame, LinkQuality
from gbhil.han.network import DEFAULT_IMAGE_TYPE, DEFAULT_MANUFACTURER_CODE
from gbhil.han.ota import (
    DEFAULT_MAX_DATA_SIZE,
    OtaError,
    OtaFile,
    OtaHeader,
    OtaOutcome,
    build_ota_file,
    parse_ota_file,
)
from gbhil.han.zcl_frames import (
    OTA_UPGRADE_TIME_WAIT,
    ImageBlockResponse,
    OtaStatus,
    PowerLost,
    UpgradeEndResponse,
    decode_command,
)
from tests.test_han_tunnel import PPMID, SUPPLIER, HanRig

IMAGE = bytes((i * 7 + 3) & 0xFF for i in range(1000))  # the Manufacturer Image
NEW_VERSION = 0x02000000


# --- the file -------------------------------------------------------------------------


def test_header_matches_the_gbcs_sample_layout() -> None:
    """gbcs-facts 6.1: the DUIS 11.1 sample's 60-octet header, field by field."""
    header = OtaHeader(
        0x121D, 0x0000, 0xACDCACDC, 361, b"", min_hardware_version=0x1111,
        max_hardware_version=0x1211,
    )  # fmt: skip
    raw = header.encode()
    assert len(raw) == 60 == header.header_length
    assert raw[:20].hex() == "1ef1ee0b00013c0004001d120000dcacdcac0200"
    assert raw[20:52] == bytes(32)
    assert raw[52:].hex() == "6901000011111112"
    assert OtaHeader.decode(raw) == header


def test_signed_file_round_trips_and_verifies_with_the_supplier_key() -> None:
    rig_keys = HanRig().pki.keystore
    signer = rig_keys.ds_private(SUPPLIER)
    data = build_ota_file(
        IMAGE, manufacturer_code=0x121D, image_type=0, file_version=NEW_VERSION,
        hardware_versions=(0x1111, 0x1211), signer=signer,
    )  # fmt: skip
    assert len(data) == 60 + len(IMAGE) + 2 + 64
    assert data[60 + len(IMAGE) : 60 + len(IMAGE) + 2] == b"\x00\x40"
    parsed = parse_ota_file(data)
    assert parsed.manufacturer_image == IMAGE and parsed.signature is not None
    assert parsed.header.total_image_size == len(data)
    assert parsed.verify(rig_keys.ds_public(SUPPLIER))
    assert verify_raw(rig_keys.ds_public(SUPPLIER), IMAGE, parsed.signature)
    assert parsed.image_hash == hashlib.sha256(IMAGE).digest()
    assert parsed.encode() == data
    tampered = OtaFile(parsed.header, IMAGE[:-1] + b"\x00", parsed.signature)
    assert not tampered.verify(rig_keys.ds_public(SUPPLIER))


def test_unsigned_ppmid_style_file() -> None:
    data = build_ota_file(IMAGE, manufacturer_code=1, image_type=2, file_version=3)
    parsed = parse_ota_file(data)
    assert parsed.signature is None and parsed.manufacturer_image == IMAGE
    assert parsed.header.header_length == 56 and parsed.header.version_bytes == b"\x00\x00\x00\x03"
    with pytest.raises(OtaError, match="no 0x40 signature trailer"):
        parse_ota_file(data, signed=True)


def _file() -> bytearray:
    return bytearray(build_ota_file(IMAGE, manufacturer_code=1, image_type=2, file_version=3))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b.__setitem__(0, 0x1F), "file identifier at byte 0"),
        (lambda b: b.__setitem__(4, 0x02), "header version at byte 4"),
        (lambda b: b.__setitem__(6, 57), "header length at byte 6"),
        (lambda b: b.__setitem__(8, 0x08), "field control at byte 8"),
        (lambda b: b.extend(b"\x00"), "total image size at byte 52"),
        (lambda b: b.__delitem__(slice(40, None)), "needs 56 octets"),
    ],
)
def test_bad_files_are_refused_precisely(mutate: Any, message: str) -> None:
    data = _file()
    mutate(data)
    with pytest.raises(OtaError, match=message):
        parse_ota_file(bytes(data))


def test_builder_refuses_bad_input() -> None:
    with pytest.raises(OtaError, match="must not be empty"):
        build_ota_file(b"", manufacturer_code=1, image_type=2, file_version=3)
    with pytest.raises(OtaError, match="file version"):
        build_ota_file(IMAGE, manufacturer_code=1, image_type=2, file_version=1 << 32)
    with pytest.raises(OtaError, match="at most 32 octets"):
        build_ota_file(IMAGE, manufacturer_code=1, image_type=2, file_version=3,
                       header_string=b"x" * 33)  # fmt: skip


# --- the transfer ---------------------------------------------------------------------


def _ota_file() -> bytes:
    signer = HanRig().pki.keystore.ds_private(SUPPLIER)
    return build_ota_file(
        IMAGE, manufacturer_code=DEFAULT_MANUFACTURER_CODE, image_type=DEFAULT_IMAGE_TYPE,
        file_version=NEW_VERSION, signer=signer,
    )  # fmt: skip


def _responses(rig: HanRig, kind: type[Any]) -> list[Any]:
    """Every OTA server frame of ``kind`` that went on air (a sniffer's view)."""
    seen: list[Any] = []

    def tap(captured: CapturedFrame) -> None:
        frame = captured.frame
        if frame.cluster_id == 0x0019 and frame.src_eui64 == rig.hub.eui:
            msg = decode_command(0x0019, frame.payload)
            if isinstance(msg.command, kind):
                seen.append(msg.command)

    rig.medium.add_tap(tap)
    return seen


def test_transfer_stages_the_manufacturer_image_in_the_device_slots() -> None:
    rig = HanRig()
    node = rig.add(PPMID, Ppmid)
    data = _ota_file()
    rig.hub.ota.add_image(data)
    ends = _responses(rig, UpgradeEndResponse)

    async def scenario() -> Any:
        assert (await node.join(rig.hub.trust_center)).accepted
        return await node.update_firmware()

    result = rig.run(scenario())
    assert result.outcome is OtaOutcome.COMPLETE and result.resumed_from == 0
    slots = firmware.slots(node.device)
    assert slots.staged_hash == hashlib.sha256(IMAGE).digest() == result.image_hash
    assert slots.staged_version == NEW_VERSION.to_bytes(4, "big")
    assert slots.running_version == firmware.DEFAULT_VERSION  # GBCS: activation is CS06's
    blocks = math.ceil(len(data) / DEFAULT_MAX_DATA_SIZE)
    progress = rig.hub.ota.progress[(PPMID, NEW_VERSION)]
    assert progress.blocks == blocks and progress.octets == len(data)
    assert progress.end_status is OtaStatus.SUCCESS
    assert node.ota.block_requests == [i * DEFAULT_MAX_DATA_SIZE for i in range(blocks)]
    assert [e.upgrade_time for e in ends] == [OTA_UPGRADE_TIME_WAIT]
    assert result.upgrade_time == OTA_UPGRADE_TIME_WAIT


def test_power_cut_mid_transfer_resumes_from_the_last_offset() -> None:
    rig = HanRig()
    node = rig.add(PPMID, Ppmid)
    data = _ota_file()
    rig.hub.ota.add_image(data)
    cut_after = 5
    state: dict[str, Any] = {}

    def tap(captured: CapturedFrame) -> None:
        frame = captured.frame
        if frame.cluster_id != 0x0019 or frame.src_eui64 != rig.hub.eui or "cut" in state:
            return
        msg = decode_command(0x0019, frame.payload)
        if isinstance(msg.command, ImageBlockResponse):
            state["blocks"] = state.get("blocks", 0) + 1
            if state["blocks"] == cut_after:  # this block is on air as the power dies
                node.power_off()
                state["cut"] = node.ota.download.offset

    rig.medium.add_tap(tap)

    async def scenario() -> None:
        assert (await node.join(rig.hub.trust_center)).accepted
        first = await node.update_firmware()  # the Image Notify path is tested below
        del first

    with pytest.raises(PowerLost):  # the procedure dies with the power
        rig.run(scenario())
    saved = state["cut"]
    assert saved == (cut_after - 1) * DEFAULT_MAX_DATA_SIZE  # the block in flight never landed
    assert node.ota.download is not None and node.ota.download.offset == saved
    assert firmware.slots(node.device).staged_hash is None

    async def later() -> None:
        await rig.clock.sleep(180)  # a three-minute outage, in virtual time
        node.power_on()
        await rig.clock.run_until_idle(max_seconds=600)

    rig.run(later())
    result = node.ota.results[-1]
    assert result.outcome is OtaOutcome.COMPLETE and result.resumed_from == saved
    requests = node.ota.block_requests
    resume_at = requests.index(saved, cut_after)  # the first request after power-on ...
    assert requests[resume_at - 1] == saved and resume_at == cut_after  # ... repeats only it
    assert 0 not in requests[cut_after:]  # never restarted from the beginning
    assert firmware.slots(node.device).staged_hash == hashlib.sha256(IMAGE).digest()
    progress = rig.hub.ota.progress[(PPMID, NEW_VERSION)]
    assert progress.blocks == math.ceil(len(data) / DEFAULT_MAX_DATA_SIZE) + 1  # one lost


def test_image_notify_starts_the_download() -> None:
    rig = HanRig()
    node = rig.add(PPMID, Ppmid)
    image = rig.hub.ota.add_image(_ota_file(), targets={PPMID})

    async def scenario() -> None:
        assert (await node.join(rig.hub.trust_center)).accepted
        await rig.hub.ota.notify(PPMID, image)
        await rig.clock.run_until_idle(max_seconds=600)

    rig.run(scenario())
    assert [r.outcome for r in node.ota.results] == [OtaOutcome.COMPLETE]
    assert [e.kind for e in node.ota.events][:1] == ["notified"]


def test_no_image_for_other_targets_or_the_running_version() -> None:
    rig = HanRig()
    node = rig.add(PPMID, Ppmid)
    rig.hub.ota.add_image(_ota_file(), targets={bytes(8)})

    async def scenario() -> Any:
        assert (await node.join(rig.hub.trust_center)).accepted
        first = await node.update_firmware()
        rig.hub.ota.add_image(
            build_ota_file(
                IMAGE,
                manufacturer_code=DEFAULT_MANUFACTURER_CODE,
                image_type=DEFAULT_IMAGE_TYPE,
                file_version=0x01000000,  # what it runs
            )
        )
        return first, await node.update_firmware()

    first, second = rig.run(scenario())
    assert first.outcome is OtaOutcome.NO_IMAGE and second.outcome is OtaOutcome.NO_IMAGE
    assert node.ota.block_requests == []


def test_server_abort_discards_the_partial_image() -> None:
    rig = HanRig()
    node = rig.add(PPMID, Ppmid)
    rig.hub.ota.add_image(_ota_file())
    aborted: list[int] = []

    def tap(captured: CapturedFrame) -> None:
        if captured.frame.cluster_id == 0x0019 and captured.frame.src_eui64 == PPMID:
            aborted.append(1)
            if len(aborted) == 4:
                rig.hub.ota.images.clear()  # the DCC withdrew the image mid-transfer

    rig.medium.add_tap(tap)

    async def scenario() -> Any:
        assert (await node.join(rig.hub.trust_center)).accepted
        return await node.update_firmware()

    result = rig.run(scenario())
    assert result.outcome is OtaOutcome.ABORTED
    assert node.ota.download is None and firmware.slots(node.device).staged_hash is None


def test_wait_for_data_paces_the_client_on_the_clock() -> None:
    rig = HanRig(ota_minimum_block_period_ms=2000)
    node = rig.add(PPMID, Ppmid)
    data = _ota_file()
    rig.hub.ota.add_image(data)

    async def scenario() -> tuple[Any, float]:
        assert (await node.join(rig.hub.trust_center)).accepted
        start = rig.clock.monotonic()
        result = await node.update_firmware()
        return result, rig.clock.monotonic() - start

    result, took = rig.run(scenario())
    blocks = math.ceil(len(data) / DEFAULT_MAX_DATA_SIZE)
    assert result.outcome is OtaOutcome.COMPLETE
    assert took >= 2.0 * (blocks - 1)  # virtual seconds; the test itself takes milliseconds
    assert any(e.kind == "block-wait" for e in rig.hub.ota.events)


def test_lossy_link_retries_blocks_and_still_completes() -> None:
    rig = HanRig(seed=3)
    node = rig.add(PPMID, Ppmid)
    rig.hub.ota.add_image(_ota_file())

    async def scenario() -> Any:
        assert (await node.join(rig.hub.trust_center)).accepted
        rig.medium.set_link(rig.hub.eui, PPMID, LinkQuality(loss=0.15))
        return await node.update_firmware()

    result = rig.run(scenario())
    assert result.outcome is OtaOutcome.COMPLETE
    assert rig.medium.counters(rig.hub.eui).lost > 0  # the retries were needed
    assert firmware.slots(node.device).staged_hash == hashlib.sha256(IMAGE).digest()
