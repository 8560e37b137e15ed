"""gbhil.duis.schema: secure parsing, the official V5.4 XSD read from ../shared, the MAPID
overlay. Conformance data is read in place and never copied."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gbhil.duis import schema as duis_schema
from gbhil.duis.schema import (
    DEFAULT_SCHEMA_VERSION,
    SCHEMA_SETS,
    XS_NS,
    DuisError,
    DuisForbiddenError,
    DuisParseError,
    DuisSchema,
    DuisTooLargeError,
    DuisValidationError,
    OverlayError,
    SchemaNotFoundError,
    SchemaSet,
    apply_overlay,
    load_schema,
    parse_xml,
    register_schema_set,
)

SR = "{http://www.dccinterface.co.uk/ServiceUserGateway}"
MAIN_XSD = "DUIS Schema V5.4.xsd"

VALID_SAMPLES = [
    "CS02aMAC_6.24.1_SUCCESS_REQUEST_DUIS.XML",
    "ECS01a_1.1.1_IMMEDIATE_BLOCK_SUCCESS_REQUEST_DUIS.XML",
    "ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS-nonexist-businessid.XML",
    "ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS-signed.XML",
    "ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS.XML",
    "ECS50_9.1_SUCCESS_REQUEST_DUIS.XML",
    "GCS13a_4.1.1_SUCCESS_RELIABLE_GSME_REQUEST_DUIS.XML",
    "acknowledgement-error.xml",
    "message.xml",
    "message2.xml",
    "read-inventory-response-4g.xml",
    "read-inventory-response-5.4.xml",
    "readfw-response-badsignature.xml",
    "readfw-response-no-serial.xml",
    "readfw-response-no-signature.xml",
    "readfw-response-nonexist-serial.xml",
    "readfw-response-resigned.xml",
    "readfw-response.xml",
]


@pytest.fixture(scope="session")
def duis_dir(conformance_dir: Path) -> Path:
    path = conformance_dir / "duis"
    if not (path / "schema" / MAIN_XSD).is_file():
        pytest.skip(f"DUIS conformance data not found at {path}")
    return path


@pytest.fixture(scope="session")
def schema(duis_dir: Path) -> DuisSchema:
    return load_schema(DEFAULT_SCHEMA_VERSION, duis_dir / "schema")


@pytest.fixture(scope="session")
def official(duis_dir: Path) -> DuisSchema:
    return load_schema("5.4", duis_dir / "schema")


def _template(duis_dir: Path, name: str) -> bytes:
    return (duis_dir / "templates" / name).read_bytes()


# --- Templates and samples ------------------------------------------------------------------


def test_every_template_validates(
    duis_dir: Path, schema: DuisSchema, official: DuisSchema, record_property
) -> None:
    templates = sorted((duis_dir / "templates").glob("*.XML"))
    assert templates, "no templates found"
    failures: dict[str, str] = {}
    for path in templates:
        tree = parse_xml(path.read_bytes())
        for compiled in (official, schema):
            issues = compiled.issues(tree)
            if issues:
                failures[f"{compiled.version}:{path.name}"] = str(issues[0])
    record_property("duis_templates_validated", len(templates))
    assert not failures, f"{len(failures)} of {len(templates)} templates invalid: {failures}"
    assert len(templates) == 228  # the project's subset (README), all valid


@pytest.mark.parametrize("name", VALID_SAMPLES)
def test_valid_samples(duis_dir: Path, schema: DuisSchema, name: str) -> None:
    schema.validate(parse_xml((duis_dir / "samples" / name).read_bytes()))


def test_invalid_request_id_reports_line_and_xsd_message(
    duis_dir: Path, schema: DuisSchema
) -> None:
    data = (duis_dir / "samples" / "ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS-invalid.XML")
    with pytest.raises(DuisValidationError) as caught:
        schema.parse(data.read_bytes())
    issue = caught.value.issues[0]
    assert issue.line == 4
    assert "sr:RequestID" in issue.message and "pattern" in issue.message
    assert issue.path == "/sr:Request/sr:Header/sr:RequestID"
    assert str(caught.value).startswith("DUIS 5.4+mapid: line 4:")


def test_invalid_service_reference(duis_dir: Path, schema: DuisSchema) -> None:
    with pytest.raises(DuisValidationError) as caught:
        schema.parse((duis_dir / "samples" / "readfw-response-invalid.xml").read_bytes())
    assert any("11.2.11.2" in i.message for i in caught.value.issues)
    assert caught.value.line == 1  # the DCC writes the whole response on one line


def test_enumerations_from_the_xsd(schema: DuisSchema) -> None:
    assert len(schema.enumeration("ResponseCode")) == 194
    assert len(schema.enumeration("ServiceReferenceVariant")) == 129
    assert "E062802" in schema.enumeration("ResponseCode")
    with pytest.raises(KeyError):
        schema.enumeration("NoSuchType")


# --- Loading, caching, the registry ---------------------------------------------------------


def test_schema_is_compiled_once(duis_dir: Path) -> None:
    first = load_schema(folder=duis_dir / "schema")
    assert load_schema(folder=str(duis_dir / "schema")) is first
    assert first.version == DEFAULT_SCHEMA_VERSION


def test_official_xsd_is_never_modified(duis_dir: Path, official: DuisSchema) -> None:
    path = duis_dir / "schema" / MAIN_XSD
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    duis_schema.clear_schema_cache()
    load_schema(folder=duis_dir / "schema")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert b"MAPID" not in path.read_bytes()
    assert not official.tree.getroot().xpath("//xs:*[@name='MAPID']", namespaces={"xs": XS_NS})


def test_env_variable_points_at_the_folder(duis_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("GBHIL_DUIS_SCHEMA", str(duis_dir / "schema"))
    assert duis_schema.resolve_schema_folder() == (duis_dir / "schema").resolve()


def test_missing_folder_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(SchemaNotFoundError, match="does not exist"):
        load_schema(folder=tmp_path / "nowhere")
    with pytest.raises(SchemaNotFoundError, match="GBHIL_DUIS_SCHEMA"):
        load_schema(folder=tmp_path)  # exists but holds no XSD
    monkeypatch.setenv("GBHIL_DUIS_SCHEMA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("GBHIL_CONFORMANCE", str(tmp_path / "nowhere"))
    monkeypatch.setattr(duis_schema, "_REPO_ROOT", tmp_path / "a" / "b")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SchemaNotFoundError, match="set \\$GBHIL_DUIS_SCHEMA"):
        duis_schema.resolve_schema_folder()


def test_registry_is_keyed_by_version(duis_dir: Path) -> None:
    assert {"5.4", "5.4+mapid"} <= set(SCHEMA_SETS)
    with pytest.raises(ValueError, match="already registered"):
        register_schema_set(SchemaSet("5.4", MAIN_XSD))
    register_schema_set(SchemaSet("9.9-test", "DUIS Schema V9.9.xsd"))
    try:
        with pytest.raises(SchemaNotFoundError, match=r"V9\.9"):
            load_schema("9.9-test", duis_dir / "schema")
    finally:
        del SCHEMA_SETS["9.9-test"]
    with pytest.raises(KeyError, match="unknown DUIS schema set"):
        load_schema("0.0", duis_dir / "schema")


# --- MAPID overlay ----------------------------------------------------------------------------


def _prenotification(duis_dir: Path, device_type: str, extra: str, *, after: str) -> bytes:
    data = _template(duis_dir, "12.2_DEVICE_PRE_NOTIFICATION_REQUEST_DUIS.XML")
    data = data.replace(b"<sr:DeviceType>ESME</sr:DeviceType>",
                        f"<sr:DeviceType>{device_type}</sr:DeviceType>".encode())
    anchor = f"</sr:{after}>".encode()
    assert anchor in data
    return data.replace(anchor, anchor + extra.encode(), 1)


@pytest.mark.parametrize("value", ["A", "AB12", "UKN", "zz9Z", "0000"])
def test_mapid_accepted_in_12_2(duis_dir: Path, schema: DuisSchema, official: DuisSchema,
                                value: str) -> None:
    doc = parse_xml(_prenotification(duis_dir, "ESME", f"<sr:MAPID>{value}</sr:MAPID>",
                                     after="DeviceType"))
    schema.validate(doc)
    assert not official.is_valid(doc)  # the official V5.4 set knows no MAPID


@pytest.mark.parametrize("value", ["", "ABCDE", "A-1", "A B", "É", "12345"])
def test_mapid_rejects_bad_values(duis_dir: Path, schema: DuisSchema, value: str) -> None:
    doc = parse_xml(_prenotification(duis_dir, "GSME", f"<sr:MAPID>{value}</sr:MAPID>",
                                     after="DeviceType"))
    with pytest.raises(DuisValidationError, match="MAPID"):
        schema.validate(doc)


def test_mapid_position_in_12_2_is_after_device_type(duis_dir: Path, schema: DuisSchema) -> None:
    wrong = parse_xml(_prenotification(duis_dir, "ESME", "<sr:MAPID>AB12</sr:MAPID>",
                                       after="SMETSCHTSVersion"))
    assert not schema.is_valid(wrong)


def test_mapid_is_an_update_inventory_alternative(duis_dir: Path, schema: DuisSchema,
                                                  official: DuisSchema) -> None:
    tree = parse_xml(_template(duis_dir, "8.4_UPDATE_INVENTORY_REQUEST_DUIS.XML"))
    update = tree.getroot().find(f"{SR}Body/{SR}UpdateInventory")
    assert update is not None
    for child in list(update)[1:]:
        update.remove(child)
    etree.SubElement(update, f"{SR}MAPID").text = "M4P1"
    schema.validate(tree)
    assert not official.is_valid(tree)
    etree.SubElement(update, f"{SR}DeleteDevice")  # "one and only one of these items"
    assert not schema.is_valid(tree)


def test_mapid_in_read_inventory_response(duis_dir: Path, schema: DuisSchema) -> None:
    tree = parse_xml((duis_dir / "samples" / "read-inventory-response-5.4.xml").read_bytes())
    device = tree.getroot().find(f".//{SR}Device")
    assert device is not None
    etree.SubElement(device, f"{SR}MAPID").text = "UKN"
    schema.validate(tree)
    device[-1].text = "Unknown"  # 7 characters: the type cannot hold it
    assert not schema.is_valid(tree)


def _official_tree(duis_dir: Path) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.parse(str(duis_dir / "schema" / MAIN_XSD), parser).getroot()


def _overlay(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "overlay.xsd"
    path.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway" '
        'xmlns:ov="urn:gbhil:duis:overlay" '
        'targetNamespace="http://www.dccinterface.co.uk/ServiceUserGateway">' + body
        + "</xs:schema>"
    )
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('<xs:element ov:after="xs:complexType[@name=\'Nope\']" name="X" type="xs:string"/>',
         "exactly one"),
        ('<xs:simpleType name="EUI"><xs:restriction base="xs:string"/></xs:simpleType>',
         "already exists"),
        ('<xs:element ov:into="xs:complexType[" name="X" type="xs:string"/>', "bad XPath"),
        ('<xs:element ov:before="xs:schema" name="X" type="xs:string"/>', "unknown"),
    ],
)
def test_overlay_errors(duis_dir: Path, tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(OverlayError, match=message):
        apply_overlay(_official_tree(duis_dir), _overlay(tmp_path, body))


def test_overlay_refuses_a_prefix_clash(duis_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "clash.xsd"
    path.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:sr="urn:other" '
        'targetNamespace="http://www.dccinterface.co.uk/ServiceUserGateway"/>'
    )
    with pytest.raises(OverlayError, match="prefix 'sr'"):
        apply_overlay(_official_tree(duis_dir), path)


# --- Secure parsing ---------------------------------------------------------------------------


def test_xxe_sample_is_refused(duis_dir: Path) -> None:
    with pytest.raises(DuisForbiddenError, match="DOCTYPE") as caught:
        parse_xml((duis_dir / "samples" / "duis-xxe.xml").read_bytes())
    assert "root:" not in str(caught.value)


@pytest.mark.parametrize(
    "doc",
    [
        b'<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>',
        b'<!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>',
        b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><r/>',
        b"<!DOCTYPE r><r/>",
    ],
)
def test_any_doctype_is_refused(doc: bytes) -> None:
    with pytest.raises(DuisForbiddenError):
        parse_xml(doc)


def test_undefined_entity_is_a_parse_error() -> None:
    with pytest.raises(DuisParseError, match="not well-formed"):
        parse_xml(b"<r>&xxe;</r>")


def test_ill_formed_xml_reports_position() -> None:
    with pytest.raises(DuisParseError) as caught:
        parse_xml(b"<r>\n<a></b>\n</r>")
    assert caught.value.line == 2


@pytest.mark.parametrize("data", [b"", b"   ", "", b"\x00\x01"])
def test_empty_or_binary_input(data: bytes | str) -> None:
    with pytest.raises(DuisParseError):
        parse_xml(data)


def test_body_cap() -> None:
    doc = b"<r>" + b"x" * 1000 + b"</r>"
    assert parse_xml(doc, max_bytes=len(doc)).getroot().tag == "r"
    with pytest.raises(DuisTooLargeError, match="limit is"):
        parse_xml(doc, max_bytes=len(doc) - 1)
    with pytest.raises(DuisTooLargeError):
        parse_xml(b" " * (duis_schema.DEFAULT_MAX_BODY_BYTES + 1))


def test_maximal_firmware_image_parses_and_validates(duis_dir: Path, schema: DuisSchema) -> None:
    """SR 11.1 allows 10 240 000 octets: over libxml2's default 10 MB text-node limit."""
    tree = parse_xml(_template(duis_dir, "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML"))
    image = tree.getroot().find(f".//{SR}FirmwareImage")
    assert image is not None
    image.text = "AAAA" * (10_240_000 // 3) + "AA=="  # exactly 10 240 000 octets
    data = etree.tostring(tree)
    assert len(data) > duis_schema.HUGE_TREE_THRESHOLD
    schema.validate(parse_xml(data))
    image.text = "AAAA" * (10_240_000 // 3 + 1)  # 10 240 002 octets
    with pytest.raises(DuisValidationError, match="FirmwareImage"):
        schema.validate(parse_xml(etree.tostring(tree)))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_parser_raises_only_its_own_errors_on_random_bytes(data: bytes) -> None:
    with contextlib.suppress(DuisError):
        parse_xml(data)


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_parser_raises_only_its_own_errors_on_random_text(text: str) -> None:
    with contextlib.suppress(DuisError):
        parse_xml("<r>" + text + "</r>")


def test_parser_never_loads_external_files(tmp_path: Path) -> None:
    """Regression: libxml2 opens SYSTEM files once a document with entity declarations was
    parsed, despite load_dtd=False; the parser's deny-all resolver must answer instead."""
    dtd = tmp_path / "leak.dtd"
    dtd.write_text('<!ENTITY e "SECRET">')
    parser = duis_schema._parser(False)
    etree.fromstring(b'<!DOCTYPE r [<!ENTITY a "x">]><r>&a;</r>', parser)  # the trigger
    doc = etree.fromstring(f'<!DOCTYPE r SYSTEM "{dtd.as_uri()}"><r>&e;</r>'.encode(), parser)
    external = doc.getroottree().docinfo.externalDTD
    assert external is None or not list(external.entities())  # leak.dtd was never read


def test_utf16_doctype_is_refused() -> None:
    doc = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r><r/>'.encode("utf-16")
    with pytest.raises(DuisForbiddenError):
        parse_xml(doc)
