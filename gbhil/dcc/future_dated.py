"""Commands a device holds until their execution date: which outcome alert ends each.

Why: seed 003 E30 ("DCC Systems doesn't get Response from Device on the expected date for
a Future Dated Command"). A device-future-dated command is answered at once ("accepted");
its outcome comes later as a future-dated execution alert (0x8F66 success, 0x8F67 failure)
that names the command by its originator counter (gbcs-facts 3.1.5, 3.4):

* DLMS 0x00CC: ``structure{alert code, time, octet-string(19)}``, the octet string being
  message code(2) ‖ originator counter(8) ‖ the executed attribute;
* GBZ 0x00CD: the ``FutureDatedAlertBody`` of the alert;
* CS06 0x00CA (ASN.1): ``originatorCounter``.

The CS02b/CS02g credentials alerts (0x00CB/0x0124) carry no originator counter, so a
future-dated credentials update cannot be matched to its alert: it is not watched.
"""

from __future__ import annotations

from typing import Final

from gbhil.gbcs import asn1, axdr, dlms, gbz
from gbhil.gbcs.asn1_schemas import (
    ALERT_FUTURE_DATED_FAILURE,
    ALERT_FUTURE_DATED_SUCCESS,
    asn1_to_json,
)
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.message import DecodedMessage

#: Alert codes of a future-dated command's outcome.
FUTURE_DATED_OUTCOME_ALERTS: Final = frozenset(
    {ALERT_FUTURE_DATED_SUCCESS, ALERT_FUTURE_DATED_FAILURE}
)
#: Message codes of the outcome alerts that name the command by its originator counter.
COUNTER_BEARING_ALERTS: Final = frozenset({0x00CA, 0x00CC, 0x00CD})
#: Use cases whose outcome alert (0x00CB/0x0124) does not name the command.
UNMATCHED_USE_CASES: Final = frozenset({"CS02b", "CS02g"})
#: Where the originator counter sits in the DLMS alert's octet string.
_DLMS_COUNTER: Final = slice(2, 10)


def executed_counter(msg: DecodedMessage) -> int | None:
    """The originator counter of the command a future-dated outcome alert reports on."""
    gs = msg.frame.gs
    if gs.message_code not in COUNTER_BEARING_ALERTS:
        return None
    payload = msg.payload
    if isinstance(payload, dlms.DataNotification):
        items = payload.body.items if isinstance(payload.body, axdr.Structure) else ()
        executed = items[2] if len(items) == 3 else None
        if isinstance(executed, axdr.OctetString) and len(executed.value) >= _DLMS_COUNTER.stop:
            return int.from_bytes(executed.value[_DLMS_COUNTER], "big")
        return None
    if isinstance(payload, gbz.GbzMessage):
        alert = payload.alert
        body = None if alert is None else alert.body
        return body.originator_counter if isinstance(body, gbz.FutureDatedAlertBody) else None
    if isinstance(payload, asn1.Asn1Node):
        try:
            fields = asn1_to_json(payload, gs.message_code, int(gs.cra), strict=True)
        except GbcsError:
            return None
        counter = fields.get("originatorCounter")
        return counter if isinstance(counter, int) else None
    return None


__all__ = [
    "COUNTER_BEARING_ALERTS",
    "FUTURE_DATED_OUTCOME_ALERTS",
    "UNMATCHED_USE_CASES",
    "executed_counter",
]
