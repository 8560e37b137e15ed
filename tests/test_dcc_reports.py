"""gbhil.dcc.reports: RSMI_001 with MAP ID (seed 000) and the H17 MAP / Manufacturer report
(seed 003), as rows, CSV and JSON, on a small SMI."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gbhil.dcc.inventory import (
    MAP_ID_UNKNOWN,
    AssociationKind,
    DeviceStatus,
    DeviceType,
    Inventory,
    NewDevice,
)
from gbhil.dcc.reports import (
    H17_COLUMNS,
    NOT_DEFINED,
    RSMI_001_COLUMNS,
    ReportNotDefined,
    map_manufacturer_report,
    report,
    rsmi_001,
    to_csv,
    to_json,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SUPPLIER = "90-B3-D5-1F-30-01-00-00"
GAS_SUPPLIER = "90-B3-D5-1F-30-02-00-00"
EXPORTER = "90-B3-D5-1F-30-04-00-00"
ESME1, ESME2, ESME_OLD, GSME1, GSME_OTHER = (f"00-DB-12-34-56-78-90-{x}"
                                              for x in ("A0", "A1", "A2", "A3", "A4"))
CHF, GPF, PPMID, LONE_CHF = (f"00-DB-12-34-56-78-90-{x}" for x in ("B0", "B1", "B2", "B3"))
SEEDS = Path(__file__).resolve().parent.parent.parent / "shared" / "seeds"


@pytest.fixture
def smi() -> Iterator[Inventory]:
    """Two manufacturers of meters (Acme, Bolt), MAPs 'M1' and 'M2', one 'UKN' meter,
    a comms hub made by Hubco, and non-meter Devices that no meter report may list."""
    inv = Inventory(now=lambda: NOW)
    add = inv.add_device
    add(NewDevice(ESME1, DeviceType.ESME, "Acme", "E-100", "1", "01000000", map_id="M1"),
        status=DeviceStatus.COMMISSIONED)
    add(NewDevice(ESME2, DeviceType.ESME, "Bolt", "B-7", "1", "02000000", map_id="M1"),
        status=DeviceStatus.INSTALLED_NOT_COMMISSIONED)
    add(NewDevice(ESME_OLD, DeviceType.ESME, "Acme", "E-90", "1", "00900000"),
        status=DeviceStatus.COMMISSIONED)                       # pre-SECMP0011: 'UKN'
    add(NewDevice(GSME1, DeviceType.GSME, "Bolt", "G-1", "1", "03000000", map_id="M2"),
        status=DeviceStatus.COMMISSIONED)
    add(NewDevice(GSME_OTHER, DeviceType.GSME, "Gasco", "G-9", "1", "04000000", map_id="M3"),
        status=DeviceStatus.WHITELISTED)
    add(NewDevice(CHF, DeviceType.CHF, "Hubco", "CH-1", "1", "0A000000"),
        status=DeviceStatus.COMMISSIONED)
    add(NewDevice(GPF, DeviceType.GPF, "Hubco", "CH-1", "1", "0A000000"),
        status=DeviceStatus.COMMISSIONED)
    add(NewDevice(PPMID, DeviceType.PPMID, "Acme", "P-1", "1", "01000000"),
        status=DeviceStatus.COMMISSIONED)
    add(NewDevice(LONE_CHF, DeviceType.CHF, "Acme", "CH-2", "1", "0B000000"),
        status=DeviceStatus.WHITELISTED)
    inv.associate(CHF, GPF, AssociationKind.GAS_PROXY)
    inv.associate(ESME1, CHF, AssociationKind.COMMS_HUB)
    inv.associate(GSME1, CHF, AssociationKind.COMMS_HUB)
    inv.associate(PPMID, ESME1, AssociationKind.JOINED)
    inv.set_premises(CHF, csp_region="North")
    inv.set_premises(ESME2, csp_region="South")
    inv.set_mpxn(ESME1, import_mpxn="1234567890123")
    for meter in (ESME1, ESME2, ESME_OLD):
        inv.set_party(meter, "IS", SUPPLIER)
    inv.set_party(ESME1, "ES", EXPORTER)
    inv.set_party(GSME1, "GS", GAS_SUPPLIER)
    inv.set_party(GSME_OTHER, "GS", GAS_SUPPLIER)
    yield inv
    inv.close()


def ids(rows: list[dict[str, str | None]], column: str) -> list[str | None]:
    return [r[column] for r in rows]


# --- RSMI_001 ------------------------------------------------------------------------------------


def test_rsmi_001_columns_and_map_id(smi: Inventory) -> None:
    rows = rsmi_001(smi, SUPPLIER)
    assert all(tuple(r) == RSMI_001_COLUMNS for r in rows)
    assert "MAP ID" in RSMI_001_COLUMNS
    assert [(r["Device ID"], r["MAP ID"]) for r in rows] == [
        (ESME1, "M1"), (ESME2, "M1"), (ESME_OLD, MAP_ID_UNKNOWN)]
    first = rows[0]
    assert first["Device Type"] == "ESME"
    assert first["SMI Status"] == "Commissioned"
    assert first["SMI Status Date"] == NOW.isoformat()
    assert first["MPAN/MPRN"] == "1234567890123"
    assert rows[1]["MPAN/MPRN"] is None


def test_rsmi_001_is_the_inventory_helper(smi: Inventory) -> None:
    """Reuses Inventory.installation_status_report: same meters, same order."""
    for user in (SUPPLIER, GAS_SUPPLIER, EXPORTER):
        assert ids(rsmi_001(smi, user), "Device ID") == [
            r.device_id for r in smi.installation_status_report(user)]


def test_rsmi_001_filters_by_user_and_meters_only(smi: Inventory) -> None:
    assert ids(rsmi_001(smi, GAS_SUPPLIER), "Device ID") == [GSME1, GSME_OTHER]
    assert ids(rsmi_001(smi, "90-B3-D5-1F-30-09-00-00"), "Device ID") == []
    every = {r["Device Type"] for u in (SUPPLIER, GAS_SUPPLIER) for r in rsmi_001(smi, u)}
    assert every == {"ESME", "GSME"}


# --- H17 -----------------------------------------------------------------------------------------


def test_h17_columns_follow_seed_003(smi: Inventory) -> None:
    rows = map_manufacturer_report(smi, manufacturer="Acme")
    assert all(tuple(r) == H17_COLUMNS for r in rows)
    assert len(H17_COLUMNS) == len(set(H17_COLUMNS))


def test_h17_manufacturer_gets_its_meters_including_ukn(smi: Inventory) -> None:
    rows = map_manufacturer_report(smi, manufacturer="Acme")
    # Acme's PPMID and CHF are not Smart Meters; the 'UKN' meter is still Acme's.
    assert ids(rows, "Smart Meter ID") == [ESME1, ESME_OLD]
    row = rows[0]
    assert row == {
        "Smart Meter ID": ESME1, "Smart Meter Type": "ESME", "Smart Meter Model": "E-100",
        "Manufacturer": "Acme", "Firmware Version": "01000000",
        "SMI Status": "Commissioned", "Region": "North",
        "Registered Supplier(s)": f"{SUPPLIER};{EXPORTER}",
        "Registered Supplier Effective From Date(s)": None,
        "Communications Hub Make": "Hubco", "Communications Hub Model": "CH-1",
        "Communications Hub Firmware Version": "0A000000",
    }
    old = rows[1]
    assert old["Region"] is None and old["Communications Hub Make"] is None
    assert old["Registered Supplier(s)"] == SUPPLIER


def test_h17_map_gets_its_meters_across_manufacturers(smi: Inventory) -> None:
    rows = map_manufacturer_report(smi, map_id="M1")
    assert ids(rows, "Smart Meter ID") == [ESME1, ESME2]
    assert ids(rows, "Manufacturer") == ["Acme", "Bolt"]
    assert rows[1]["Region"] == "South"                 # the meter's own region
    assert ids(map_manufacturer_report(smi, map_id="M2"), "Smart Meter ID") == [GSME1]
    assert map_manufacturer_report(smi, map_id="ZZ9") == []


def test_h17_gsme_row(smi: Inventory) -> None:
    (row,) = map_manufacturer_report(smi, map_id="M2")
    assert row["Smart Meter Type"] == "GSME"
    assert row["Registered Supplier(s)"] == GAS_SUPPLIER
    assert row["Region"] == "North"                     # from its comms hub
    assert row["Communications Hub Make"] == "Hubco"


def test_h17_manufacturer_and_map_is_the_union(smi: Inventory) -> None:
    rows = map_manufacturer_report(smi, manufacturer="Gasco", map_id="M2")
    assert ids(rows, "Smart Meter ID") == [GSME1, GSME_OTHER]


def test_h17_matches_manufacturer_exactly(smi: Inventory) -> None:
    assert map_manufacturer_report(smi, manufacturer="acme") == []
    assert map_manufacturer_report(smi, manufacturer="Hubco") == []   # hubs are not meters


@pytest.mark.parametrize("kwargs", [{}, {"map_id": MAP_ID_UNKNOWN}, {"map_id": "TOOLONG"},
                                    {"map_id": ""}, {"manufacturer": ""}])
def test_h17_refuses_bad_recipients(smi: Inventory, kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        map_manufacturer_report(smi, **kwargs)


# --- not defined / by name -----------------------------------------------------------------------


def test_undefined_reports_are_listed_with_reasons(smi: Inventory) -> None:
    assert sorted(NOT_DEFINED) == [f"RSMI_00{n}" for n in range(2, 8)]
    for name, reason in NOT_DEFINED.items():
        with pytest.raises(ReportNotDefined, match=name):
            report(name, smi, SUPPLIER)
        assert reason
    assert report("RSMI_001", smi, SUPPLIER) == rsmi_001(smi, SUPPLIER)
    assert report("H17", smi, map_id="M1") == map_manufacturer_report(smi, map_id="M1")
    with pytest.raises(KeyError):
        report("RSMI_999", smi)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="seeds not found (checkout ../shared)")
def test_seed_texts_name_what_is_implemented() -> None:
    seed000 = next(SEEDS.glob("000_*")).read_text()
    seed003 = " ".join(next(SEEDS.glob("003_*")).read_text().split())
    for code in ("RSMI_001", "RSMI_002", "RSMI_003", "RSMI_004", "RSMI_005", "RSMI_007"):
        assert code in seed000
    assert "RSMI_006" not in seed000
    for item in ("Smart Meter ID or Global Unique Identifier (GUID)",
                 "Smart Meter Type, Smart Meter Model and Manufacturer", "firmware version",
                 "SMI Status", "Region", "the Registered Supplier(s) and its/their effective "
                 "from date(s)", "Communications Hub make, model and firmware version"):
        assert item in seed003


# --- CSV / JSON ----------------------------------------------------------------------------------


def test_csv_round_trip(smi: Inventory) -> None:
    rows = map_manufacturer_report(smi, manufacturer="Acme")
    text = to_csv(rows)
    assert text.startswith(",".join(f'"{c}"' if "," in c else c for c in H17_COLUMNS))
    assert "\r\n" in text
    back = list(csv.DictReader(io.StringIO(text)))
    assert [list(r) for r in back] == [list(H17_COLUMNS)] * 2
    assert back[0]["Registered Supplier(s)"] == f"{SUPPLIER};{EXPORTER}"
    assert back[1]["Region"] == ""                      # None is an empty field


def test_csv_quotes_and_empty(smi: Inventory) -> None:
    rows = [{"a": 'x,"y"', "b": None}]
    assert to_csv(rows) == 'a,b\r\n"x,""y""",\r\n'
    assert to_csv([]) == ""
    assert to_csv([], RSMI_001_COLUMNS) == ",".join(RSMI_001_COLUMNS) + "\r\n"
    assert to_csv(rsmi_001(smi, GAS_SUPPLIER)).splitlines()[0] == ",".join(RSMI_001_COLUMNS)


def test_json_round_trip(smi: Inventory) -> None:
    rows = rsmi_001(smi, SUPPLIER)
    back = json.loads(to_json(rows))
    assert back == rows
    assert [list(r) for r in back] == [list(RSMI_001_COLUMNS)] * len(rows)
    assert back[1]["MPAN/MPRN"] is None
    assert back[2]["MAP ID"] == "UKN"
    assert json.loads(to_json([])) == []
