"""SMI reports: the SSI report RSMI_001 with MAP ID (seed 000, SECMP0011) and the
MAP / Manufacturer report of SEC Section H17 (seed 003, MP260), as rows, CSV and JSON.

What the seeds define, and so what is implemented here:

* Seed 000 (req. 12) names six pre-defined SSI reports that gain a MAP ID field:
  RSMI_001, 002, 003, 004, 005 and 007. It gives their titles and the added "MAP ID"
  column, but no other columns. RSMI_001 is the one the SSI test step uses ("Users
  required to run new SSI report RSMI_001"). gbhil already builds it
  (:meth:`Inventory.installation_status_report`); :func:`rsmi_001` only renames its fields.
  The names of all columns except "MAP ID" are gbhil's choice, taken from the wording of
  the SEC definition of the SMI (Device ID, Device Type, SMI Status, MPAN or MPRN).
* The other RSMI reports are listed in :data:`NOT_DEFINED` with the reason. Their columns
  are not public, and RSMI_005/007 also need data the SMI does not hold. RSMI_006 is not
  named by the seed at all.
* Seed 003 H17.5 lists the minimum content of a MAP / Manufacturer report, one row per
  Smart Meter for which the recipient is the Manufacturer or the MAP. These are the
  columns of :func:`map_manufacturer_report`.

Every row is a plain ``dict[str, str | None]`` in column order, so :func:`to_csv` and
:func:`to_json` need no knowledge of the report.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from gbhil.dcc.inventory import (
    MAP_ID_UNKNOWN,
    SMART_METERS,
    AssociationKind,
    Device,
    DeviceType,
    Inventory,
    is_valid_map_id,
)

Row = dict[str, str | None]

# --- RSMI_001 (seed 000) -----------------------------------------------------------------------

#: RSMI_001 Installation Status Smart Meter Report. "MAP ID" is seed 000's. The other
#: column names are gbhil's, from the SEC SMI definition (seed 000 Section A).
RSMI_001_COLUMNS = (
    "Device ID",
    "Device Type",
    "SMI Status",
    "SMI Status Date",
    "MPAN/MPRN",
    "MAP ID",
)


class ReportNotDefined(LookupError):
    """The report's columns are not public (seeds 000/003), so gbhil does not invent them."""


def rsmi_001(inventory: Inventory, user_id: str) -> list[Row]:
    """RSMI_001 Installation Status Smart Meter Report, with MAP ID, for ``user_id``: the
    Smart Meters the User pre-notified (while Pending) or is Responsible Supplier of.
    ESME/GSME without a MAP ID show 'UKN' (seed 000 req. 5/6)."""
    return [
        dict(
            zip(
                RSMI_001_COLUMNS,
                (
                    r.device_id,
                    str(r.device_type),
                    _s(r.status),
                    None if r.status_since is None else r.status_since.isoformat(),
                    r.import_mpxn,
                    r.map_id,
                ),
                strict=True,
            )
        )
        for r in inventory.installation_status_report(user_id)
    ]


#: SSI reports seed 000 names (or skips) but whose columns no public seed defines.
NOT_DEFINED: Mapping[str, str] = MappingProxyType(
    {
        "RSMI_002": "Smart Metering Devices Status and Firmware Report: seed 000 gives the "
        "title and the MAP ID column only",
        "RSMI_003": "Smart Metering Devices Status and Model Report: seed 000 gives the title "
        "and the MAP ID column only",
        "RSMI_004": "Communications Hub with No Attached Devices Report: seed 000 gives the "
        "title and the MAP ID column only",
        "RSMI_005": "Scheduled Service Requests Report: seed 000 gives the title and the MAP "
        "ID column only, and schedules are not held in the SMI",
        "RSMI_006": "not named by seed 000 (not among the reports SECMP0011 amends); no public "
        "seed defines it",
        "RSMI_007": "Device Certificate Report: seed 000 gives the title and the MAP ID column "
        "only, and certificates are not held in the SMI",
    }
)

# --- MAP / Manufacturer report (seed 003, SEC H17) ---------------------------------------------

#: H17.5 (a)-(g), one column per item; (b), (f) and (g) are split into their parts.
H17_COLUMNS = (
    "Smart Meter ID",  # (a) Smart Meter ID or GUID
    "Smart Meter Type",  # (b)
    "Smart Meter Model",  # (b)
    "Manufacturer",  # (b)
    "Firmware Version",  # (c)
    "SMI Status",  # (d)
    "Region",  # (e)
    "Registered Supplier(s)",  # (f)
    "Registered Supplier Effective From Date(s)",  # (f)
    "Communications Hub Make",  # (g)
    "Communications Hub Model",  # (g)
    "Communications Hub Firmware Version",  # (g)
)

