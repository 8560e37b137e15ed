"""DCC alert N54: what the dual-band CHF tells the ACB about its sub-GHz radio.

The CHF sends its DBCH alerts (0x8F20-0x8F2D) to the ACB; the DCC passes them on as DCC
alert N54 with a ``DualBandCHAlert`` body (DUIS 3.9.14, XSD). Seven of them are the
"Dual Band CHF Sub GHz Error" of response code E59 (seed 003 Annex A): 0x8F22, 0x8F24,
0x8F29, 0x8F2B without payload and 0x8F20, 0x8F2C, 0x8F2D with payload; the alert
header carries E59 for those and I0 for the others. The payload choices filled here
are the ones whose GBCS body (gbcs-facts 3.1.5) maps onto the XSD without guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from lxml import etree

from gbhil.duis.model import format_eui
from gbhil.duis.schema import SR_NS
from gbhil.gbcs.axdr import Data, OctetString, Structure
from gbhil.gbcs.frame import Cra

#: DCC alert code of every dual-band CHF alert.
DUAL_BAND_CH_ALERT = "N54"
#: Response code of the sub-GHz error alerts (seed 003 Annex A).
SUB_GHZ_ERROR = "E59"
#: Alert codes of the dual-band CHF (GBCS Appendix B, 0x8F20-0x8F2D).
DUAL_BAND_ALERT_CODES = frozenset(range(0x8F20, 0x8F2E))
#: The alerts E59 names (seed 003): without and with a specific payload.
SUB_GHZ_ERROR_ALERTS = frozenset({0x8F22, 0x8F24, 0x8F29, 0x8F2B, 0x8F20, 0x8F2C, 0x8F2D})
ALERT_LIMITED_DUTY_CYCLE = 0x8F20
ALERT_MESSAGE_DISCARDED = 0x8F2C
ALERT_NO_SUB_GHZ_CAPACITY = 0x8F2D
#: 8F2C routing: originator(8) || target(8) || CRA(1) || counter(8).
ROUTING_LENGTH = 25
CRA_FLAGS = MappingProxyType(
    {int(Cra.COMMAND): "Command", int(Cra.RESPONSE): "Response", int(Cra.ALERT): "Alert"}
)


def response_code(alert_code: int, success: str) -> str:
    """E59 for the sub-GHz error alerts, ``success`` (I0) for the other DBCH alerts."""
    return SUB_GHZ_ERROR if alert_code in SUB_GHZ_ERROR_ALERTS else success


def _sr(local: str) -> str:
    return f"{{{SR_NS}}}{local}"


def _octets(body: Data | None, index: int, length: int) -> bytes | None:
    """The octet-string at ``index`` of the alert structure, if it has that length."""
    if not isinstance(body, Structure) or len(body.items) <= index:
        return None
    item = body.items[index]
    if not isinstance(item, OctetString) or len(item.value) != length:
        return None
    return item.value


def _device(element: str, child: str) -> Callable[[etree._Element, Data | None], bool]:
    def fill(parent: etree._Element, body: Data | None) -> bool:
        eui = _octets(body, 2, 8)
        if eui is None:
            return False
        holder = etree.SubElement(parent, _sr(element))
        etree.SubElement(holder, _sr(child)).text = format_eui(eui)
        return True

    return fill


def _discarded(parent: etree._Element, body: Data | None) -> bool:
    routing = _octets(body, 2, ROUTING_LENGTH)
    if routing is None or routing[16] not in CRA_FLAGS or not any(routing[:16]):
        return False  # not a GBCS message (or not one the CHF could read): no payload
    originator, target, cra = routing[:8], routing[8:16], routing[16]
    counter = int.from_bytes(routing[17:25], "big")
    holder = etree.SubElement(parent, _sr("MessageDiscardedDueToDutyCycleManagement"))
    etree.SubElement(holder, _sr("RequestID")).text = (
        f"{format_eui(originator)}:{format_eui(target)}:{counter}"
    )
    etree.SubElement(holder, _sr("CRAFlag")).text = CRA_FLAGS[cra]
    return True


_PAYLOADS: dict[int, Callable[[etree._Element, Data | None], bool]] = {
    ALERT_LIMITED_DUTY_CYCLE: _device("LimitedDutyCycleActionTaken", "DeviceIDToSuspend"),
    ALERT_MESSAGE_DISCARDED: _discarded,
    ALERT_NO_SUB_GHZ_CAPACITY: _device("NoMoreSubGHzDeviceCapacity", "DeviceID"),
}


def dual_band_alert_body(
    chf: str, alert_code: int, message_code: int | None, body: Data | None
) -> etree._Element:
    """The ``DualBandCHAlert`` element for one CHF alert (``body``: its data-notification)."""
    root = etree.Element(_sr("DualBandCHAlert"), nsmap={"sr": SR_NS})
    etree.SubElement(root, _sr("CHFDeviceID")).text = chf
    etree.SubElement(root, _sr("DeviceAlertCode")).text = f"{alert_code:04X}"
    if message_code is not None:
        etree.SubElement(root, _sr("GBCSHexadecimalMessageCode")).text = f"{message_code:04X}"
    fill = _PAYLOADS.get(alert_code)
    if fill is not None:
        fill(root, body)
    return root
