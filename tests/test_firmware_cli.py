"""``gbhil firmware build|sign|verify``: files, messages and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gbhil.cli import main
from gbhil.cli_firmware import EXIT_BAD_INPUT, EXIT_MALFORMED, EXIT_NOT_VERIFIED, EXIT_OK
from gbhil.firmware import FirmwareManifest, decode_image, image_hash

PAYLOAD = b"gbhil manufacturer image " * 40
VERSION = "01000300"


def _pem_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _pem_public(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def _build(tmp: Path, *extra: str) -> int:
    (tmp / "payload.bin").write_bytes(PAYLOAD)
    return main(["firmware", "build", str(tmp / "payload.bin"), "-o", str(tmp / "img.ota"),
                 "--version", VERSION, "--manufacturer-code", "0x121D", "--device-type", "ESME",
                 "--manufacturer", "gbhil", "--model", "GBHIL-ESME", "--hardware-version",
                 "1.0", "--gbcs", "4.0", *extra])


@pytest.fixture()
def supplier() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(0xC0FFEE, ec.SECP256R1())


def test_build_writes_a_signed_image_and_its_manifest(
    tmp_path: Path, supplier: ec.EllipticCurvePrivateKey, capsys: pytest.CaptureFixture[str],
) -> None:
    key = _pem_key(tmp_path / "supplier.key", supplier)

    assert _build(tmp_path, "--key", str(key)) == EXIT_OK

    data = (tmp_path / "img.ota").read_bytes()
    manifest = FirmwareManifest.loads((tmp_path / "img.ota.manifest.json").read_text())
    assert decode_image(data, signed=True).manufacturer_image == PAYLOAD
    assert manifest.image_hash == image_hash(PAYLOAD) and manifest.image_size == len(data)
    out = capsys.readouterr().out
    assert image_hash(PAYLOAD).hex().upper() in out
    assert "PRIVATE KEY" not in out


def test_verify_prints_the_cpl_entry_for_a_good_image(
    tmp_path: Path, supplier: ec.EllipticCurvePrivateKey, capsys: pytest.CaptureFixture[str],
) -> None:
    _build(tmp_path, "--key", str(_pem_key(tmp_path / "k.pem", supplier)))
    capsys.readouterr()

    code = main(["firmware", "verify", str(tmp_path / "img.ota"), "--manifest",
                 str(tmp_path / "img.ota.manifest.json"), "--cert",
                 str(_pem_public(tmp_path / "pub.pem", supplier)), "--json"])

    report = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK and report["valid"] is True
    assert report["signature"] == "verified"
    assert report["cpl_entry"]["firmware_version"] == VERSION
    assert report["cpl_entry"]["firmware_hash"] == image_hash(PAYLOAD).hex().upper()


def test_verify_with_another_key_exits_1(
    tmp_path: Path, supplier: ec.EllipticCurvePrivateKey, capsys: pytest.CaptureFixture[str],
) -> None:
    _build(tmp_path, "--key", str(_pem_key(tmp_path / "k.pem", supplier)))
    other = ec.derive_private_key(0xBEEF, ec.SECP256R1())

    code = main(["firmware", "verify", str(tmp_path / "img.ota"), "--cert",
                 str(_pem_public(tmp_path / "other.pem", other))])

    assert code == EXIT_NOT_VERIFIED
    assert "signature does not verify" in capsys.readouterr().out


def test_verify_a_truncated_image_exits_3_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _build(tmp_path, "--rig-seed", "1")
    data = (tmp_path / "img.ota").read_bytes()
    (tmp_path / "cut.ota").write_bytes(data[:-10])

    code = main(["firmware", "verify", str(tmp_path / "cut.ota"), "--rig-seed", "1"])

    assert code == EXIT_MALFORMED
    assert "total image size at byte 52" in capsys.readouterr().err


def test_sign_then_verify_an_unsigned_build(
    tmp_path: Path, supplier: ec.EllipticCurvePrivateKey,
) -> None:
    assert _build(tmp_path, "--unsigned") == EXIT_OK
    key = _pem_key(tmp_path / "k.pem", supplier)
    manifest = tmp_path / "img.ota.manifest.json"

    assert main(["firmware", "sign", str(tmp_path / "img.ota"), "-o",
                 str(tmp_path / "signed.ota"), "--key", str(key), "--manifest",
                 str(manifest)]) == EXIT_OK

    assert main(["firmware", "verify", str(tmp_path / "signed.ota"), "--manifest",
                 str(manifest), "--cert",
                 str(_pem_public(tmp_path / "pub.pem", supplier))]) == EXIT_OK
    assert FirmwareManifest.loads(manifest.read_text()).signed is True


def test_unreadable_inputs_exit_4_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _build(tmp_path) == EXIT_BAD_INPUT  # signed by default: needs a key
    assert "needs --key" in capsys.readouterr().err
    (tmp_path / "bad.pem").write_text("not a key")
    assert _build(tmp_path, "--key", str(tmp_path / "bad.pem")) == EXIT_BAD_INPUT
    assert "not a readable PEM private key" in capsys.readouterr().err
    assert main(["firmware", "verify", str(tmp_path / "missing.ota")]) == EXIT_BAD_INPUT
    assert not (tmp_path / "img.ota").exists(), "nothing written on failure"


def test_a_bad_version_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "payload.bin").write_bytes(PAYLOAD)
    code = main(["firmware", "build", str(tmp_path / "payload.bin"), "-o",
                 str(tmp_path / "img.ota"), "--version", "1.0.0", "--manufacturer-code",
                 "0x121D", "--device-type", "ESME", "--manufacturer", "gbhil", "--model", "M",
                 "--unsigned"])

    assert code == EXIT_BAD_INPUT
    assert "8 hex digits" in capsys.readouterr().err
    assert not (tmp_path / "img.ota").exists()
