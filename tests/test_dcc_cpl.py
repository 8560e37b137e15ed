"""gbhil.dcc.cpl: the Central Products List (seed 001) and the lookups firmware flows and
E57 (seed 003) rely on."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import tomllib
from pathlib import Path

import pytest

from gbhil.dcc.cpl import (
    GBCS_VERSION_MISMATCH,
    XSD_ACTIVE,
    AssuranceCertificate,
    CertificateKind,
    Cpl,
    CplEntry,
    CplError,
    CplStatus,
    DeviceModel,
    RemovalReason,
    gbcs_key,
    required_certificates,
    simulated_certificates,
)
from gbhil.dcc.inventory import DeviceType, InvalidValue
from gbhil.duis.schema import DuisSchema, load_schema

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CONFORMANCE = Path(os.environ.get("GBHIL_CONFORMANCE", SHARED / "conformance"))
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ESME_MODEL = DeviceModel("GBH1", "ESME-1", "1.0")
HASH_A = bytes(range(32))
HASH_B = bytes(range(1, 33))


@pytest.fixture(scope="session")
def duis_dir() -> Path:
    path = CONFORMANCE / "duis"
    if not (path / "schema").is_dir():
        pytest.skip(f"DUIS conformance data not found at {path} (checkout ../shared)")
    return path


@pytest.fixture(scope="session")
def seeds() -> Path:
    path = SHARED / "seeds"
    if not path.is_dir():
        pytest.skip(f"seeds not found at {path} (checkout ../shared)")
    return path


@pytest.fixture(scope="session")
def schema(duis_dir: Path) -> DuisSchema:
    return load_schema(folder=duis_dir / "schema")


@pytest.fixture
def cpl() -> Cpl:
    return Cpl(now=lambda: NOW)


def esme_entry(firmware: str = "01000000", *, gbcs: tuple[str, ...] = ("4.0",),
               ts: tuple[str, ...] = ("SMETS V5.0",), firmware_hash: bytes | None = HASH_A,
               ) -> CplEntry:
    return CplEntry(DeviceType.ESME, ESME_MODEL, firmware, gbcs, ts, firmware_hash=firmware_hash,
                    certificates=simulated_certificates(DeviceType.ESME))


# --- structure of an entry (seed 001 §4.1) ------------------------------------------------


@pytest.mark.parametrize(("device_type", "expected"), [
    (DeviceType.ESME, {CertificateKind.CPA, CertificateKind.DLMS, CertificateKind.ZIGBEE}),
    (DeviceType.GSME, {CertificateKind.CPA, CertificateKind.ZIGBEE}),
    (DeviceType.CHF, {CertificateKind.CPA, CertificateKind.ZIGBEE}),
    (DeviceType.GPF, {CertificateKind.CPA, CertificateKind.ZIGBEE}),
    (DeviceType.HCALCS, {CertificateKind.CPA, CertificateKind.ZIGBEE}),
    (DeviceType.PPMID, {CertificateKind.ZIGBEE}),
    (DeviceType.IHD, {CertificateKind.ZIGBEE}),
    (DeviceType.CAD, {CertificateKind.ZIGBEE}),
])
def test_required_certificates_follow_seed_001(device_type: DeviceType,
                                               expected: set[CertificateKind]) -> None:
    assert required_certificates(device_type) == expected


def test_smets2_entry_without_its_certificates_is_refused(cpl: Cpl) -> None:
    certs = tuple(c for c in simulated_certificates(DeviceType.ESME)
                  if c.kind is not CertificateKind.DLMS)
    entry = CplEntry(DeviceType.ESME, ESME_MODEL, "01000000", ("4.0",), (), certificates=certs)
    with pytest.raises(CplError, match="DLMS"):
        cpl.add(entry)
    assert cpl.entries() == []


def test_smets1_entry_needs_no_assurance_certificates(cpl: Cpl) -> None:
    entry = cpl.add(CplEntry(DeviceType.ESME, DeviceModel("S1", "OLD"), "0001", (), (),
                             smets1=True))
    assert entry.smets1 and entry.is_current


def test_type_2_entry_has_no_firmware_version(cpl: Cpl) -> None:
    model = DeviceModel("GBH1", "IHD-1")
    with pytest.raises(InvalidValue):
        CplEntry(DeviceType.IHD, model, "0001", ("4.0",), ())
    entry = cpl.add(CplEntry(DeviceType.IHD, model, None, ("4.0",), (),
                             certificates=simulated_certificates(DeviceType.IHD)))
    assert cpl.entry_for(model, None) == entry
    assert cpl.model_listed(model)


@pytest.mark.parametrize("bad", ["", "123456789"])
def test_firmware_version_must_fit_the_duis_type(bad: str) -> None:
    with pytest.raises(InvalidValue):
        esme_entry(bad)


def test_firmware_hash_is_32_octets() -> None:
    with pytest.raises(InvalidValue):
        esme_entry(firmware_hash=b"\x00" * 31)


def test_added_entry_reads_back_equal(cpl: Cpl) -> None:
    expiry = dt.date(2030, 1, 1)
    certs = (AssuranceCertificate(CertificateKind.CPA, "CPA-1", expiry),
             AssuranceCertificate(CertificateKind.DLMS, "DLMS-1"),
             AssuranceCertificate(CertificateKind.ZIGBEE, "ZB-1"))
    entry = CplEntry(DeviceType.ESME, ESME_MODEL, "01000000", ("3.2", "4.0"),
                     ("SMETS V5.0",), HASH_A, certificates=certs)
    stored = cpl.add(entry)
    assert stored.entry_id > 0 and stored.added_at == NOW
    assert (stored.device_model, stored.firmware_version, stored.gbcs_versions,
            stored.technical_specifications, stored.firmware_hash) == (
        ESME_MODEL, "01000000", ("3.2", "4.0"), ("SMETS V5.0",), HASH_A)
    assert {c.reference for c in stored.certificates} == {"CPA-1", "DLMS-1", "ZB-1"}
    assert stored.latest_gbcs_version == "4.0"


# --- entries cannot be amended; Current -> Removed only (seed 001 §4.4) ----------------------


def test_identical_entry_cannot_be_listed_twice(cpl: Cpl) -> None:
    cpl.add(esme_entry())
    with pytest.raises(CplError, match="identical"):
        cpl.add(esme_entry())
    assert len(cpl.entries()) == 1


def test_new_gbcs_version_is_a_new_entry(cpl: Cpl) -> None:
    first = cpl.add(esme_entry(gbcs=("3.2",)))
    second = cpl.add(esme_entry(gbcs=("4.0",)))
    assert first.entry_id != second.entry_id
    assert cpl.entry_for(ESME_MODEL, "01000000") == second


def test_entries_cannot_be_amended_in_the_database(cpl: Cpl) -> None:
    entry = cpl.add(esme_entry())
    amend = "UPDATE cpl_entry SET firmware_version = '02' WHERE entry_id = ?"
    with pytest.raises(sqlite3.DatabaseError, match="cannot be amended"), \
            cpl.transaction() as conn:
        conn.execute(amend, (entry.entry_id,))
    with pytest.raises(sqlite3.DatabaseError, match="never deleted"), cpl.transaction() as conn:
        conn.execute("DELETE FROM cpl_entry")
    assert cpl.entry(entry.entry_id) == entry


def test_removal_is_final_and_keeps_a_reason(cpl: Cpl) -> None:
    entry = cpl.add(esme_entry())
    removed = cpl.remove(entry.entry_id, RemovalReason.EXPIRED)
    assert removed.status is CplStatus.REMOVED
    assert removed.xsd_status == "Expired"
    assert removed.removed_at == NOW
    with pytest.raises(CplError):
        cpl.remove(entry.entry_id)
    with pytest.raises(sqlite3.DatabaseError, match="stays Removed"), cpl.transaction() as conn:
        conn.execute("UPDATE cpl_entry SET status = 'Current'")
    assert cpl.entry(entry.entry_id).status is CplStatus.REMOVED


# --- lookups used by firmware flows -----------------------------------------------------------


def test_entry_for_prefers_current_then_newest(cpl: Cpl) -> None:
    old = cpl.add(esme_entry(gbcs=("3.2",)))
    new = cpl.add(esme_entry(gbcs=("4.0",)))
    cpl.remove(new.entry_id)
    assert cpl.entry_for(ESME_MODEL, "01000000") == cpl.entry(old.entry_id)
    cpl.remove(old.entry_id)
    assert cpl.entry_for(ESME_MODEL, "01000000") == cpl.entry(new.entry_id)
    assert cpl.entry_for(ESME_MODEL, "99") is None


def test_empty_hardware_version_matches_any(cpl: Cpl) -> None:
    cpl.add(esme_entry())
    assert cpl.entry_for(DeviceModel("GBH1", "ESME-1"), "01000000") is not None
    assert cpl.entry_for(DeviceModel("GBH1", "ESME-1", "2.0"), "01000000") is None


def test_firmware_status_current_removed_absent(cpl: Cpl) -> None:
    entry = cpl.add(esme_entry("0A"))
    cpl.add(esme_entry("0B"))
    cpl.remove(entry.entry_id)
    assert cpl.firmware_status(ESME_MODEL, "0A") is CplStatus.REMOVED
    assert cpl.firmware_status(ESME_MODEL, "0B") is CplStatus.CURRENT
    assert cpl.firmware_status(ESME_MODEL, "0C") is None


def test_model_status_in_xsd_words(cpl: Cpl) -> None:
    assert cpl.model_status(ESME_MODEL) is None
    entry = cpl.add(esme_entry())
    assert cpl.model_status(ESME_MODEL) == XSD_ACTIVE
    cpl.remove(entry.entry_id, RemovalReason.CANCELLED)
    assert cpl.model_status(ESME_MODEL) == "Cancelled"


def test_hash_check(cpl: Cpl) -> None:
    entry = cpl.add(esme_entry(firmware_hash=HASH_A))
    assert cpl.firmware_hash(ESME_MODEL, "01000000") == HASH_A
    assert cpl.hash_matches(ESME_MODEL, "01000000", HASH_A)
    assert not cpl.hash_matches(ESME_MODEL, "01000000", HASH_B)
    assert not cpl.hash_matches(ESME_MODEL, "02000000", HASH_A)
    cpl.remove(entry.entry_id)
    assert not cpl.hash_matches(ESME_MODEL, "01000000", HASH_A)


@pytest.mark.parametrize(("text", "key"), [
    ("4.0", (4, 0)), ("v3.2", (3, 2)), ("GBCS v4.0", (4, 0)), (" 1.0 ", (1, 0)), ("4.2", (4, 2)),
])
def test_gbcs_key(text: str, key: tuple[int, ...]) -> None:
    assert gbcs_key(text) == key


def test_gbcs_key_refuses_garbage() -> None:
    with pytest.raises(InvalidValue):
        gbcs_key("four")


def test_gbcs_version_mismatch_is_e57(cpl: Cpl) -> None:
    cpl.add(esme_entry(gbcs=("3.2",)))
    assert GBCS_VERSION_MISMATCH == "E57"
    assert cpl.gbcs_problem(ESME_MODEL, "01000000", at_least="3.2") is None
    assert cpl.gbcs_problem(ESME_MODEL, "01000000", at_least="4.0") == "E57"
    assert cpl.gbcs_problem(ESME_MODEL, "01000000", below="3.2") == "E57"
    assert cpl.gbcs_problem(ESME_MODEL, "01000000", accepted=["v3.2"]) is None
    assert cpl.gbcs_problem(ESME_MODEL, "01000000", accepted=["1.0", "2.0"]) == "E57"
    # no entry, no GBCS version pertains: never compatible
    assert cpl.gbcs_problem(ESME_MODEL, "FF") == "E57"


def test_expiring_certificates(cpl: Cpl) -> None:
    soon = dt.date(2026, 9, 1)
    entry = cpl.add(CplEntry(DeviceType.PPMID, DeviceModel("GBH1", "PPMID-1"), "01", ("4.0",),
                             (), certificates=simulated_certificates(DeviceType.PPMID, soon)))
    cpl.add(esme_entry())
    found = cpl.expiring_certificates(dt.date(2027, 3, 1))
    assert [(e.entry_id, c.kind) for e, c in found] == [(entry.entry_id, CertificateKind.ZIGBEE)]
    assert cpl.expiring_certificates(dt.date(2026, 3, 1)) == []


def test_entries_from_device_profiles() -> None:
    """The identity tables of gbhil's simulated device models become CPL entries."""
    cpl = Cpl(now=lambda: NOW)
    for name, device_type in (("esme", DeviceType.ESME), ("gsme", DeviceType.GSME),
                              ("chf", DeviceType.CHF), ("gpf", DeviceType.GPF)):
        identity = tomllib.loads((ROOT / "devices" / f"{name}.toml").read_text())["identity"]
        entry = CplEntry.from_identity(identity, device_type=device_type,
                                       certificates=simulated_certificates(device_type))
        stored = cpl.add(entry)
        model = DeviceModel(str(identity["manufacturer"]), str(identity["model"]))
        assert cpl.entry_for(model, str(identity["firmware_version"])) == stored
        assert stored.gbcs_versions == (str(identity["gbcs_version"]),)


def test_cpl_persists_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "cpl.sqlite"
    with Cpl(path, now=lambda: NOW) as cpl:
        cpl.add(esme_entry())
        mode = cpl._rows("PRAGMA journal_mode")[0][0]
    assert mode == "wal"
    with Cpl(path, now=lambda: NOW) as again:
        assert again.firmware_status(ESME_MODEL, "01000000") is CplStatus.CURRENT


def test_status_words_are_xsd_cpl_statuses(schema: DuisSchema) -> None:
    allowed = set(schema.enumeration("CPLStatus"))
    assert allowed == set(schema.enumeration("FirmwareVersionStatus"))
    assert {XSD_ACTIVE, *map(str, RemovalReason)} == allowed


def test_seed_001_names_the_entry_contents(seeds: Path) -> None:
    """The CPL model here is the one seed 001 describes (ties the code to its source)."""
    text = next(seeds.glob("001_*")).read_text()
    for phrase in ("Status which may be", "Commercial Product Assurance (CPA)",
                   "Only required for Single/Twin/Polyphase Electricity",
                   "Existing CPL entries cannot be amended"):
        assert phrase in text
