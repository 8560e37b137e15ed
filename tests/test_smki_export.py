"""``gbhil smki export``: the rig's PKI as an RTDS key folder that outside tools read."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gbhil.cli import main
from gbhil.devices.trust import Role
from gbhil.gbcs.axdr import NullData
from gbhil.gbcs.dlms import (
    AccessRequest,
    RequestKind,
    RequestSpec,
    encode_dlms,
    gbcs_invoke_id,
    parse_obis,
)
from gbhil.gbcs.frame import Cra, GeneralSigning, OtherInformation
from gbhil.gbcs.security import protect
from gbhil.gbcs.usecases import BY_USE_CASE
from gbhil.rigs.simulated import DEVICES, PARTIES, SimulatedRig, rig_keystore
from gbhil.smki import KeyStore, Slot
from gbhil.smki.export import export_rtds, rig_pki

REPO = Path(__file__).resolve().parent.parent
ESME = DEVICES["esme"][0]
SUPPLIER = PARTIES[Role.SUPPLIER]


def _point(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rtds")
    assert main(["smki", "export", str(out)]) == 0
    return out


def test_export_reloads_the_same_keys(exported: Path) -> None:
    original = rig_keystore(1)
    loaded = KeyStore.from_rtds_folder(exported)
    assert loaded.euis() == original.euis()
    for eui in original.euis():
        for slot in Slot:
            want = original.public_key(eui, slot)
            got = loaded.public_key(eui, slot)
            assert (want is None) == (got is None), (eui.hex(), slot)
            if want is not None:
                assert _point(got) == _point(want)
                assert loaded.certificate(eui, slot) == original.certificate(eui, slot)
    # organisations carry their private keys, devices do not
    for eui in PARTIES.values():
        assert loaded.ds_private(eui) is not None and loaded.ka_private(eui) is not None
    for eui, _ in DEVICES.values():
        assert loaded.ds_private(eui) is None and loaded.ka_private(eui) is None


def test_export_file_names_and_modes(exported: Path) -> None:
    names = {p.name for p in exported.iterdir()}
    assert f"{ESME.hex()}-ds.pem" in names and f"{ESME.hex()}-ka.pem" in names
    assert f"{SUPPLIER.hex()}-pp-ka.pem" in names and f"{SUPPLIER.hex()}-pp-ka.key" in names
    assert not any(n.startswith("00db") and n.endswith(".key") for n in names)
    for path in exported.glob("*.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    for path in exported.glob("*.pem"):
        assert path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def _ecs52(counter: int, *, signed: bool) -> bytes:
    rig = SimulatedRig.build(seed=1)
    code = BY_USE_CASE["ECS52"][0].code
    read = AccessRequest(
        gbcs_invoke_id(counter),
        (RequestSpec(RequestKind.GET, 1, parse_obis("0-0:0.2.1.255"), 2),),
        (NullData(),),
    )
    gs = GeneralSigning(
        Cra.COMMAND, counter, SUPPLIER, ESME, OtherInformation(code), encode_dlms(read)
    )
    return protect(rig.dcc, gs, signed=signed, maced=True).encode()


@pytest.mark.parametrize("signed", [False, True])
def test_rig_message_verifies_with_export(
    exported: Path, signed: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _ecs52(0x1000_0000_0000_0001, signed=signed)
    capsys.readouterr()
    assert main(["gbcs", "decode", raw.hex(), "--keystore", str(exported), "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["security"]["mac"] == "verified"
    if signed:
        assert view["security"]["signature"] == "verified"


def test_tampered_message_fails_with_export(exported: Path) -> None:
    raw = bytearray(_ecs52(0x1000_0000_0000_0002, signed=False))
    raw[-13] ^= 1  # inside the MACed payload
    assert main(["gbcs", "decode", bytes(raw).hex(), "--keystore", str(exported)]) == 1


def test_device_keys_on_request_and_rig_file(tmp_path: Path) -> None:
    out = tmp_path / "all"
    rig = REPO / "rigs" / "simulated.toml"
    assert main(["smki", "export", str(out), "--rig", str(rig), "--with-device-keys"]) == 0
    loaded = KeyStore.from_rtds_folder(out)
    assert loaded.ka_private(ESME) is not None
    assert _point(loaded.ds_public(ESME)) == _point(rig_keystore(1).ds_public(ESME))
    # refuses to overwrite; --force re-exports without the device keys
    assert main(["smki", "export", str(out), "--rig", str(rig)]) == 2
    assert main(["smki", "export", str(out), "--force"]) == 0
    assert KeyStore.from_rtds_folder(out).ka_private(ESME) is None


def test_seed_changes_the_pki(tmp_path: Path) -> None:
    one, two = rig_pki(seed=1), rig_pki(seed=2)
    assert _point(one.ds_public(ESME)) != _point(two.ds_public(ESME))
    result = export_rtds(two, tmp_path)
    assert result.skipped_device_keys == 2 * len(DEVICES)
    assert _point(KeyStore.from_rtds_folder(tmp_path).ds_public(ESME)) == _point(
        two.ds_public(ESME)
    )
