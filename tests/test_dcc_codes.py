"""The DCC's generic response codes against the catalogue, the XSD, the code paths and
docs/dcc.md: every code a User may meet is catalogued, and every code no path produces
says why in the docs (the audit of issue 5)."""

from __future__ import annotations

import re
from types import ModuleType

import pytest

from gbhil.dcc import cpl, processing, transform
from gbhil.dcc.inventory import CONDITIONS
from gbhil.duis import codes
from gbhil.duis.schema import DuisSchema, load_schema
from gbhil.firmware import distribution
from tests.conftest import CONFORMANCE, ROOT

#: The codes the issue audits (seed 003 table).
AUDITED = frozenset({
    "I0", "I99", "E1", "E2", "E3", "E4", "E5", "E11", "E12", "E13", "E17", "E19", "E20",
    "E21", "E30", "E31", *(f"E{n}" for n in range(40, 56)), "E57", "E100",
})
#: Codes no gbhil code path produces, each with its reason in docs/dcc.md.
NOT_PRODUCED = frozenset({"E46"})
_CODE = re.compile(r"I0|I99|E\d{1,4}|[EW]\d{6}")
DCC_DOC = ROOT / "docs" / "dcc.md"


@pytest.fixture(scope="module")
def schema() -> DuisSchema:
    folder = CONFORMANCE / "duis" / "schema"
    if not folder.is_dir():
        pytest.skip(f"DUIS schema not found under {folder} (../shared)")
    return load_schema(folder=folder)


def _module_codes(*modules: ModuleType) -> set[str]:
    """Response codes held by the modules' constants (the codes their paths answer with)."""
    found: set[str] = set()
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, str) and _CODE.fullmatch(value):
                found.add(value)
    return found


def _producible() -> set[str]:
    return (_module_codes(processing, transform, cpl, distribution)
            | {c.code for c in CONDITIONS.values()} | {codes.SUCCESS, codes.ACKNOWLEDGED})


def _doc_rows() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in DCC_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and _CODE.fullmatch(cells[0]):
            rows[cells[0]] = cells[1]
    return rows


def test_audited_codes_are_catalogued_and_enumerated(schema: DuisSchema) -> None:
    allowed = set(schema.enumeration("ResponseCode"))
    assert allowed >= AUDITED
    for code in AUDITED:
        assert codes.response_code(code).name


def test_exactly_the_documented_codes_have_no_code_path() -> None:
    assert AUDITED - _producible() == NOT_PRODUCED


def test_every_audited_code_has_a_row_in_docs_dcc_md() -> None:
    rows = _doc_rows()
    assert set(rows) >= AUDITED, sorted(AUDITED - set(rows))
    for code in NOT_PRODUCED:
        assert re.search(r"not produced|cannot apply", rows[code]), (code, rows[code])
    for code in AUDITED - NOT_PRODUCED:
        assert "not produced" not in rows[code] and "cannot apply" not in rows[code], code


def test_e50_is_the_local_command_code_of_seed_003() -> None:
    entry = codes.response_code(processing.LOCAL_COMMAND_NOT_RETURNED)
    assert entry.code == "E50"
    assert entry.name == "Local Command Services Not Returned"
    assert entry.in_acknowledgement and not entry.in_dcc_alert


def test_w110101_is_catalogued_and_used_by_update_firmware(schema: DuisSchema) -> None:
    entry = codes.response_code("W110101")
    assert (entry.service_reference, entry.source, entry.kind) == (
        "11.1", "004", codes.CodeKind.WARNING)
    assert "Lead Supplier" in entry.condition and "SMETS2 PPMID" in entry.condition
    assert distribution.UPDATE_FIRMWARE_WARNING == codes.UPDATE_FIRMWARE_WARNING == "W110101"
    assert "W110101" in set(schema.enumeration("ResponseCode"))


def test_stand_ins_stay_while_the_seeds_give_no_real_code() -> None:
    """docs/dcc.md's stand-ins (E11 for MAP ID, E081301-03 for 8.13): the seeds still have
    no real code (SECMP0011's is [TBC]; 8.13's changes list SRVs only)."""
    assert codes.MAPID_NOT_APPLICABLE is None
    assert {codes.lookup(c) for c in ("E081301", "E081302", "E081303")} == {None}
    assert set(processing.LOCAL_RESPONSE_CODES.values()) == {"E081301", "E081302", "E081303"}
