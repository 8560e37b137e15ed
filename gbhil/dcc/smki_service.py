"""The SMKI repository service, the way DCC Boxed serves it on port 8083.

DCC Boxed implements the SEC Appendix M certificate search and retrieve interface; the
client that SmartDCCInnovation/dccboxed-keystore uses (``BoxedKeyStore``) calls:

* ``POST /services/certificatesearch`` with ``<CertificateSearchRequest>`` holding
  ``CertificateSubjectName`` (an organisation's EUI) or ``CertificateSubjectAltName`` (a
  device's EUI), answered by ``<CertificateSearchResponse>`` with one ``Result`` per
  certificate (serial in hex, usage DS/KA, status, role for organisations);
* ``POST /services/retrievecertificate`` with ``<CertificateDataRequest>`` holding a
  ``CertificateSerial``, answered by ``<CertificateDataResponse>`` whose
  ``CertificateResponse/CertificateBody`` is the DER certificate in base64.

Both answer ``application/xml``; nothing found is HTTP 402 and a malformed query HTTP 401,
as that client expects. An ``apikey`` query parameter is accepted and ignored.

For people and scripts there is also ``GET /certificates/{serial}`` (PEM, or DER with
``?format=der``; serial in hex or decimal) and ``GET /certificates?eui=...`` (JSON list).
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gbhil.duis.model import DuisModelError, format_eui
from gbhil.duis.schema import DuisError, parse_xml
from gbhil.smki import KeyStore, certificate_eui, certificate_role, certificate_usage

#: DCC Boxed's SMKI port (duis-facts 2.1).
DEFAULT_SMKI_PORT = 8083
SEARCH_PATH = "/services/certificatesearch"
RETRIEVE_PATH = "/services/retrievecertificate"
MAX_QUERY_BYTES = 64 * 1024
#: Certificate status letters of the SMKI interface.
STATUS_IN_USE = "I"
STATUS_EXPIRED = "E"
#: HTTP statuses the dccboxed-keystore client understands.
NOT_FOUND_STATUS = 402
BAD_QUERY_STATUS = 401
XML_CONTENT_TYPE = "application/xml"


@dataclass(frozen=True, slots=True)
class SmkiCertificate:
    """One certificate the repository serves."""

    certificate: x509.Certificate
    eui: str
    usage: str
    role: int | None

    @property
    def serial_hex(self) -> str:
        return f"{self.certificate.serial_number:X}"

    @property
    def is_device(self) -> bool:
        return self.role is None

    def status(self, at: dt.datetime) -> str:
        return STATUS_EXPIRED if at > self.certificate.not_valid_after_utc else STATUS_IN_USE


class SmkiRepository:
    """Certificates by serial and by EUI, from key stores and extra certificates."""

    def __init__(
        self, certificates: Iterable[x509.Certificate], now: Callable[[], dt.datetime]
    ) -> None:
        self.now = now
        self._by_serial: dict[int, SmkiCertificate] = {}
        self._by_eui: dict[str, list[SmkiCertificate]] = {}
        for cert in certificates:
            self.add(cert)

    @classmethod
    def from_keystores(
        cls,
        stores: Iterable[KeyStore],
        now: Callable[[], dt.datetime],
        extra: Iterable[x509.Certificate] = (),
    ) -> SmkiRepository:
        certs = (e.certificate for store in stores for e in store if e.certificate is not None)
        return cls(itertools.chain(certs, extra), now)

    def add(self, cert: x509.Certificate) -> None:
        if cert.serial_number in self._by_serial:
            return
        eui = certificate_eui(cert)
        usage = certificate_usage(cert)
        if eui is None or usage is None:
            return  # CA certificates and oddities are not served
        entry = SmkiCertificate(
            cert, format_eui(eui), str(usage).upper()[:2], certificate_role(cert)
        )
        self._by_serial[cert.serial_number] = entry
        self._by_eui.setdefault(entry.eui, []).append(entry)

    def by_serial(self, serial: int) -> SmkiCertificate | None:
        return self._by_serial.get(serial)

    def by_eui(self, eui: str, *, device: bool | None = None) -> list[SmkiCertificate]:
        found = self._by_eui.get(format_eui(eui), [])
        return [c for c in found if device is None or c.is_device == device]

    def __iter__(self) -> Iterator[SmkiCertificate]:
        return iter(self._by_serial.values())

    def __len__(self) -> int:
        return len(self._by_serial)


# --- XML ------------------------------------------------------------------------------------------


def _xml(root: etree._Element) -> web.Response:
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
    return web.Response(body=body, content_type=XML_CONTENT_TYPE, charset="utf-8")


def _head(root: etree._Element) -> None:
    etree.SubElement(root, "ResponseCode").text = "200"
    etree.SubElement(root, "ResponseMessage").text = "Success"


def _describe(parent: etree._Element, cert: SmkiCertificate, at: dt.datetime) -> None:
    name = "CertificateSubjectAltName" if cert.is_device else "CertificateSubjectName"
    etree.SubElement(parent, name).text = cert.eui
    etree.SubElement(parent, "CertificateSerial").text = cert.serial_hex
    etree.SubElement(parent, "CertificateStatus").text = cert.status(at)


def _tail(parent: etree._Element, cert: SmkiCertificate) -> None:
    if not cert.is_device:
        etree.SubElement(parent, "CertificateRole").text = str(cert.role)
    etree.SubElement(parent, "CertificateUsage").text = cert.usage
    etree.SubElement(parent, "ManufacturingFlag").text = "false"


def search_response(found: Iterable[SmkiCertificate], at: dt.datetime) -> etree._Element:
    root = etree.Element("CertificateSearchResponse")
    _head(root)
    for cert in found:
        result = etree.SubElement(root, "Result")
        _describe(result, cert, at)
        _tail(result, cert)
    return root


def retrieve_response(cert: SmkiCertificate, at: dt.datetime) -> etree._Element:
    root = etree.Element("CertificateDataResponse")
    _head(root)
    response = etree.SubElement(root, "CertificateResponse")
    _describe(response, cert, at)
    der = cert.certificate.public_bytes(serialization.Encoding.DER)
    etree.SubElement(response, "CertificateBody").text = base64.b64encode(der).decode("ascii")
    _tail(response, cert)
    return root


def _query(body: bytes, root_name: str) -> etree._Element | None:
    try:
        root = parse_xml(body, max_bytes=MAX_QUERY_BYTES).getroot()
    except DuisError:
        return None
    return root if etree.QName(root).localname == root_name else None


def _child_text(root: etree._Element, local: str) -> str | None:
    for child in root:
        if isinstance(child.tag, str) and etree.QName(child).localname == local:
            return (child.text or "").strip()
    return None


def parse_serial(text: str) -> int | None:
    """A serial as the interface writes it (hex), or decimal when it cannot be hex."""
    value = text.strip()
    if not value:
        return None
    try:
        return int(value, 16)
    except ValueError:
        return int(value) if value.isdigit() else None


def build_app(repository: SmkiRepository) -> web.Application:
    """The SMKI service application (see the module docstring)."""
    app = web.Application(client_max_size=MAX_QUERY_BYTES)

    async def search(request: web.Request) -> web.Response:
        root = _query(await request.read(), "CertificateSearchRequest")
        if root is None:
            return web.Response(status=BAD_QUERY_STATUS, text="invalid search parameters")
        org, device = (
            _child_text(root, "CertificateSubjectName"),
            _child_text(root, "CertificateSubjectAltName"),
        )
        if (org is None) == (device is None):
            return web.Response(status=BAD_QUERY_STATUS, text="name one subject")
        try:
            found = repository.by_eui(org or device or "", device=device is not None)
        except DuisModelError:
            return web.Response(status=BAD_QUERY_STATUS, text="not an EUI-64")
        if not found:
            return web.Response(status=NOT_FOUND_STATUS, text="no certificate")
        return _xml(search_response(found, repository.now()))

    async def retrieve(request: web.Request) -> web.Response:
        root = _query(await request.read(), "CertificateDataRequest")
        serial = (
            None if root is None else parse_serial(_child_text(root, "CertificateSerial") or "")
        )
        if serial is None:
            return web.Response(status=BAD_QUERY_STATUS, text="invalid search parameters")
        cert = repository.by_serial(serial)
        if cert is None:
            return web.Response(status=NOT_FOUND_STATUS, text="no certificate")
        return _xml(retrieve_response(cert, repository.now()))

    async def get_certificate(request: web.Request) -> web.Response:
        serial = parse_serial(request.match_info["serial"])
        cert = None if serial is None else repository.by_serial(serial)
        if cert is None:
            raise web.HTTPNotFound(text="no certificate")
        if request.query.get("format", "pem").lower() == "der":
            return web.Response(
                body=cert.certificate.public_bytes(serialization.Encoding.DER),
                content_type="application/pkix-cert",
            )
        return web.Response(
            body=cert.certificate.public_bytes(serialization.Encoding.PEM),
            content_type="application/x-pem-file",
        )

    async def list_certificates(request: web.Request) -> web.Response:
        eui = request.query.get("eui")
        try:
            found = list(repository) if eui is None else repository.by_eui(eui)
        except DuisModelError:
            raise web.HTTPBadRequest(text="not an EUI-64") from None
        at = repository.now()
        return web.json_response(
            [
                {
                    "eui": c.eui,
                    "serial": c.serial_hex,
                    "usage": c.usage,
                    "role": c.role,
                    "status": c.status(at),
                    "device": c.is_device,
                }
                for c in found
            ]
        )

    app.router.add_post(SEARCH_PATH, search)
    app.router.add_post(RETRIEVE_PATH, retrieve)
    app.router.add_get("/certificates/{serial}", get_certificate)
    app.router.add_get("/certificates", list_certificates)
    return app


class SmkiService:
    """Runs the SMKI application on a host and port (0 picks a free port)."""

    def __init__(
        self, repository: SmkiRepository, *, host: str = "127.0.0.1", port: int = DEFAULT_SMKI_PORT
    ) -> None:
        self.repository = repository
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(build_app(self.repository), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        if self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
