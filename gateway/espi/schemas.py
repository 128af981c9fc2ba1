"""Schema registry: compiled XML Schemas for Green Button documents, loaded offline.

Three schema sets are known (see :class:`SchemaVersion`):

- ``"ours"``: the gateway's own schemas in ``espi_schemas/`` (NAESB REQ.21 ESPI resources in
  ``espi.xsd``, the RFC 4287 Atom envelope in ``atom.xsd``, entry point ``greenbutton.xsd``). They ship
  with the package as ``gateway._espi_schemas`` and are found in a source checkout at ``<repo>/espi_schemas``.
  They accept no more than the official ESPI 4.0 schema does, and check more: one resource per
  ``atom:content``, one id/title/published/updated per entry, zoned dates, closed code lists for the
  records the Data Custodian writes.
- ``"4.0"`` and ``"3.3"``: the official NAESB ESPI schemas with the Green Button Alliance Atom schema,
  reference material that is not distributed with the gateway. They are looked up in the directory named by
  ``GATEWAY_OFFICIAL_XSD_DIR``, else ``../shared/espi/xsd`` next to the repository (layout ``4.0/espi.xsd``,
  ``4.0/atom.xsd``, ``3.3/usage.xsd``, ``3.3/atom.xsd``, ``xml.xsd``).

Every schema is compiled at most once per process (compiled schemas may be shared between threads) with a
parser that never touches the network and a resolver that serves each ``xs:import`` from the same local set:
the official Atom schema imports the W3C ``xml.xsd`` by URL, which is mapped to the local copy. A reference
to anything outside the set raises :class:`SchemaUnavailableError` instead of being fetched.
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Final, Literal
from urllib.parse import urlsplit

from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # no stubs unless lxml-stubs

__all__ = [
    "OFFICIAL_XSD_DIR_ENV",
    "SchemaUnavailableError",
    "SchemaVersion",
    "SchemaVersionLike",
    "load_schema",
    "official_schema_dir",
    "official_schemas_available",
    "our_schema_dir",
    "validation_errors",
]


class SchemaVersion(enum.StrEnum):
    """Which schema set to validate against."""

    OURS = "ours"
    """The gateway's own schemas (``espi_schemas/``): stricter than the official ones, always available."""
    ESPI_4_0 = "4.0"
    """NAESB REQ.21 ESPI 4.0 (``espi.xsd`` 4.0.20231213) and the GBA Atom schema (``link/@type`` optional)."""
    ESPI_3_3 = "3.3"
    """NAESB REQ.21 ESPI 3.3 (``usage.xsd``) and that release's GBA Atom schema (``link/@type`` required)."""


SchemaVersionLike = SchemaVersion | Literal["ours", "4.0", "3.3"]
"""A :class:`SchemaVersion` or its string value."""

OFFICIAL_XSD_DIR_ENV: Final = "GATEWAY_OFFICIAL_XSD_DIR"
"""Environment variable naming the directory of the official schemas."""

_PACKAGE_RESOURCE: Final = "gateway._espi_schemas"
"""Where an installed wheel carries ``espi_schemas/`` (mapped by the build configuration)."""

_REPO_ROOT: Final = Path(__file__).resolve().parents[2]

# Hosts and paths under which the W3C publishes the schema of the xml: namespace. Both spellings are in use:
# the GBA Atom schemas import https://www.w3.org/2001/03/xml.xsd, most others http://www.w3.org/2001/xml.xsd.
_W3C_HOSTS: Final = frozenset({"www.w3.org", "w3.org"})
_W3C_XML_XSD_PATHS: Final = frozenset({"/2001/xml.xsd", "/2001/03/xml.xsd", "/XML/1998/namespace"})


class SchemaUnavailableError(FileNotFoundError):
    """A schema set, or a document it imports, cannot be found locally."""


@dataclass(frozen=True, slots=True)
class _SchemaSet:
    """The local documents of one schema set.

    ``documents`` maps the file name used in ``schemaLocation`` to the document. Names are unique within a
    set, so a relative import is served by its last path segment whatever base URL it was resolved against.
    """

    entry: str
    documents: Mapping[str, Traversable]


