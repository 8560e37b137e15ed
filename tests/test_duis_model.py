"""gbhil.duis.model, .codes and .alerts: typed messages, builders that validate against the
XSD, and the catalogues checked against the official enumerations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gbhil.duis import alerts, codes
from gbhil.duis.model import (
    DCC_EUI,
    CommandVariant,
    DCCAlertMessage,
    DeviceAlertMessage,
    DuisModelError,
    PowerOutageEvent,
    Request,
    RequestID,
    Response,
    ResponseMessage,
    WebService,
    acknowledgement,
    dcc_alert,
    device_alert,
    format_datetime,
    format_eui,
    gbcs_response,
    local_command_response,
    mapid_problems,
    parse_datetime,
    parse_message,
    parse_request,
    parse_response,
    power_outage_alert,
    pre_command_response,
)
from gbhil.duis.schema import SR_NS, XS_NS, DuisSchema, DuisValidationError, load_schema, parse_xml
from gbhil.duis.xmldsig import certificate_resolver, sign, verify

SR = f"{{{SR_NS}}}"
AT = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def duis_dir(conformance_dir: Path) -> Path:
    path = conformance_dir / "duis"
    if not (path / "schema").is_dir():
        pytest.skip(f"DUIS conformance data not found at {path}")
    return path


@pytest.fixture(scope="session")
def schema(duis_dir: Path) -> DuisSchema:
    return load_schema(folder=duis_dir / "schema")


@pytest.fixture(scope="session")
def official(duis_dir: Path) -> DuisSchema:
    return load_schema("5.4", duis_dir / "schema")


@pytest.fixture(scope="session")
def request_4_1_1(duis_dir: Path, schema: DuisSchema) -> Request:
    raw = (duis_dir / "templates" / "ECS17b_4.1.1_REQUEST_DUIS.XML").read_bytes()
    return parse_request(raw, schema=schema)


# --- Simple values ----------------------------------------------------------------------------


def test_request_id_parse_and_format() -> None:
    rid = RequestID.parse("90-b3-d5-1f-30-01-00-00:00-DB-12-34-56-78-90-a0:1000")
    assert rid == RequestID("90-B3-D5-1F-30-01-00-00", "00DB1234567890A0", 1000)
    assert str(rid) == "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1000"
    assert rid.originator == "90-B3-D5-1F-30-01-00-00"
    assert str(rid.response_id()) == "00-DB-12-34-56-78-90-A0:90-B3-D5-1F-30-01-00-00:1000"


@pytest.mark.parametrize(
    "text",
    ["", "a:b:c", "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:",
     "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:-1",
     "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:18446744073709551616",
     "90-B3-D5-1F-30-01-00:00-DB-12-34-56-78-90-A0:1"],
)
def test_bad_request_ids(text: str) -> None:
    with pytest.raises(DuisModelError):
        RequestID.parse(text)


def test_eui_forms() -> None:
    assert format_eui(bytes.fromhex("90b3d51f30000002")) == DCC_EUI
    assert format_eui("90B3D51F30000002") == DCC_EUI
    with pytest.raises(DuisModelError):
        format_eui(b"\x00" * 7)


def test_datetimes() -> None:
    assert format_datetime(AT) == "2026-03-01T12:00:00.123Z"
    offset = dt.datetime(2026, 3, 1, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert format_datetime(offset) == "2026-03-01T12:00:00.000Z"
    assert parse_datetime("2022-08-17T15:45:42.790Z") == dt.datetime(
        2022, 8, 17, 15, 45, 42, 790000, tzinfo=dt.UTC)
    assert parse_datetime("2022-08-17T15:45:42").tzinfo is dt.UTC
    with pytest.raises(DuisModelError, match="timezone"):
        format_datetime(dt.datetime(2026, 1, 1))
    with pytest.raises(DuisModelError):
        parse_datetime("yesterday")


def test_command_variant_table() -> None:
    assert [cv.info.web_service for cv in CommandVariant if cv.user_allowed] == [
        WebService.SEND_COMMAND, WebService.NON_DEVICE, WebService.SEND_COMMAND,
        WebService.TRANSFORM, WebService.SEND_COMMAND, WebService.NON_DEVICE,
        WebService.SEND_COMMAND, WebService.NON_DEVICE,
    ]
    assert [cv for cv in CommandVariant if cv.info.critical] == [4, 5, 6, 7]
    assert [cv for cv in CommandVariant if cv.local_delivery] == [2, 3, 6, 7]
    assert [cv for cv in CommandVariant if cv.signed_pre_command] == [5, 6, 7]
    assert not CommandVariant.DCC_INTERNAL.user_allowed
    assert WebService.NON_DEVICE.path == "/api/v1/serviceD"


# --- Parsing ----------------------------------------------------------------------------------


def test_every_template_parses_into_a_request(duis_dir: Path, schema: DuisSchema) -> None:
    templates = sorted((duis_dir / "templates").glob("*.XML"))
    assert templates
    non_device = 0
    for path in templates:
        request = parse_request(path.read_bytes(), schema=schema)
        root = etree.fromstring(path.read_bytes())
        assert str(request.header.request_id) == root.findtext(f"{SR}Header/{SR}RequestID").upper()
        assert request.body_name == etree.QName(root.find(f"{SR}Body")[0]).localname
        assert request.signed  # the placeholder signature is present
        assert request.schema_version == "5.4"
        if request.header.command_variant is CommandVariant.NON_DEVICE:
            non_device += 1
            assert request.header.business_target_id == DCC_EUI
    assert non_device > 0


def test_request_header_fields(request_4_1_1: Request) -> None:
    header = request_4_1_1.header
    assert header.business_originator_id == "90-B3-D5-1F-30-01-00-00"
    assert header.business_target_id == "00-DB-12-34-56-78-90-A0"
    assert header.originator_counter == 1000
    assert header.command_variant is CommandVariant.RETURN_FOR_LOCAL_DELIVERY
    assert (header.service_reference, header.service_reference_variant) == ("4.1", "4.1.1")
    assert request_4_1_1.body_name == "ReadInstantaneousImportRegisters"


def test_sequenced_header_round_trip(request_4_1_1: Request, schema: DuisSchema) -> None:
    header = request_4_1_1.header
    element = header.to_element()
    sequenced = type(header)(header.request_id, CommandVariant.SEND, "4.1", "4.1.1",
                             first_in_sequence=False,
                             preceding_request_id=RequestID(DCC_EUI, DCC_EUI, 1))
    root = etree.Element(f"{SR}Request", nsmap={"sr": SR_NS}, schemaVersion="5.4")
    root.append(sequenced.to_element())
    etree.SubElement(etree.SubElement(root, f"{SR}Body"),
                     f"{SR}ReadInstantaneousImportRegisters")
    schema.validate(root)
    assert Request.from_element(root).header == sequenced
    assert element.findtext(f"{SR}CommandVariant") == "2"


def test_command_variant_9_is_refused(duis_dir: Path, schema: DuisSchema) -> None:
    raw = (duis_dir / "templates" / "ECS17b_4.1.1_REQUEST_DUIS.XML").read_bytes()
    raw = raw.replace(b"<sr:CommandVariant>2<", b"<sr:CommandVariant>9<")
    schema.validate(parse_xml(raw))  # the XSD allows it
    with pytest.raises(DuisModelError) as caught:
        parse_request(raw, schema=schema)
    assert caught.value.response_code == "E12"


def test_invalid_xml_never_reaches_the_model(duis_dir: Path, schema: DuisSchema) -> None:
    raw = (duis_dir / "samples" / "ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS-invalid.XML")
    with pytest.raises(DuisValidationError):
        parse_message(raw.read_bytes(), schema=schema)


def test_parse_samples(duis_dir: Path, schema: DuisSchema) -> None:
    samples = duis_dir / "samples"
    response = parse_response((samples / "readfw-response.xml").read_bytes(), schema=schema)
    assert response.signed and not response.is_acknowledgement
    assert isinstance(response.body, ResponseMessage)
    assert response.body.gbcs_payload is not None and response.body.gbcs_payload[:2] == b"\xdd\x00"
    assert response.header.response_id == response.header.request_id.response_id()
    ack = parse_response((samples / "acknowledgement-error.xml").read_bytes(), schema=schema)
    assert ack.is_acknowledgement and ack.header.response_code == "E65" and not ack.signed
    assert codes.response_code("E65").in_acknowledgement
    inventory = parse_response((samples / "read-inventory-response-5.4.xml").read_bytes(),
                               schema=schema)
    assert isinstance(inventory.body, ResponseMessage)
    assert etree.QName(inventory.body.other).localname == "DSPInventory"
    with pytest.raises(DuisModelError, match="expected a Request"):
        parse_request((samples / "message.xml").read_bytes(), schema=schema)


# --- Builders ---------------------------------------------------------------------------------


def _built(request: Request) -> dict[str, Response]:
    status = etree.Element(f"{SR}CSPFirmwareDeliveryStatus")
    for name, text in [
        ("UpdateFirmwareRequestID", "90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:7"),
        ("CommsHubDeviceID", "00-DB-12-34-56-78-90-A2"),
        ("TargetDeviceID", "00-DB-12-34-56-78-90-A0"),
        ("FirmwareVersion", "0102"),
        ("TimeStamp", "2026-03-01T11:00:00Z"),
        ("CommsHubTransferStatus", "Success"),
    ]:
        etree.SubElement(status, f"{SR}{name}").text = text
    return {
        "ack I99": acknowledgement(request, at=AT),
        "ack E12": acknowledgement(request, "E12", at=AT),
        "gbcs": gbcs_response(request, b"\xdd\x00\x00\x01\x02", at=AT),
        "local": local_command_response(request, b"\xdf\x09\x01", at=AT),
        "pre": pre_command_response(request, "4.3", b"\xdf\x09\x02", at=AT),
        "AD1": power_outage_alert("00-db-12-34-56-78-90-a2", AT - dt.timedelta(minutes=3),
                                  "1234567890123", at=AT, throttled_alert_sequence_id=3,
                                  throttled_alert_count=17),
        "N60": dcc_alert("N60", status, at=AT),
        "device": device_alert(0x8F35, b"\xdd\x00\x00", at=AT, throttled_alert_count=2),
    }


def test_built_messages_validate_and_round_trip(request_4_1_1: Request, schema: DuisSchema,
                                                official: DuisSchema) -> None:
    for name, response in _built(request_4_1_1).items():
        xml = response.to_xml()
        assert b">\n" not in xml, name
        tree = parse_xml(xml)
        official.validate(tree)
        schema.validate(tree)
        assert parse_response(xml, schema=schema) == response, name


def test_acknowledgement_shape(request_4_1_1: Request) -> None:
    ack = acknowledgement(request_4_1_1, at=AT)
    assert ack.is_acknowledgement and ack.header.response_code == codes.ACKNOWLEDGED
    assert ack.header.request_id == request_4_1_1.header.request_id
    assert ack.header.response_id is None
    assert ack.header.response_date_time == AT.replace(microsecond=123000)


def test_signed_built_messages_verify(request_4_1_1: Request, schema: DuisSchema,
                                      zaz1_dir: Path) -> None:
    orgkeys = zaz1_dir / "orgkeys"
    name = "dsp-xml-sign-90B3D51F30000002-ds"
    key = serialization.load_der_private_key((orgkeys / f"{name}.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate((orgkeys / f"{name}.pem").read_bytes())
    for response in _built(request_4_1_1).values():
        signed = sign(response.to_xml(), key, cert)
        parsed = parse_response(signed, schema=schema)
        assert parsed.signed
        assert verify(signed, certificate_resolver([cert]), AT).serial == cert.serial_number


def test_power_outage_body(request_4_1_1: Request) -> None:
    alert = _built(request_4_1_1)["AD1"]
    assert isinstance(alert.body, DCCAlertMessage)
    event = alert.body.body
    assert isinstance(event, PowerOutageEvent)
    assert event.comms_hub_device_id == "00-DB-12-34-56-78-90-A2"
    assert alert.body.throttled_alert_count == 17
    element = alert.to_element()
    assert element.findtext(f".//{SR}DCCAlertCode") == "AD1"
    names = [etree.QName(e).localname for e in element.find(f".//{SR}DCCAlertMessage")]
    assert names == ["DCCAlertCode", "ThrottledAlertSequenceId", "ThrottledAlertCount",
                     "DCCAlert"]


def test_alert_code_and_body_must_match() -> None:
    event = PowerOutageEvent(DCC_EUI, AT, "1")
    with pytest.raises(DuisModelError, match="N18 carries FirmwareDistributionFailure"):
        DCCAlertMessage("N18", event)
    with pytest.raises(DuisModelError, match=r"not a DUIS V5\.4 DCC alert code"):
        DCCAlertMessage("N32", event)


@pytest.mark.parametrize("bad", [-1, 2**32])
def test_throttling_fields_are_unsigned_ints(bad: int) -> None:
    with pytest.raises(DuisModelError):
        DeviceAlertMessage(0x8F35, b"", throttled_alert_sequence_id=bad)
    with pytest.raises(DuisModelError):
        DCCAlertMessage("AD1", PowerOutageEvent(DCC_EUI, AT, "1"), throttled_alert_count=bad)


def test_model_refuses_what_the_xsd_would(request_4_1_1: Request) -> None:
    with pytest.raises(DuisModelError, match="MPxN"):
        PowerOutageEvent(DCC_EUI, AT, "12345678901234")
    with pytest.raises(DuisModelError, match="two octets"):
        DeviceAlertMessage(0x18F35, b"")
    with pytest.raises(DuisModelError, match="at most one"):
        ResponseMessage("4.1", "4.1.1", gbcs_payload=b"", local_command=b"")
    with pytest.raises(DuisModelError, match="timezone"):
        acknowledgement(request_4_1_1, at=dt.datetime(2026, 1, 1))


@settings(max_examples=40, deadline=None)
@given(
    payload=st.binary(max_size=300),
    alert_code=st.integers(0, 0xFFFF),
    count=st.none() | st.integers(0, 2**32 - 1),
)
def test_device_alert_round_trip(payload: bytes, alert_code: int, count: int | None) -> None:
    alert = device_alert(alert_code, payload, at=AT, throttled_alert_count=count)
    assert Response.from_element(parse_xml(alert.to_xml()).getroot()) == alert


@given(
    originator=st.binary(min_size=8, max_size=8),
    target=st.binary(min_size=8, max_size=8),
    counter=st.integers(0, 2**64 - 1),
)
def test_request_id_round_trip(originator: bytes, target: bytes, counter: int) -> None:
    rid = RequestID(format_eui(originator), format_eui(target), counter)
    assert RequestID.parse(str(rid)) == rid
    assert rid.response_id().response_id() == rid


# --- MAP ID rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device_type", "map_id", "problem"),
    [("ESME", "AB12", None), ("GSME", None, "mandatory"), ("ESME", None, "mandatory"),
     ("CHF", None, None), ("PPMID", "AB12", "not applicable")],
)
def test_mapid_rules(duis_dir: Path, schema: DuisSchema, device_type: str, map_id: str | None,
                     problem: str | None) -> None:
    raw = (duis_dir / "templates" / "12.2_DEVICE_PRE_NOTIFICATION_REQUEST_DUIS.XML").read_bytes()
    tail = f"<sr:MAPID>{map_id}</sr:MAPID>" if map_id else ""
    raw = raw.replace(b"<sr:DeviceType>ESME</sr:DeviceType>",
                      f"<sr:DeviceType>{device_type}</sr:DeviceType>{tail}".encode())
    problems = mapid_problems(parse_request(raw, schema=schema))
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


# --- Catalogues -------------------------------------------------------------------------------


def test_response_codes_exist_in_the_xsd(official: DuisSchema) -> None:
    enumerated = set(official.enumeration("ResponseCode"))
    assert set(codes.RESPONSE_CODES) <= enumerated
    generic = {"I0", "I99", "E1", "E2", "E3", "E4", "E5", "E11", "E12", "E13", "E17", "E19",
               "E20", "E21", "E30", "E31", "E100"} | {f"E{n}" for n in range(40, 72)}
    assert generic <= set(codes.RESPONSE_CODES)
    assert codes.lookup("E1000") is None and "E1000" in enumerated


def test_response_code_entries() -> None:
    assert codes.response_code("I99").applies_to == {codes.ResponseType.ACKNOWLEDGEMENT}
    assert not codes.response_code("I0").in_acknowledgement
    e20 = codes.response_code("E20")
    assert e20.in_dcc_alert and not e20.in_acknowledgement
    assert codes.response_code("E13").kind is codes.CodeKind.ERROR
    assert codes.response_code("W081401").kind is codes.CodeKind.WARNING
    assert codes.response_code("W081401").service_reference == "8.14"
    assert codes.response_code("E062802").service_reference == "6.28"
    assert codes.response_code("E081111").source == "004"
    assert all(c.name and c.condition for c in codes.RESPONSE_CODES.values())
    with pytest.raises(KeyError, match="E9999"):
        codes.response_code("E9999")
    assert codes.HTTP_STATUSES[429].retry_after


def test_channel_masks_match_the_xsd(official: DuisSchema) -> None:
    xsd = official.tree.getroot()
    ns = {"xs": XS_NS}
    elements = xsd.xpath("xs:complexType[@name='SubGHzConfiguration']/xs:sequence/xs:element",
                         namespaces=ns)
    assert [e.get("name") for e in elements[:4]] == [m.element for m in codes.CHANNEL_MASKS]
    for element, mask in zip(elements[:4], codes.CHANNEL_MASKS, strict=True):
        type_name = element.get("type").split(":")[1]
        channels = xsd.xpath(f"xs:complexType[@name='{type_name}']/xs:sequence/xs:element/@name",
                             namespaces=ns)
        assert channels == [f"Channel{n}" for n in mask.channels]


def test_channel_mask_rules() -> None:
    lower0 = "LowerBandSubGHzChannels0To26"
    assert codes.channel_mask_violations({lower0: {1, 2}}) == []
    assert codes.channel_mask_violations({lower0: set()}) == []  # page not used
    assert [c for c, _ in codes.channel_mask_violations({lower0: {5}})] == ["E062802"]
    assert codes.channel_mask_violations({"UpperBandSubGHzChannels0To26": {5}}) == []
    assert [c for c, _ in codes.channel_mask_violations({lower0: {27, 28}})] == ["E062801"]
    with pytest.raises(KeyError):
        codes.channel_mask_violations({"Channels": {1}})


def test_dcc_alert_codes_match_the_xsd(official: DuisSchema) -> None:
    xsd = official.tree.getroot()
    ns = {"xs": XS_NS}
    enumerated = xsd.xpath(
        "xs:complexType[@name='DCCAlertMessage']//xs:element[@name='DCCAlertCode']"
        "//xs:enumeration/@value", namespaces=ns)
    assert list(alerts.DCC_ALERT_CODES) == list(enumerated)
    assert len(alerts.DCC_ALERT_CODES) == 66 and "N32" not in alerts.DCC_ALERT_CODES
    bodies = xsd.xpath("xs:complexType[@name='DCCAlert']/xs:choice/xs:element/@name",
                       namespaces=ns)
    assert list(alerts.ALERT_BODIES) == list(bodies)
    assert {a.body for a in alerts.DCC_ALERT_CODES.values()} == set(bodies)


def test_throttling_fields_match_the_xsd(official: DuisSchema) -> None:
    xsd = official.tree.getroot()
    for message in alerts.THROTTLED_MESSAGES:
        names = xsd.xpath(f"xs:complexType[@name='{message}']/xs:sequence/xs:element/@name",
                          namespaces={"xs": XS_NS})
        fields = [f.element for f in alerts.THROTTLING_FIELDS]
        assert [n for n in names if n in fields] == fields, message


def test_dcc_alert_catalogue_entries() -> None:
    ad1 = alerts.dcc_alert_code("AD1")
    assert ad1.body == "PowerOutageEvent" and ad1.name == "Power Outage Event"
    assert "three minutes" in (ad1.trigger or "")
    assert dt.timedelta(minutes=3) == alerts.POWER_OUTAGE_MIN_DURATION
    assert alerts.body_for("N18") == "FirmwareDistributionFailure"
    assert alerts.codes_for("CSPFirmwareDeliveryStatus") == ("N60", "N61")
    assert alerts.body_for("N999") == "DUISVersionMismatch"
    assert alerts.dcc_alert_code("N7").name is None  # no invented names
    assert alerts.dcc_alert_code("N7").description == alerts.ALERT_BODIES["CommandFailure"].trigger
    with pytest.raises(KeyError):
        alerts.dcc_alert_code("N32")
