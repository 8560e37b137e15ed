"""The issue's acceptance on real DCC data, through the same code as the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gbhil.cli import main
from gbhil.corpus import verify_corpus
from gbhil.gbcs.frame import gs_span
from gbhil.gbcs.gbt import GbtReassembler, GbtSegment, segment
from gbhil.gbcs.message import decode_message, inspect_message
from gbhil.gbcs.security import Check, SecurityContext
from gbhil.smki import KeyStore
from tests.conftest import rtds_files


@pytest.fixture(scope="module")
def report(rtds_dir: Path, rtds_keystore_dir: Path):  # type: ignore[no-untyped-def]
    return verify_corpus(rtds_dir, SecurityContext(KeyStore.from_rtds_folder(rtds_keystore_dir)))


def test_every_message_decodes_verifies_and_reencodes(report, rtds_dir: Path) -> None:  # type: ignore[no-untyped-def]
    total = report.totals()
    n = len(rtds_files(rtds_dir))
    assert report.failures == []
    assert total["files"] == total["decoded"] == total["reencoded_exact"] == n
    assert total["mac_failed"] == total["signature_failed"] == 0
    # Only PCS02's command and response (PPMID <-> GSME, device keys on both ends) lack keys.
    assert total["mac_not_checkable"] == 2
    assert total["signature_not_checkable"] == 0
    assert total["payloads_encrypted"] == total["payloads_decrypted"] > 40
    assert report.counts["PRECOMMAND"]["mac_verified"] == 0
    # The CS01b success UTRN verifies with the prepayment key; the error case's is bogus.
    assert report.counts["COMMAND"]["utrn_valid"] == 1
    assert report.counts["COMMAND"]["utrn_invalid"] == 1


def test_payload_fields_are_typed(rtds_dir: Path) -> None:
    """Spot checks that payloads decode down to named fields, not opaque bytes."""
    raw = bytes.fromhex(next(rtds_dir.glob("4.1.1_ECS17b/*_COMMAND_GBCS.HEX")).read_text())
    view = inspect_message(raw).to_json()
    assert view["payloadFamily"] == "DLMS"
    assert view["header"]["useCase"] == "ECS17b"
    text = json.dumps(view["payload"])
    assert "classId" in text or "class" in text


def test_gbt_segments_of_real_messages_reassemble(rtds_dir: Path) -> None:
    for path in rtds_files(rtds_dir)[::25]:
        raw = bytes.fromhex(path.read_text())
        if raw[0] != 0xDD:
            continue
        for size in (61, 200):
            segs = segment(raw, size)
            r = GbtReassembler()
            out = None
            for seg in reversed(segs):  # out of order on purpose
                out = r.feed(GbtSegment.decode(seg.encode())) or out
            assert out == raw
            assert decode_message(out).encode() == raw
            assert len(r) == 0


def test_cli_verify_corpus_json(rtds_dir: Path, rtds_keystore_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = main(
        ["gbcs", "verify-corpus", str(rtds_dir), "--keystore", str(rtds_keystore_dir), "--json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["ok"] is True and out["failures"] == []
    assert set(out["categories"]) == {"COMMAND", "PRECOMMAND", "RESPONSE", "ALERT"}
    assert out["categories"]["RESPONSE"]["payloads_decrypted"] > 0


def test_cli_verify_corpus_fails_on_a_tampered_message(
    rtds_dir: Path, rtds_keystore_dir: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    src = next(rtds_dir.glob("4.1.1_ECS17b/*_COMMAND_GBCS.HEX"))
    good = tmp_path / "x" / src.name
    good.parent.mkdir()
    shutil.copy(src, good)
    raw = bytearray(bytes.fromhex(src.read_text()))
    start, _ = gs_span(bytes(raw))
    raw[start + 10] ^= 0x01  # low byte of the originator counter: only the MAC can tell
    (tmp_path / "x" / "ECS17b_4.1.1_TAMPERED_COMMAND_GBCS.HEX").write_text(raw.hex().upper())
    (tmp_path / "x" / "ECS17b_4.1.1_CUT_RESPONSE_GBCS.HEX").write_text(src.read_text()[:50])
    rc = main(
        ["gbcs", "verify-corpus", str(tmp_path), "--keystore", str(rtds_keystore_dir), "--json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    files = {f["file"]: f for f in out["failures"]}
    assert len(files) == 2
    cut = next(f for name, f in files.items() if "CUT" in name)
    assert "at byte" in cut["reason"]
    assert out["categories"]["COMMAND"]["decoded"] == 2
    assert out["categories"]["COMMAND"]["mac_failed"] == 1
    assert files["x/ECS17b_4.1.1_TAMPERED_COMMAND_GBCS.HEX"]["field"] == "mac"


def test_cli_decode_text_and_json(rtds_dir: Path, rtds_keystore_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = next(rtds_dir.glob("4.1.1_ECS17b/*_RESPONSE_GBCS.HEX"))
    assert main(["gbcs", "decode", str(path), "--keystore", str(rtds_keystore_dir)]) == 0
    text = capsys.readouterr().out
    assert "mac: verified" in text and "ECS17b" in text
    hexarg = path.read_text().strip()
    assert main(["gbcs", "decode", hexarg, "--keystore", str(rtds_keystore_dir), "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["security"]["mac"] == "verified"
    assert all(d["ok"] for d in view["security"]["decryptions"])
    import base64

    b64 = base64.b64encode(bytes.fromhex(hexarg)).decode()
    assert main(["gbcs", "decode", b64, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["security"]["mac"] == Check.NOT_CHECKABLE.value


def test_cli_decode_reports_field_and_offset(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["gbcs", "decode", "DD00000000000047110000", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["field"] and out["offset"] >= 7
    assert main(["gbcs", "decode", "not hex at all!"]) == 2
    assert "neither hex nor base64" in capsys.readouterr().err