#: The supplier roles registered against each Smart Meter (Import/Export for electricity).
REGISTERED_SUPPLIER_ROLES: Mapping[DeviceType, tuple[str, ...]] = MappingProxyType(
    {DeviceType.ESME: ("IS", "ES"), DeviceType.GSME: ("GS",)}
)
#: Separator for the several values of one cell (several Registered Suppliers).
MULTI_SEPARATOR = ";"


def map_manufacturer_report(
    inventory: Inventory,
    *,
    manufacturer: str | None = None,
    map_id: str | None = None,
) -> list[Row]:
    """H17 report for a recipient that is a Manufacturer (``manufacturer``, matched
    exactly against the SMI Device Model manufacturer) and/or a Meter Asset Provider
    (``map_id``): every Smart Meter in the SMI it made or provides, in Device ID order.

    Meters whose MAP ID is 'UKN' belong to no MAP, so a MAP never receives them (they
    still appear in their Manufacturer's report). The eligibility checks of H17.2/H17.3
    (Party or Enabling Services Agreement, evidence of status) are the DCC's, outside the
    SMI. "Effective From Date(s)" is empty: the SMI records who the supplier is, not since
    when.
    """
    if manufacturer is None and map_id is None:
        raise ValueError("an H17 report needs a manufacturer and/or a MAP ID")
    if manufacturer is not None and not manufacturer:
        raise ValueError("manufacturer must not be empty")
    if map_id is not None and (map_id == MAP_ID_UNKNOWN or not is_valid_map_id(map_id)):
        raise ValueError(f"MAP ID {map_id!r} is not a MAP's 1-4 alphanumerics")
    rows = []
    for meter in inventory.devices():
        if meter.device_type not in SMART_METERS:
            continue
        if not (
            (manufacturer is not None and meter.manufacturer == manufacturer)
            or (map_id is not None and meter.map_id == map_id)
        ):
            continue
        hub = _comms_hub(inventory, meter)
        parties = inventory.parties(meter.device_id)
        suppliers = [
            parties[r] for r in REGISTERED_SUPPLIER_ROLES[meter.device_type] if r in parties
        ]
        rows.append(
            dict(
                zip(
                    H17_COLUMNS,
                    (
                        meter.device_id,
                        str(meter.device_type),
                        meter.model,
                        meter.manufacturer,
                        meter.firmware_version,
                        _s(meter.status),
                        meter.csp_region or (hub.csp_region if hub is not None else None),
                        MULTI_SEPARATOR.join(suppliers) or None,
                        None,
                        None if hub is None else hub.manufacturer,
                        None if hub is None else hub.model,
                        None if hub is None else hub.firmware_version,
                    ),
                    strict=True,
                )
            )
        )
    return rows


def _comms_hub(inventory: Inventory, meter: Device) -> Device | None:
    """The CHF the Smart Meter is associated with (seed 000 SMI definition, (f))."""
    for other in inventory.associated(meter.device_id, AssociationKind.COMMS_HUB):
        device = inventory.get(other)
        if device.device_type is DeviceType.CHF:
            return device
    return None


def _s(value: object | None) -> str | None:
    return None if value is None else str(value)


# --- By name -----------------------------------------------------------------------------------

REPORTS: Mapping[str, Callable[..., list[Row]]] = MappingProxyType(
    {
        "RSMI_001": rsmi_001,
        "H17": map_manufacturer_report,
    }
)
COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"RSMI_001": RSMI_001_COLUMNS, "H17": H17_COLUMNS}
)


def report(name: str, inventory: Inventory, *args: Any, **kwargs: Any) -> list[Row]:
    """Run a report by name; ReportNotDefined (with the reason) for those whose
    columns no public seed defines."""
    if name in NOT_DEFINED:
        raise ReportNotDefined(f"{name}: {NOT_DEFINED[name]}")
    try:
        build = REPORTS[name]
    except KeyError:
        raise KeyError(f"unknown report {name!r}") from None
    return build(inventory, *args, **kwargs)


# --- Output ------------------------------------------------------------------------------------


def to_csv(rows: Iterable[Mapping[str, str | None]], columns: Sequence[str] | None = None) -> str:
    """RFC 4180 CSV (CRLF line ends): a header, then one line per row; None is an empty
    field. ``columns`` gives the header when there may be no rows (else the first row's
    keys); with neither, the text is empty."""
    rows = list(rows)
    header = list(columns) if columns is not None else list(rows[0]) if rows else []
    if not header:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def to_json(rows: Iterable[Mapping[str, str | None]]) -> str:
    """A JSON array of objects, keys in column order, None as null."""
    return json.dumps([dict(r) for r in rows], indent=2, ensure_ascii=False)


__all__ = [
    "COLUMNS",
    "H17_COLUMNS",
    "MULTI_SEPARATOR",
    "NOT_DEFINED",
    "REGISTERED_SUPPLIER_ROLES",
    "REPORTS",
    "RSMI_001_COLUMNS",
    "Row",
    "map_manufacturer_report",
    "report",
    "rsmi_001",
    "to_csv",
    "to_json",
]
