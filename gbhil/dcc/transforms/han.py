"""8.7 join, 8.8 unjoin, 8.9 read device log, 8.11 update the CHF device log.

Joins and unjoins are ASN.1 (gbcs-facts 3.3): the method and role follow from the use case,
the other device's type comes from the inventory and, for Method C, its key-agreement
certificate from the SMKI repository. The CHF device log is DLMS class 104 ("ZigBee network
control", 0-0:30.3.0.255): register/unregister a device, join timeout, permit joining.
8.12 restores need the DCC's backup of the old device log and are not built here.
"""

from __future__ import annotations

from gbhil.dcc.mapping import CAD, CHF, ESME, GPF, GSME, HCALCS, IHD, PPMID, TYPE2
from gbhil.dcc.transforms.base import (
    BuildContext,
    BuildError,
    access_request,
    action,
    asn1_command,
    builder,
    eui_bytes,
    integer,
    set_,
    text,
)
from gbhil.duis.codes import SMETS2_INSTALL_CODE_HEX_LENGTH
from gbhil.gbcs.axdr import NULL, Boolean, Enum, OctetString, Structure, Uint16

#: CS03 joinMethodAndRole per use case (gbhil.gbcs.asn1_schemas.JOIN_METHODS).
JOIN_METHOD = {"CS03A1": 0, "CS03A2": 1, "CS03B": 2, "CS03C": 3}
#: CS03 deviceType of the other device (gbhil.gbcs.asn1_schemas.DEVICE_TYPES).
JOIN_DEVICE_TYPE = {
    GSME: 0, ESME: 1, CHF: 2, GPF: 3, HCALCS: 4, PPMID: 5, IHD: 6, CAD: 6, TYPE2: 6,
}
DEVICE_LOG = "0-0:30.3.0.255"
SECURITY_LOG_DETAILS = "0-0:30.3.1.255"
ZIGBEE_NETWORK_CONTROL = 104
REGISTER_DEVICE = 1
UNREGISTER_DEVICE = 2
READ_SECURITY_DETAILS = 4
JOIN_ENABLE = 2
JOIN_TIMEOUT = 3
#: register_device key type: the key is an install code.
KEY_TYPE_INSTALL_CODE = 1
INSTALL_CODE_OCTETS = SMETS2_INSTALL_CODE_HEX_LENGTH // 2
#: Response code when a SMETS2 install code is not 16 octets.
E_INSTALL_CODE = "E081111"


def _other(ctx: BuildContext) -> tuple[str, bytes]:
    raw = text(ctx.body, "OtherDeviceID")
    return raw, eui_bytes(raw, "OtherDeviceID")


@builder("CS03A1", "CS03A2", "CS03B", "CS03C")
def join(ctx: BuildContext) -> bytes:
    raw, other = _other(ctx)
    other_type = ctx.other_device_type(raw)
    if other_type not in JOIN_DEVICE_TYPE:
        raise BuildError(f"the device to join, {raw}, is not a joinable device", "E19")
    fields: dict[str, object] = {
        "joinMethodAndRole": JOIN_METHOD[ctx.use_case],
        "entityId": other,
        "deviceType": JOIN_DEVICE_TYPE[other_type],
    }
    if ctx.use_case == "CS03C":
        cert = None if ctx.certificate is None else ctx.certificate(raw, "KA")
        if cert is None:
            raise BuildError(f"no key-agreement certificate of {raw} in the SMKI repository")
        fields["otherDeviceKeyAgreementCertificate"] = cert
    return asn1_command(ctx.message_code, fields)


@builder("CS04AC", "CS04B")
def unjoin(ctx: BuildContext) -> bytes:
    return asn1_command(ctx.message_code, {"entityId": _other(ctx)[1]})


@builder("CS07")
def read_join_details(ctx: BuildContext) -> bytes:
    return asn1_command(ctx.message_code, {})


@builder("CCS07")
def read_device_logs_with_security(ctx: BuildContext) -> bytes:
    return access_request(
        ctx.counter,
        [
            action(ZIGBEE_NETWORK_CONTROL, DEVICE_LOG, READ_SECURITY_DETAILS, NULL),
            action(ZIGBEE_NETWORK_CONTROL, SECURITY_LOG_DETAILS, READ_SECURITY_DETAILS, NULL),
        ],
    )


@builder("CCS01")
def add_to_device_log(ctx: BuildContext) -> bytes:
    device = eui_bytes(text(ctx.body, "DeviceID"))
    raw_code = text(ctx.body, "AddDeviceToCHFWhitelist/InstallCode")
    try:
        install_code = bytes.fromhex(raw_code)
    except ValueError:
        raise BuildError(f"InstallCode {raw_code!r} is not hex") from None
    if len(install_code) != INSTALL_CODE_OCTETS:
        raise BuildError(f"InstallCode has {len(install_code)} octets", E_INSTALL_CODE)
    timeout = integer(ctx.body, "AddDeviceToCHFWhitelist/JoinTimePeriod")
    registration = Structure(
        (OctetString(device), Enum(KEY_TYPE_INSTALL_CODE), OctetString(install_code), Enum(0))
    )
    return access_request(
        ctx.counter,
        [
            action(ZIGBEE_NETWORK_CONTROL, DEVICE_LOG, REGISTER_DEVICE, registration),
            set_(ZIGBEE_NETWORK_CONTROL, DEVICE_LOG, JOIN_TIMEOUT, Uint16(timeout)),
            set_(ZIGBEE_NETWORK_CONTROL, DEVICE_LOG, JOIN_ENABLE, Boolean(True)),
        ],
    )


@builder("CCS02")
def remove_from_device_log(ctx: BuildContext) -> bytes:
    device = eui_bytes(text(ctx.body, "DeviceID"))
    return access_request(
        ctx.counter,
        [action(ZIGBEE_NETWORK_CONTROL, DEVICE_LOG, UNREGISTER_DEVICE, OctetString(device))],
    )
