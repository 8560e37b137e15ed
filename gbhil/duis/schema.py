"""Secure DUIS parsing and XSD validation against the official schema, read at run time.

The official DUIS XSD is GPL data published by Smart DCC: gbhil never ships it. A rig or
user points at a folder holding it (``$GBHIL_DUIS_SCHEMA``, or ``../shared/conformance/
duis/schema`` next to the repository); each schema *set* in :data:`SCHEMA_SETS` names the
main file in that folder plus gbhil's own overlays (``gbhil/duis/overlay/*.xsd``), which are
applied to the parsed XSD tree in memory so the official text is never edited. A set is
compiled once per folder and cached.

Inbound XML is untrusted: :func:`parse_xml` caps the body size, never resolves entities,
never touches the network and refuses any DOCTYPE outright (the XXE guard the DCC Boxed
Java tool applies with ``disallow-doctype-decl``).
"""

from __future__ import annotations

import copy
import functools
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from lxml import etree

# --- Namespaces ---------------------------------------------------------------------------

SR_NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
RA_NS = "http://www.dccinterface.co.uk/ResponseAndAlert"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XS_NS = "http://www.w3.org/2001/XMLSchema"
OVERLAY_NS = "urn:gbhil:duis:overlay"

#: Prefixes used when gbhil prints element names (errors) and builds messages.
PREFIXES: dict[str, str] = {SR_NS: "sr", RA_NS: "ra", DS_NS: "ds", XS_NS: "xs"}

# --- Limits and locations ------------------------------------------------------------------

#: Default cap on an inbound body. SR 11.1 allows a 10 240 000-octet firmware image, i.e.
#: about 13.65 MB of base64 text; 16 MiB leaves room for the envelope and nothing more.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Above this size libxml2 needs XML_PARSE_HUGE (a text node over 10 MB); below it the
#: parser keeps libxml2's default hardening limits.
HUGE_TREE_THRESHOLD = 8 * 1024 * 1024

#: Environment variable naming the folder that holds the official DUIS XSD files.
SCHEMA_ENV = "GBHIL_DUIS_SCHEMA"
#: Environment variable naming the shared conformance folder (also used by the tests).
CONFORMANCE_ENV = "GBHIL_CONFORMANCE"
#: Location of the schema folder relative to a conformance folder.
SCHEMA_SUBDIR = Path("duis") / "schema"

OVERLAY_DIR = Path(__file__).resolve().parent / "overlay"
_REPO_ROOT = Path(__file__).resolve().parents[2]


# --- Errors ----------------------------------------------------------------------------------


class DuisError(Exception):
    """Base of every error raised by :mod:`gbhil.duis`."""


class SchemaNotFoundError(DuisError):
    """The official XSD folder (or a file in it) is missing; the message says where to point."""


class OverlayError(DuisError):
    """A gbhil overlay does not apply cleanly to the official XSD (target missing, clash)."""


class DuisParseError(DuisError):
    """Inbound bytes are not an acceptable XML document (ill-formed, too big, DOCTYPE)."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        self.line = line
        self.column = column
        where = f"line {line}" + (f", column {column}" if column else "") if line else ""
        super().__init__(f"{where}: {message}" if where else message)


class DuisTooLargeError(DuisParseError):
    """The body exceeds the configured size cap (checked before any parsing)."""


class DuisForbiddenError(DuisParseError):
    """The document declares a DOCTYPE (DTDs and entities are refused: XXE guard)."""


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One XSD violation: where it is and libxml2's message, element names shortened."""

    line: int
    column: int
    message: str
    path: str | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class DuisValidationError(DuisError):
    """The document is well-formed but not valid against the schema set."""

    def __init__(self, issues: Iterable[SchemaIssue], *, schema_version: str):
        self.issues: tuple[SchemaIssue, ...] = tuple(issues)
        self.schema_version = schema_version
        first = self.issues[0] if self.issues else SchemaIssue(0, 0, "invalid")
        more = f" (+{len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        super().__init__(f"DUIS {schema_version}: {first}{more}")

    @property
    def line(self) -> int:
        return self.issues[0].line if self.issues else 0


