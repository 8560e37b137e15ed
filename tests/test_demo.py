"""The README's main job must keep working on a fresh machine (no ../shared needed)."""

from __future__ import annotations

import io

from gbhil.cli import main
from gbhil.demo import run_demo


def test_demo_passes_and_reports() -> None:
    out = io.StringIO()
    assert run_demo(3, out) == 0
    text = out.getvalue()
    assert "MAC verified, signature verified" in text
    assert "reassembled: True" in text
    assert "all checks passed" in text


def test_demo_via_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--seed", "5", "--pcap", str(tmp_path / "han.pcap")]) == 0
    assert (tmp_path / "han.pcap").stat().st_size > 100