def our_schema_dir() -> Traversable:
    """The directory holding the gateway's own schemas.

    An installed package carries them as package data ``gateway._espi_schemas``; a source checkout (or an
    editable install) has them at ``<repo>/espi_schemas``.

    Raises:
        SchemaUnavailableError: neither location holds ``greenbutton.xsd``.
    """
    try:
        packaged = resources.files(_PACKAGE_RESOURCE)
    except ModuleNotFoundError:
        packaged = None
    if packaged is not None and packaged.joinpath("greenbutton.xsd").is_file():
        return packaged
    checkout = _REPO_ROOT / "espi_schemas"
    if (checkout / "greenbutton.xsd").is_file():
        return checkout
    raise SchemaUnavailableError(
        f"the gateway's ESPI schemas are missing: neither package data {_PACKAGE_RESOURCE} nor {checkout}"
    )


def official_schema_dir() -> Path:
    """The directory expected to hold the official ESPI schemas (it may not exist).

    ``$GATEWAY_OFFICIAL_XSD_DIR`` when set, else ``../shared/espi/xsd`` relative to the repository root.
    """
    configured = os.environ.get(OFFICIAL_XSD_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return (_REPO_ROOT.parent / "shared" / "espi" / "xsd").resolve()


_OFFICIAL_LAYOUT: Final[Mapping[SchemaVersion, tuple[str, Mapping[str, str]]]] = {
    SchemaVersion.ESPI_4_0: (
        "espi.xsd",
        {"espi.xsd": "4.0/espi.xsd", "atom.xsd": "4.0/atom.xsd", "xml.xsd": "xml.xsd"},
    ),
    SchemaVersion.ESPI_3_3: (
        "usage.xsd",
        {"usage.xsd": "3.3/usage.xsd", "atom.xsd": "3.3/atom.xsd", "xml.xsd": "xml.xsd"},
    ),
}

_OUR_DOCUMENTS: Final = ("greenbutton.xsd", "atom.xsd", "espi.xsd", "xml.xsd")


def official_schemas_available() -> bool:
    """Whether all files of the official 4.0 and 3.3 sets are present (see :func:`official_schema_dir`)."""
    base = official_schema_dir()
    return all((base / rel).is_file() for _, layout in _OFFICIAL_LAYOUT.values() for rel in layout.values())


def _schema_set(version: SchemaVersion) -> _SchemaSet:
    """Locate the documents of ``version``; raise :class:`SchemaUnavailableError` if any is missing."""
    if version is SchemaVersion.OURS:
        base: Traversable = our_schema_dir()
        return _SchemaSet("greenbutton.xsd", {name: base.joinpath(name) for name in _OUR_DOCUMENTS})
    entry, layout = _OFFICIAL_LAYOUT[version]
    official = official_schema_dir()
    missing = [rel for rel in layout.values() if not (official / rel).is_file()]
    if missing:
        raise SchemaUnavailableError(
            f"official ESPI {version.value} schemas not found at {official} (missing {', '.join(missing)}); "
            f"set {OFFICIAL_XSD_DIR_ENV}"
        )
    return _SchemaSet(entry, {name: official / rel for name, rel in layout.items()})


def _is_w3c_xml_schema(url: str) -> bool:
    """Whether ``url`` names the W3C schema of the xml: namespace (XML 1.0 §2.10, §2.12; XML Base)."""
    parts = urlsplit(url)
    return parts.scheme in {"http", "https"} and parts.hostname in _W3C_HOSTS and parts.path in _W3C_XML_XSD_PATHS


class _LocalSchemaResolver(etree.Resolver):  # type: ignore[misc, unused-ignore]  # Any without lxml-stubs
    """Serve every document a schema imports from its local set; refuse everything else.

    Relative ``schemaLocation`` values reach us already resolved against the importing document's base URL,
    so they are matched by file name. A refused URL is recorded in :attr:`refused` and answered with a
    placeholder that is not a schema, so compilation fails without libxml2 trying the URL itself. (Raising
    here would not help: lxml keeps a resolver's exception and raises it at the parser's next use.)
    """

    _PLACEHOLDER: Final = b"<refused-by-gateway-schema-resolver/>"

    def __init__(self, schema_set: _SchemaSet) -> None:
        super().__init__()
        self._set = schema_set
        self.refused: list[str] = []

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> object:
        """Return the local document for ``system_url`` (an lxml resolver hook)."""
        document = self._lookup(system_url or "")
        if document is None:
            self.refused.append(system_url or repr(public_id))
            return self.resolve_string(self._PLACEHOLDER, context)
        return self.resolve_string(document.read_bytes(), context, base_url=_base_url(document))

    def _lookup(self, system_url: str) -> Traversable | None:
        if _is_w3c_xml_schema(system_url):
            return self._set.documents.get("xml.xsd")
        parts = urlsplit(system_url)
        # A Windows drive letter parses as a one-letter scheme; anything longer is a real URL scheme.
        if not system_url or (len(parts.scheme) > 1 and parts.scheme != "file"):
            return None
        return self._set.documents.get(PurePosixPath(parts.path.replace("\\", "/")).name)


def _base_url(document: Traversable) -> str:
    """A base URL for ``document``: its file path when it has one, so that errors name the real file."""
    return str(document) if isinstance(document, Path) else f"{_PACKAGE_RESOURCE}/{document.name}"


def _compile_set(schema_set: _SchemaSet) -> etree.XMLSchema:
    """Compile ``schema_set`` from its own documents, with a parser that never touches the network.

    Raises:
        SchemaUnavailableError: a document of the set imports something outside it.
        lxml.etree.XMLSchemaParseError: the documents do not compile.
    """
    resolver = _LocalSchemaResolver(schema_set)
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(resolver)
    entry = schema_set.documents[schema_set.entry]
    root = etree.fromstring(entry.read_bytes(), parser, base_url=_base_url(entry))
    try:
        schema = etree.XMLSchema(root)
    except etree.XMLSchemaParseError as exc:
        if resolver.refused:
            raise SchemaUnavailableError(_refusal(resolver.refused)) from exc
        raise
    # libxml2 may merely warn about an import it could not use: never hand out a partial schema.
    if resolver.refused:
        raise SchemaUnavailableError(_refusal(resolver.refused))
    return schema


def _refusal(urls: list[str]) -> str:
    return f"schema imports refused, only the local schema set is used: {', '.join(urls)}"


def _compile(version: SchemaVersion) -> etree.XMLSchema:
    """Compile the schema set of ``version`` from local files only."""
    return _compile_set(_schema_set(version))


# Compiled schemas by version. The lock makes each compile happen once even when threads race on first use.
_compiled: dict[SchemaVersion, etree.XMLSchema] = {}
_compile_lock = threading.Lock()
# An XMLSchema object keeps one error log for all its callers: reading it is only safe under a lock.
_validation_locks: Final = {version: threading.Lock() for version in SchemaVersion}


def load_schema(version: SchemaVersionLike = SchemaVersion.OURS) -> etree.XMLSchema:
    """The compiled schema of ``version``, compiled on first use and then shared by the whole process.

    ``"ours"`` accepts Atom feeds and entries of ESPI resources (NAESB REQ.21 ESPI, RFC 4287) and the bare
    documents the gateway serves or posts (ServiceStatus, BatchList, Authorization, ApplicationInformation).
    ``"4.0"`` and ``"3.3"`` are the official schemas, for conformance checks.

    ``validate()`` on the returned object is safe from any thread, but its ``error_log`` is shared by every
    caller: use :func:`validation_errors` to get the errors of one document.

    Raises:
        ValueError: ``version`` is not a known schema version.
        SchemaUnavailableError: the schema files cannot be found locally (for the official sets:
            see :func:`official_schema_dir`).
        lxml.etree.XMLSchemaParseError: the schema documents do not compile.
    """
    key = SchemaVersion(version)
    schema = _compiled.get(key)
    if schema is None:
        with _compile_lock:
            schema = _compiled.get(key)
            if schema is None:
                schema = _compiled[key] = _compile(key)
    return schema


def validation_errors(
    document: etree._ElementTree | etree._Element, version: SchemaVersionLike = SchemaVersion.OURS
) -> list[etree._LogEntry]:
    """The schema errors of ``document`` against ``version`` (empty when valid), safe to call from threads.

    Each entry has ``line``, ``column``, ``path`` and ``message``. Parse untrusted input with a hardened
    parser first (no network, no entities, no DTD): validation does not protect the parser.
    """
    key = SchemaVersion(version)
    schema = load_schema(key)
    with _validation_locks[key]:
        if schema.validate(document):
            return []
        return list(schema.error_log)