def shorten_names(message: str) -> str:
    """``{http://…ServiceUserGateway}RequestID`` -> ``sr:RequestID`` (readable errors)."""
    for ns, prefix in PREFIXES.items():
        message = message.replace("{" + ns + "}", prefix + ":")
    return message


# --- Secure parsing ---------------------------------------------------------------------------

_local = threading.local()

#: "<!DOCTYPE" in every encoding libxml2 detects without a declaration: refused before the
#: parser sees it (a DOCTYPE inside a comment is refused too; DUIS never has one).
_DOCTYPE_MARKERS = tuple(
    "<!DOCTYPE".encode(codec)
    for codec in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)


class _DenyResolver(etree.Resolver):
    """Answers every external DTD/entity load with nothing. Belt and braces: after lxml
    has parsed one document declaring entities with ``resolve_entities=False``, libxml2
    2.14 opens ``SYSTEM`` files even with ``load_dtd=False`` (seen with lxml 6.1)."""

    def resolve(self, system_url: str, public_id: str | None, context: object) -> object:
        return self.resolve_string("", context)


def _parser(huge: bool) -> etree.XMLParser:
    """Per-thread parsers (lxml parsers must not be shared across threads)."""
    key = "huge" if huge else "normal"
    parser = getattr(_local, key, None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=huge,
            remove_comments=False,
            collect_ids=False,
        )
        parser.resolvers.add(_DenyResolver())
        setattr(_local, key, parser)
    return parser


def _as_bytes(data: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"expected bytes or str, got {type(data).__name__}")


