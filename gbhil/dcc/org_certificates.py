"""Which Organisation Certificates each device holds, as the DCC tracks them.

An Update Security Credentials response (CS02b/CS02g for SR 6.15.1, 6.21 and 6.23) names,
for every trust anchor cell it touched, the status and the subject and key identifiers
now in the cell. The DCC keeps the latest successful one per device and cell, whether
the response came over the SM WAN or, for a locally delivered command, through SR 8.13
Return Local Command Response (seed 002: 6.15.1 and 6.21 join the 8.13 list so that
the DCC can track the certificates held on devices after local delivery).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gbhil.gbcs import asn1
from gbhil.gbcs.asn1_schemas import asn1_to_json
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.frame import Cra
from gbhil.gbcs.message import DecodedMessage

#: Service Reference Variants whose responses carry trust anchor replacement outcomes.
TRACKED_SERVICES = frozenset({"6.15.1", "6.21", "6.23"})
#: CS02b/CS02g replacement status "success" (gbcs-facts 3.3).
STATUS_SUCCESS = 0
#: Cell usage 1 of a key-agreement cell: the prepayment top-up cell.
CELL_USAGE_TOP_UP = 1


@dataclass(frozen=True, slots=True)
class HeldCertificate:
    """One trust anchor cell of one device, as its last successful update left it."""

    device_id: str
    role: int  # GBCS Remote Party Role of the cell
    usage: str  # "DS", "KA" or "KA-TopUp"
    subject_id: str  # the certificate's subject unique id (an EUI-64, as DUIS writes it)
    key_id: str  # subject key identifier, hex
    service: str  # the SRV whose response reported it
    local: bool  # True when the response came back through SR 8.13
    at: dt.datetime


def _usage(cell: Mapping[str, Any]) -> str:
    if "keyAgreement" in cell.get("keyUsage", ()):
        return "KA-TopUp" if cell.get("cellUsage") == CELL_USAGE_TOP_UP else "KA"
    return "DS"


class OrgCertificateRegister:
    """The DCC's record of Organisation Certificates on devices (in memory)."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, int, str], HeldCertificate] = {}

    def record_response(
        self, device_id: str, service: str, msg: DecodedMessage, at: dt.datetime, *,
        local: bool = False,
    ) -> list[HeldCertificate]:
        """Take the successful replacements of a credentials response; returns them."""
        if service not in TRACKED_SERVICES or msg.frame.gs.cra is not Cra.RESPONSE:
            return []
        if not isinstance(msg.payload, asn1.Asn1Node):
            return []
        try:
            view = asn1_to_json(msg.payload, msg.frame.gs.message_code, int(Cra.RESPONSE))
        except (GbcsError, KeyError, ValueError):
            return []
        outcome = view.get("executionOutcome") if isinstance(view, dict) else None
        if not isinstance(outcome, dict):
            return []  # accepted for later (future-dated): nothing is installed yet
        recorded = []
        for item in outcome.get("replacementOutcomes", ()):
            if item.get("statusCode") != STATUS_SUCCESS:
                continue
            cell = item.get("affectedTrustAnchorCell", {})
            held = HeldCertificate(
                device_id, int(cell.get("remotePartyRole", -1)), _usage(cell),
                str(item.get("replacingSubjectUniqueId", "")),
                str(item.get("replacingSubjectKeyId", "")).upper(), service, local, at,
            )
            self._cells[(device_id, held.role, held.usage)] = held
            recorded.append(held)
        return recorded

    def held(self, device_id: str) -> list[HeldCertificate]:
        """Every tracked cell of ``device_id``, by role then usage."""
        return sorted((h for (d, _, _), h in self._cells.items() if d == device_id),
                      key=lambda h: (h.role, h.usage))
