"""Matching a future-dated outcome alert to its command (gbhil.dcc.future_dated), on the
RTDS bytes: what the DCC's E30 watch relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbhil.dcc.future_dated import COUNTER_BEARING_ALERTS, executed_counter
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.message import decode_message
from tests.conftest import CONFORMANCE

RTDS = CONFORMANCE / "rtds-4.5.0"
needs_rtds = pytest.mark.skipif(not RTDS.is_dir(), reason=f"RTDS messages not found at {RTDS}")


def _hex(path: Path) -> bytes:
    return bytes.fromhex("".join(path.read_text().split()))


def _alerts() -> list[Path]:
    return sorted(RTDS.rglob("*_8F6[67]_*ALERT*_GBCS.HEX")) if RTDS.is_dir() else []


@needs_rtds
def test_every_rtds_outcome_alert_names_its_command_or_is_known_not_to() -> None:
    found: dict[int, set[int | None]] = {}
    for path in _alerts():
        msg = decode_message(_hex(path))
        found.setdefault(msg.frame.gs.message_code, set()).add(executed_counter(msg))
    assert set(found) >= COUNTER_BEARING_ALERTS, "DLMS, GBZ and CS06 alerts are all in RTDS"
    for code in COUNTER_BEARING_ALERTS:
        assert None not in found[code], f"0x{code:04X} alerts carry the counter"
    assert found[0x00CB] == {None} and found[0x0124] == {None}, "credentials alerts do not"


@needs_rtds
@pytest.mark.parametrize("outcome", ["SUCCESS", "ERROR"])
def test_cs06_alert_counter_is_the_future_dated_commands_counter(outcome: str) -> None:
    """RTDS 11.3: the 8F66 alert names counter 1001 of the success command, the 8F67
    alert counter 1004 of the error command (each alert's own header counter differs)."""
    folder = RTDS / "11.3_CS06"
    command = decode_message(_hex(folder / f"CS06_11.3_FUTURE_DATED_{outcome}_COMMAND_GBCS.HEX"))
    code = "8F66" if outcome == "SUCCESS" else "8F67"
    [alert_file] = folder.glob(f"CS06_11.3_{code}_FUTURE_DATED_*_ALERT_GBCS.HEX")
    alert = decode_message(_hex(alert_file))
    assert executed_counter(alert) == command.frame.gs.originator_counter
    assert alert.frame.gs.originator_counter != command.frame.gs.originator_counter


@needs_rtds
def test_commands_and_responses_name_no_executed_command() -> None:
    folder = RTDS / "11.3_CS06"
    for name in ("FUTURE_DATED_SUCCESS_COMMAND", "FUTURE_DATED_SUCCESS_RESPONSE"):
        assert executed_counter(decode_message(_hex(folder / f"CS06_11.3_{name}_GBCS.HEX"))) is None


@needs_rtds
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_alerts_never_crash_the_match(data: st.DataObject) -> None:
    alerts = _alerts()
    raw = bytearray(_hex(data.draw(st.sampled_from(alerts))))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        msg = decode_message(bytes(raw))
    except GbcsError:
        return
    executed_counter(msg)  # an int or None for any decodable message; it must not raise