def parse_xml(
    data: bytes | bytearray | memoryview | str, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> etree._ElementTree:
    """Parse untrusted DUIS XML; raises only :class:`DuisParseError` (and subclasses).

    No entity is ever expanded, no file or URL is ever fetched, and a DOCTYPE anywhere in
    the prolog is refused even when it declares nothing, because a DUIS message never
    needs one. ``max_bytes`` is checked before parsing starts.
    """
    raw = _as_bytes(data)
    if len(raw) > max_bytes:
        raise DuisTooLargeError(f"body is {len(raw)} bytes, the limit is {max_bytes}")
    if not raw.strip():
        raise DuisParseError("empty document")
    if any(marker in raw for marker in _DOCTYPE_MARKERS):
        raise DuisForbiddenError(
            "DOCTYPE declarations are not allowed in DUIS messages (DTD/entity/XXE guard)"
        )
    try:
        tree = etree.ElementTree(etree.fromstring(raw, _parser(len(raw) > HUGE_TREE_THRESHOLD)))
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (None, None)
        raise DuisParseError(f"not well-formed XML: {exc.msg}", line=line, column=column) from None
    except (ValueError, LookupError, UnicodeError, MemoryError, etree.LxmlError) as exc:
        raise DuisParseError(f"not acceptable XML: {exc}") from None
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise DuisForbiddenError(
            "DOCTYPE declarations are not allowed in DUIS messages (DTD/entity/XXE guard)"
        )
    for node in tree.getroot().iter(etree.Entity):  # unexpanded entity references
        raise DuisForbiddenError(f"entity reference {node.text} is not allowed")
    return tree


# --- Schema sets -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchemaSet:
    """One DUIS version: the official main XSD file name plus gbhil overlay files."""

    version: str
    main: str
    overlays: tuple[Path, ...] = ()
    description: str = ""


#: The registry, keyed by version string; :func:`register_schema_set` adds more.
SCHEMA_SETS: dict[str, SchemaSet] = {}

#: What the emulator validates against unless told otherwise: a superset of official
#: V5.4 (every V5.4 document stays valid), accepting MAP IDs where SECMP0011 puts them.
DEFAULT_SCHEMA_VERSION = "5.4+mapid"


def register_schema_set(schema_set: SchemaSet, *, replace: bool = False) -> SchemaSet:
    """Make a DUIS version loadable by name; refuses to overwrite unless ``replace``."""
    if schema_set.version in SCHEMA_SETS and not replace:
        raise ValueError(f"schema set {schema_set.version!r} is already registered")
    SCHEMA_SETS[schema_set.version] = schema_set
    _compile.cache_clear()
    return schema_set




def schema_folder_candidates() -> list[Path]:
    """Where :func:`resolve_schema_folder` looks, in order (for error messages too)."""
    found: list[Path] = []
    if os.environ.get(SCHEMA_ENV):
        found.append(Path(os.environ[SCHEMA_ENV]))
    if os.environ.get(CONFORMANCE_ENV):
        found.append(Path(os.environ[CONFORMANCE_ENV]) / SCHEMA_SUBDIR)
    for base in (_REPO_ROOT, Path.cwd()):
        candidate = base.parent / "shared" / "conformance" / SCHEMA_SUBDIR
        if candidate not in found:
            found.append(candidate)
    return found


def resolve_schema_folder(folder: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the official XSD: ``folder`` if given, else the first existing
    candidate of :func:`schema_folder_candidates`."""
    if folder is not None:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise SchemaNotFoundError(f"DUIS schema folder {path} does not exist")
        return path.resolve()
    candidates = schema_folder_candidates()
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise SchemaNotFoundError(
        f"no DUIS schema folder found (tried {tried}); set ${SCHEMA_ENV} to the folder "
        "holding 'DUIS Schema V5.4.xsd' or put it in the rig config (gbhil never ships it)"
    )


class _FolderResolver(etree.Resolver):
    """Serves xs:import targets from the schema folder only (names may contain spaces)."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def resolve(self, system_url: str, public_id: str | None, context: object) -> object:
        if not system_url:
            return None
        parsed = urlparse(system_url)
        if parsed.scheme not in ("", "file"):
            raise OverlayError(f"schema import {system_url!r} is not a local file")
        candidate = self.folder / Path(unquote(parsed.path)).name
        if candidate.is_file():
            return self.resolve_filename(str(candidate), context)
        raise SchemaNotFoundError(f"schema import {system_url!r} not found in {self.folder}")


def _schema_parser(folder: Path) -> etree.XMLParser:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    parser.resolvers.add(_FolderResolver(folder))
    return parser


def apply_overlay(schema_root: etree._Element, overlay_path: Path) -> None:
    """Apply one gbhil overlay file to a parsed XSD tree, in place.

    An overlay is an ``xs:schema`` in the main schema's target namespace. Each child is
    copied into the main tree: with ``ov:after="XPATH"`` right after the single node the
    XPath (``xs:`` prefix, relative to the main ``xs:schema``) selects, with
    ``ov:into="XPATH"`` as that node's last child, and with neither as a new global
    definition, which must not clash with an existing one. Prefixes must mean the same in
    both files, because QName values such as ``type="sr:MAPID"`` are resolved in place.
    """
    try:
        overlay = etree.parse(str(overlay_path), _schema_parser(overlay_path.parent)).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise OverlayError(f"{overlay_path}: cannot read overlay: {exc}") from None
    if overlay.tag != f"{{{XS_NS}}}schema":
        raise OverlayError(f"{overlay_path}: root must be xs:schema")
    target_ns = schema_root.get("targetNamespace")
    if overlay.get("targetNamespace") != target_ns:
        raise OverlayError(f"{overlay_path}: targetNamespace differs from {target_ns}")
    for prefix, uri in overlay.nsmap.items():
        if prefix in schema_root.nsmap and schema_root.nsmap[prefix] != uri:
            raise OverlayError(f"{overlay_path}: prefix {prefix!r} means {uri}, not "
                               f"{schema_root.nsmap[prefix]}")
        if prefix not in schema_root.nsmap and uri != OVERLAY_NS:
            raise OverlayError(f"{overlay_path}: prefix {prefix!r} is not declared by the XSD")
    ns = {"xs": XS_NS}
    after_attr, into_attr = f"{{{OVERLAY_NS}}}after", f"{{{OVERLAY_NS}}}into"
    for child in overlay:
        if not isinstance(child.tag, str):
            continue  # comments document the overlay; they are not copied
        new = copy.deepcopy(child)
        after, into = new.attrib.pop(after_attr, None), new.attrib.pop(into_attr, None)
        unknown = [a for a in new.attrib if a.startswith(f"{{{OVERLAY_NS}}}")]
        if unknown:
            raise OverlayError(f"{overlay_path}:{child.sourceline}: unknown {unknown[0]}")
        etree.cleanup_namespaces(new)
        if after is not None and into is not None:
            raise OverlayError(f"{overlay_path}:{child.sourceline}: ov:after and ov:into both set")
        xpath = after if after is not None else into
        if xpath is None:
            name = new.get("name")
            local = etree.QName(new).localname
            if name and schema_root.xpath(f"xs:{local}[@name=$n]", namespaces=ns, n=name):
                raise OverlayError(f"{overlay_path}: global {local} {name!r} already exists")
            schema_root.append(new)
            continue
        try:
            hits = schema_root.xpath(xpath, namespaces=ns)
        except etree.XPathError as exc:
            raise OverlayError(
                f"{overlay_path}:{child.sourceline}: bad XPath {xpath!r}: {exc}"
            ) from None
        if not isinstance(hits, list) or len(hits) != 1 or not isinstance(hits[0], etree._Element):
            count = len(hits) if isinstance(hits, list) else "no node-set"
            raise OverlayError(
                f"{overlay_path}:{child.sourceline}: {xpath!r} must select exactly one "
                f"element of the official XSD, got {count}"
            )
        target = hits[0]
        name = new.get("name")
        siblings = target.getparent() if after is not None else target
        if name and siblings is not None and siblings.xpath("xs:element[@name=$n]",
                                                            namespaces=ns, n=name):
            raise OverlayError(f"{overlay_path}: element {name!r} already exists there")
        if after is not None:
            new.tail = target.tail
            target.addnext(new)
        else:
            target.append(new)


# --- Compiled schema ----------------------------------------------------------------------------


class DuisSchema:
    """A compiled schema set: validate parsed documents, look up XSD enumerations."""

    def __init__(self, schema_set: SchemaSet, folder: Path, tree: etree._ElementTree):
        self.schema_set = schema_set
        self.folder = folder
        self.tree = tree
        try:
            self._xsd = etree.XMLSchema(tree)
        except etree.XMLSchemaParseError as exc:
            raise SchemaNotFoundError(
                f"{folder / schema_set.main}: cannot compile DUIS {schema_set.version}: {exc}"
            ) from None
        # One XMLSchema object keeps one error log: serialise validations.
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return self.schema_set.version

    def __repr__(self) -> str:
        return f"DuisSchema({self.version!r}, folder={str(self.folder)!r})"

    def issues(self, doc: etree._ElementTree | etree._Element) -> tuple[SchemaIssue, ...]:
        """Every violation in ``doc`` (empty when valid)."""
        with self._lock:
            try:
                ok = self._xsd.validate(doc)
            except etree.LxmlError as exc:  # e.g. unexpanded entities reach the validator
                return (SchemaIssue(0, 0, f"cannot validate: {exc}"),)
            if ok:
                return ()
            return tuple(
                SchemaIssue(e.line, e.column, shorten_names(e.message), e.path)
                for e in self._xsd.error_log
            )

    def validate(self, doc: etree._ElementTree | etree._Element) -> None:
        """Raise :class:`DuisValidationError` (line numbers + XSD messages) if invalid."""
        found = self.issues(doc)
        if found:
            raise DuisValidationError(found, schema_version=self.version)

    def is_valid(self, doc: etree._ElementTree | etree._Element) -> bool:
        return not self.issues(doc)

    def parse(
        self, data: bytes | bytearray | memoryview | str, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES
    ) -> etree._ElementTree:
        """:func:`parse_xml` then :meth:`validate`."""
        tree = parse_xml(data, max_bytes=max_bytes)
        self.validate(tree)
        return tree

    def enumeration(self, simple_type: str) -> tuple[str, ...]:
        """Values of a named ``xs:simpleType`` enumeration in the main XSD (e.g.
        ``ResponseCode``, ``ServiceReferenceVariant``), in schema order."""
        values = self.tree.getroot().xpath(
            "xs:simpleType[@name=$n]/xs:restriction/xs:enumeration/@value",
            namespaces={"xs": XS_NS},
            n=simple_type,
        )
        if not values:
            raise KeyError(f"no enumerated simpleType {simple_type!r} in DUIS {self.version}")
        return tuple(str(v) for v in values)


def _load_tree(schema_set: SchemaSet, folder: Path) -> etree._ElementTree:
    main = folder / schema_set.main
    if not main.is_file():
        raise SchemaNotFoundError(
            f"{main} not found: the folder must hold the official DUIS {schema_set.version} "
            f"XSD files (set ${SCHEMA_ENV})"
        )
    try:
        tree = etree.parse(str(main), _schema_parser(folder))
    except (OSError, etree.XMLSyntaxError) as exc:
        raise SchemaNotFoundError(f"{main}: cannot read: {exc}") from None
    root = tree.getroot()
    # libxml2 silently skips an xs:import whose schemaLocation holds a raw space
    # ("MMC Schema V5.4.xsd"); percent-encode it so the resolver above is asked.
    for imp in root.iter(f"{{{XS_NS}}}import", f"{{{XS_NS}}}include"):
        location = imp.get("schemaLocation")
        if location:
            imp.set("schemaLocation", quote(unquote(location), safe="/:"))
    for overlay in schema_set.overlays:
        apply_overlay(root, overlay)
    return tree


@functools.lru_cache(maxsize=16)
def _compile(version: str, folder: str) -> DuisSchema:
    try:
        schema_set = SCHEMA_SETS[version]
    except KeyError:
        known = ", ".join(sorted(SCHEMA_SETS))
        raise KeyError(f"unknown DUIS schema set {version!r} (known: {known})") from None
    path = Path(folder)
    return DuisSchema(schema_set, path, _load_tree(schema_set, path))


def load_schema(
    version: str = DEFAULT_SCHEMA_VERSION, folder: str | os.PathLike[str] | None = None
) -> DuisSchema:
    """The compiled schema set ``version`` from ``folder`` (see :func:`resolve_schema_folder`);
    compiled on first use, then cached per (version, folder)."""
    if folder is not None:
        return _compile(version, str(resolve_schema_folder(folder)))
    # The default folder search stats several paths; every parsed message asks for the
    # default schema, so remember the answer per (version, environment, working folder).
    key = (version, os.environ.get(SCHEMA_ENV), os.environ.get(CONFORMANCE_ENV), os.getcwd())
    schema = _DEFAULT_SCHEMAS.get(key)
    if schema is None:
        schema = _compile(version, str(resolve_schema_folder(None)))
        _DEFAULT_SCHEMAS[key] = schema
    return schema


_DEFAULT_SCHEMAS: dict[tuple[str, str | None, str | None, str], DuisSchema] = {}


def clear_schema_cache() -> None:
    """Forget compiled schemas (after the folder's content or the registry changed)."""
    _compile.cache_clear()
    _DEFAULT_SCHEMAS.clear()


# --- Built-in schema sets ------------------------------------------------------------------

register_schema_set(
    SchemaSet("5.4", "DUIS Schema V5.4.xsd", (), "official DUIS V5.4 XSD, untouched")
)
register_schema_set(
    SchemaSet(
        "5.4+mapid",
        "DUIS Schema V5.4.xsd",
        (OVERLAY_DIR / "mapid.xsd",),
        "DUIS V5.4 plus MAPID (SECMP0011) on SRV 12.2, 8.4 and the 8.2 response",
    )
)
