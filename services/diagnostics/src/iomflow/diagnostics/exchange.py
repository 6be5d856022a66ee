"""Exchanging the competency framework with other tools: 1EdTech CASE packages and spreadsheets.

Pure functions, no I/O: callers read and write the files.

CASE (Competencies and Academic Standards Exchange, 1EdTech, versions 1.0/1.1) is the format
registries of standards and competency frameworks speak (OpenSALT, CASE Network, CaSS). A
framework becomes one CFPackage: the CFDocument, one CFItem per group and per competency, and
``isChildOf`` CFAssociations (competency → group → document). What CASE has no field for travels
in ``extensions.iomflow`` (CASE 1.1 extensions), so our own export reads back unchanged, while a
package made by another tool still imports with the settings taken from a framework given as
``defaults``.

The spreadsheet is a ``;``-separated UTF-8 CSV, one row per competency, that Excel opens
as is (a byte order mark, CRLF line ends, decimal commas in weights).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from iomflow.diagnostics.domain import SCORED, Competency, Framework, Group
from iomflow.shared.contracts import Audience, Instrument, Theme

NAMESPACE = uuid.UUID("5b0f6c1e-2d57-4c8e-9a3b-7e41d2c9f806")
"""Fixed namespace of our CASE identifiers: uuid5(NAMESPACE, "<version>/<kind>/<code>")."""

EXTENSION = "iomflow"
"""Key of our data under ``extensions`` of the CFDocument and CFItems."""

FORMAT = 1
"""Version of the layout of ``extensions.iomflow``."""

GROUP_TYPE = "Группа компетенций"
COMPETENCY_TYPE = "Компетенция"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Default ``lastChangeDateTime``: a framework carries no date, and exports must be stable."""

CODE = re.compile(r"^[a-z][a-z0-9_]*$")

UNGROUPED = {"code": "ungrouped", "name": "Без группы"}
"""Where ``from_case`` puts competencies of a foreign package that have no group above them."""

# Audiences ↔ CASE ``educationLevel`` (the CEDS grade level codes CASE uses). Russian preschool
# education (ДОО, from infancy to 7 years, including the year before school) covers
# IT/PR/PK/KG; general education (школа) is grades 1–11; colleges (СПО) teach after grade 9 or 11
# and are postsecondary (PS). On import, TK counts as preschool, grade 12 as general, 13 as
# college; other codes (UG, AE, Other) say nothing about our audiences and are ignored.
EDUCATION_LEVELS: dict[Audience, tuple[str, ...]] = {
    Audience.PRESCHOOL: ("IT", "PR", "PK", "KG"),
    Audience.GENERAL: tuple(f"{grade:02d}" for grade in range(1, 12)),
    Audience.COLLEGE: ("PS",),
}
_AUDIENCE_OF_LEVEL: dict[str, Audience] = {
    **{level: audience for audience, levels in EDUCATION_LEVELS.items() for level in levels},
    "TK": Audience.PRESCHOOL,
    "12": Audience.GENERAL,
    "13": Audience.COLLEGE,
}

SETTINGS = (
    "levels",
    "instrument_weights",
    "required_instruments",
    "combination",
    "change_tolerance",
    "burnout",
)
"""Framework-wide settings CASE has no field for."""

_REQUIRED_SETTINGS = ("levels", "instrument_weights", "required_instruments", "burnout")

CSV_COLUMNS = (
    "code",
    "name",
    "group",
    "group_name",
    "description",
    "basis",
    "roles",
    "audiences",
    "themes",
    *(f"weight_{instrument.value}" for instrument in SCORED),
)
"""Columns of the spreadsheet, in order."""

_ROLES = ("teacher", "manager")

_CYRILLIC = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        (
            *("a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "i", "k", "l", "m", "n", "o"),
            *("p", "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e"),
            *("iu", "ia"),
        ),
        strict=True,
    )
)
"""Russian letters in Latin (the transliteration of Russian passports, ICAO 9303)."""


# --- common ----------------------------------------------------------------------------------


def normalise_code(raw: str, prefix: str = "c") -> str | None:
    """A code matching ``^[a-z][a-z0-9_]*$`` made from a human code such as ``DIG.1`` or
    ``ПК-1.2``: lowercased, Cyrillic transliterated, every other run of non-alphanumerics
    turned into ``_``, ``prefix_`` put first when it would not start with a letter; at most
    100 characters. A code that is already valid is kept as is; ``None`` when nothing is left.
    """
    raw = raw.strip()
    if CODE.match(raw) and len(raw) <= 100:
        return raw
    text = "".join(_CYRILLIC.get(ch, ch) for ch in raw.lower())
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    if not text:
        return None
    if not text[0].isalpha():
        text = f"{prefix}_{text}"
    return text[:100]


def _explain(exc: ValidationError) -> str:
    """A pydantic error as one line: ``where: what; where: what``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        what = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {what}" if where else what)
    return "; ".join(parts)


def _framework(data: Mapping[str, Any], source: str) -> Framework:
    """Validate a framework, its errors as a readable ``ValueError``."""
    try:
        return Framework.model_validate(data)
    except ValidationError as exc:
        raise ValueError(
            f"{source}: рамка не прошла проверку / invalid framework: {_explain(exc)}"
        ) from None


def _missing_settings(missing: Iterable[str]) -> ValueError:
    names = ", ".join(missing)
    return ValueError(
        f"Нет настроек рамки ({names}): в документе нет расширения iomflow, передайте рамку "
        f"defaults=, из которой взять уровни, веса инструментов и шкалу выгорания / "
        f"Framework settings missing ({names}): the document has no iomflow extensions; pass "
        f"defaults= with a framework to take the levels, instrument weights and burnout from"
    )


# --- CASE ------------------------------------------------------------------------------------


def _identifier(version: str, kind: str, code: str = "") -> str:
    return str(uuid.uuid5(NAMESPACE, f"{version}/{kind}/{code}"))


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def to_case(
    framework: Framework,
    *,
    base_uri: str | None = None,
    creator: str = "iomflow",
    adoption_status: str = "Adopted",
    changed_at: datetime | None = None,
) -> dict[str, Any]:
    """The framework as a CASE 1.1 CFPackage (readable by CASE 1.0 tools too).

    * ``CFDocument``: title, version, ``language`` ``ru``, ``caseVersion`` 1.1, the basis
      documents one per line in ``notes``, and ``extensions.iomflow`` with everything
      framework-wide that CASE has no field for: ``basis``, ``levels``, ``instrument_weights``,
      ``required_instruments``, ``combination``, ``change_tolerance``, ``burnout``.
    * One CFItem per group (``CFItemType`` «Группа компетенций», ``fullStatement`` its name,
      ``humanCodingScheme`` its code), then one per competency in the framework's order
      («Компетенция»; ``abbreviatedStatement`` the name and ``fullStatement`` the description,
      or ``fullStatement`` the name when there is no description; ``notes`` the basis;
      ``educationLevel`` from the audiences, see ``EDUCATION_LEVELS``; ``extensions.iomflow``
      with code, group, basis, roles, audiences, themes and weights).
    * ``isChildOf`` associations: each competency to its group, each group to the document,
      ``sequenceNumber`` the position under the parent.

    Identifiers are ``uuid5(NAMESPACE, "<version>/<kind>/<code>")``, so exporting the same
    version twice gives the same package. URIs are ``<base_uri>/CFItems/<id>`` (and so on,
    ``base_uri`` e.g. ``https://case.example.org/ims/case/v1p1``) or ``urn:uuid:<id>`` without
    a base. ``lastChangeDateTime`` is ``changed_at`` (UTC), by default the fixed ``EPOCH``.
    """
    version = framework.version
    changed = _timestamp(changed_at or EPOCH)

    def uri(kind: str, identifier: str) -> str:
        if base_uri is None:
            return f"urn:uuid:{identifier}"
        return f"{base_uri.rstrip('/')}/{kind}/{identifier}"

    def link(title: str, kind: str, identifier: str) -> dict[str, str]:
        return {"title": title, "identifier": identifier, "uri": uri(kind, identifier)}

    doc_id = _identifier(version, "document")
    doc_link = link(framework.title, "CFDocuments", doc_id)
    document: dict[str, Any] = {
        "identifier": doc_id,
        "uri": doc_link["uri"],
        "creator": creator,
        "title": framework.title,
        "lastChangeDateTime": changed,
        "language": "ru",
        "version": version,
        "caseVersion": "1.1",
        "adoptionStatus": adoption_status,
        "CFPackageURI": link(framework.title, "CFPackages", doc_id),
        "extensions": {
            EXTENSION: {
                "format": FORMAT,
                "basis": list(framework.basis),
                **framework.model_dump(mode="json", include=set(SETTINGS)),
            }
        },
    }
    if framework.basis:
        document["notes"] = "\n".join(framework.basis)

    items: list[dict[str, Any]] = []
    associations: list[dict[str, Any]] = []
    links: dict[tuple[str, str], dict[str, str]] = {}

    def child_of(
        kind: str, code: str, child: dict[str, str], parent: dict[str, str], n: int
    ) -> None:
        identifier = _identifier(version, f"isChildOf/{kind}", code)
        associations.append(
            {
                "identifier": identifier,
                "uri": uri("CFAssociations", identifier),
                "associationType": "isChildOf",
                "sequenceNumber": n,
                "originNodeURI": child,
                "destinationNodeURI": parent,
                "CFDocumentURI": doc_link,
                "lastChangeDateTime": changed,
            }
        )

    for n, group in enumerate(framework.groups, start=1):
        identifier = _identifier(version, "group", group.code)
        links[("group", group.code)] = link(group.name, "CFItems", identifier)
        items.append(
            {
                "identifier": identifier,
                "uri": uri("CFItems", identifier),
                "fullStatement": group.name,
                "humanCodingScheme": group.code,
                "listEnumeration": str(n),
                "CFItemType": GROUP_TYPE,
                "language": "ru",
                "CFDocumentURI": doc_link,
                "lastChangeDateTime": changed,
                "extensions": {EXTENSION: {"kind": "group", "code": group.code}},
            }
        )
        child_of("group", group.code, links[("group", group.code)], doc_link, n)

    positions: dict[str, int] = {}
    for competency in framework.competencies:
        n = positions[competency.group] = positions.get(competency.group, 0) + 1
        identifier = _identifier(version, "competency", competency.code)
        own = link(competency.name, "CFItems", identifier)
        item: dict[str, Any] = {
            "identifier": identifier,
            "uri": own["uri"],
            "fullStatement": competency.description or competency.name,
            "humanCodingScheme": competency.code,
            "listEnumeration": str(n),
            "CFItemType": COMPETENCY_TYPE,
            "educationLevel": [
                level for audience in competency.audiences for level in EDUCATION_LEVELS[audience]
            ],
            "language": "ru",
            "CFDocumentURI": doc_link,
            "lastChangeDateTime": changed,
            "extensions": {
                EXTENSION: {
                    "kind": "competency",
                    **competency.model_dump(
                        mode="json",
                        include={
                            "code",
                            "group",
                            "basis",
                            "roles",
                            "audiences",
                            "themes",
                            "weights",
                        },
                    ),
                }
            },
        }
        if competency.description:
            item["abbreviatedStatement"] = competency.name
        if competency.basis:
            item["notes"] = competency.basis
        items.append(item)
        child_of("competency", competency.code, own, links[("group", competency.group)], n)

    return {"CFDocument": document, "CFItems": items, "CFAssociations": associations}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _ours(node: Mapping[str, Any]) -> dict[str, Any]:
    """``extensions.iomflow`` of a CASE node, empty when absent."""
    extensions = node.get("extensions")
    own = extensions.get(EXTENSION) if isinstance(extensions, dict) else None
    return dict(own) if isinstance(own, dict) else {}


def _node(value: Any) -> str:
    """The identifier (or, from loose producers, URI) an association end points to."""
    if isinstance(value, dict):
        return _text(value.get("identifier")) or _text(value.get("uri"))
    return _text(value)


def _audiences(levels: Any) -> list[Audience]:
    found: set[Audience] = set()
    for level in levels if isinstance(levels, list) else []:
        code = _text(level).upper()
        code = code.zfill(2) if code.isdigit() else code
        if code in _AUDIENCE_OF_LEVEL:
            found.add(_AUDIENCE_OF_LEVEL[code])
    return [audience for audience in Audience if audience in found]


def _package(document: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The CFDocument, CFItems and CFAssociations of a package, their shape checked."""
    if isinstance(document, dict) and isinstance(document.get("CFPackage"), dict):
        document = document["CFPackage"]
    if not isinstance(document, dict) or not isinstance(document.get("CFDocument"), dict):
        raise ValueError(
            "Это не пакет CASE: нет объекта CFDocument / not a CASE package: no CFDocument object"
        )
    parts: dict[str, list[dict[str, Any]]] = {}
    for key in ("CFItems", "CFAssociations"):
        value = document.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ValueError(
                f"{key} должен быть списком объектов / {key} must be a list of objects"
            )
        parts[key] = value
    return document["CFDocument"], parts["CFItems"], parts["CFAssociations"]


def from_case(document: dict[str, Any], *, defaults: Framework | None = None) -> Framework:
    """A framework from a CASE CFPackage (JSON already parsed; a ``{"CFPackage": ...}``
    wrapper is accepted).

    Our own export reads back exactly, from its ``extensions.iomflow``. A package made by
    another tool needs ``defaults``, whose levels, instrument weights, required instruments,
    combination rule, tolerance and burnout scale the framework takes; ``defaults`` also fills
    settings missing from a partial extension. Without extensions:

    * groups are the items typed «Группа компетенций» and the parents of competencies;
      competencies are the items typed «Компетенция» and the other items with no children
      (the leaves of the tree), each in the group of its nearest group ancestor; leaves hanging
      right under the document go to a group ``ungrouped`` «Без группы»;
    * codes come from ``humanCodingScheme`` through ``normalise_code`` (``DIG.1`` → ``dig_1``;
      without one, from the identifier); names from ``abbreviatedStatement``, else
      ``fullStatement``; the description is ``fullStatement`` when there is an abbreviated one;
      the basis is ``notes``; audiences from ``educationLevel`` (``EDUCATION_LEVELS``), all of
      them when it says nothing; role teacher; no themes, no weights of its own;
    * version and title from the CFDocument (else from ``defaults``), the basis from the
      CFDocument's ``notes``, one document a line; order is the tree's (``sequenceNumber``).

    Raises ``ValueError`` with a readable message for a malformed package or invalid framework.
    """
    doc, items, associations = _package(document)
    doc_ext = _ours(doc)
    ours = bool(doc_ext)

    index: dict[str, int] = {}
    for i, item in enumerate(items):
        identifier = _text(item.get("identifier"))
        if not identifier:
            raise ValueError(
                f"CFItems[{i}]: нет identifier / CFItems[{i}]: the identifier is missing"
            )
        if identifier in index:
            raise ValueError(
                f"Идентификатор {identifier} повторяется в CFItems / duplicate item identifier"
            )
        index[identifier] = i
    for i, item in enumerate(items):
        address = _text(item.get("uri"))
        if address and address not in index:
            index[address] = i

    parent: dict[int, int | None] = {}
    sequence: dict[int, float] = {}
    for association in associations:
        if association.get("associationType") != "isChildOf":
            continue
        child = index.get(_node(association.get("originNodeURI")))
        if child is None or child in parent:
            continue
        parent[child] = index.get(_node(association.get("destinationNodeURI")))
        number = association.get("sequenceNumber")
        if isinstance(number, int | float) and not isinstance(number, bool):
            sequence[child] = float(number)
    children: dict[int | None, list[int]] = {}
    for i in range(len(items)):
        children.setdefault(parent.get(i), []).append(i)

    def kind(i: int) -> str:
        declared = _ours(items[i]).get("kind")
        if declared in ("group", "competency"):
            return str(declared)
        typed = _text(items[i].get("CFItemType"))
        if typed == GROUP_TYPE:
            return "group"
        if typed == COMPETENCY_TYPE:
            return "competency"
        return "group" if children.get(i) else "competency"

    kinds = [kind(i) for i in range(len(items))]

    order: list[int] = list(range(len(items)))
    if not ours:  # the tree's order: depth first, siblings by sequenceNumber, then position
        seen: set[int] = set()
        order = []

        def visit(i: int) -> None:
            if i in seen:
                return
            seen.add(i)
            order.append(i)
            for child in sorted(children.get(i, []), key=lambda c: (sequence.get(c, 1e18), c)):
                visit(child)

        roots = [i for i in range(len(items)) if parent.get(i) is None]
        for i in sorted(roots, key=lambda c: (sequence.get(c, 1e18), c)) + list(range(len(items))):
            visit(i)

    def code_of(i: int, prefix: str) -> str:
        item = items[i]
        declared = _ours(item).get("code")
        if isinstance(declared, str) and declared:
            return declared
        own = normalise_code(_text(item.get("humanCodingScheme")), prefix)
        return own or normalise_code(f"{prefix}_{_text(item.get('identifier'))}", prefix) or prefix

    def name_of(i: int) -> str:
        item = items[i]
        name = _text(item.get("abbreviatedStatement")) or _text(item.get("fullStatement"))
        if not name:
            raise ValueError(
                f"Элемент {_text(item.get('identifier'))}: нет ни abbreviatedStatement, ни "
                f"fullStatement / item has no statement to name it by"
            )
        return name

    def group_of(i: int) -> int | None:
        seen: set[int] = {i}
        up = parent.get(i)
        while up is not None and up not in seen:
            if kinds[up] == "group":
                return up
            seen.add(up)
            up = parent.get(up)
        return None

    def declared_group(i: int) -> bool:
        return _ours(items[i]).get("kind") == "group" or items[i].get("CFItemType") == GROUP_TYPE

    competency_items = [i for i in order if kinds[i] == "competency"]
    used_groups = {group_of(i) for i in competency_items}
    groups: list[dict[str, str]] = []
    group_code: dict[int, str] = {}
    for i in order:
        # a parent with no competencies under it (an upper level of a deep tree) is no group
        if kinds[i] != "group" or not (i in used_groups or declared_group(i)):
            continue
        code = code_of(i, "g")
        if code in group_code.values():
            raise ValueError(f"Код группы «{code}» повторяется / duplicate group code «{code}»")
        group_code[i] = code
        groups.append({"code": code, "name": name_of(i)})
    if None in used_groups and UNGROUPED["code"] not in group_code.values():
        groups.append(dict(UNGROUPED))

    competencies: list[dict[str, Any]] = []
    source: dict[str, str] = {}
    for i in competency_items:
        item = items[i]
        code = code_of(i, "c")
        where = _text(item.get("humanCodingScheme")) or _text(item.get("identifier"))
        if code in source:
            raise ValueError(
                f"Элементы «{source[code]}» и «{where}» дают один код компетенции «{code}» / "
                f"items give the same competency code"
            )
        source[code] = where
        up = group_of(i)
        own: dict[str, Any] = {
            "code": code,
            "name": name_of(i),
            "group": UNGROUPED["code"] if up is None else group_code[up],
            "description": (
                _text(item.get("fullStatement")) if _text(item.get("abbreviatedStatement")) else ""
            ),
            "basis": _text(item.get("notes")),
        }
        audiences = _audiences(item.get("educationLevel"))
        if audiences:
            own["audiences"] = audiences
        extension = _ours(item)
        own.update(
            {
                key: extension[key]
                for key in ("group", "basis", "roles", "audiences", "themes", "weights")
                if key in extension
            }
        )
        competencies.append(own)

    settings: dict[str, Any] = (
        defaults.model_dump(mode="json", include=set(SETTINGS)) if defaults else {}
    )
    settings.update({key: doc_ext[key] for key in SETTINGS if key in doc_ext})
    missing = [key for key in _REQUIRED_SETTINGS if key not in settings]
    if missing:
        raise _missing_settings(missing)
    version = _text(doc.get("version"))
    title = _text(doc.get("title"))
    if defaults is not None:
        version, title = version or defaults.version, title or defaults.title
    basis = doc_ext.get("basis")
    if not isinstance(basis, list):
        basis = [line.strip() for line in _text(doc.get("notes")).splitlines() if line.strip()]
    data = {
        "version": version,
        "title": title,
        "basis": basis,
        "groups": groups,
        "competencies": competencies,
        **settings,
    }
    return _framework(data, "CASE")


# --- spreadsheet ----------------------------------------------------------------------------


def _number(value: float) -> str:
    """A weight as Excel in a Russian locale reads a number: with a decimal comma."""
    return repr(float(value)).replace(".", ",")


def to_csv(framework: Framework) -> str:
    """The competencies as a spreadsheet: ``;``-separated, one row per competency under a
    header of ``CSV_COLUMNS``, lists joined with ``,``, per-competency weights with a decimal
    comma and empty when the competency keeps the framework's weight.

    The text starts with a byte order mark and ends lines with CRLF so that Excel opens it
    right: write it encoded as plain ``utf-8`` (not ``utf-8-sig``, the mark is already there).
    Framework-wide settings are not in the sheet; ``from_csv`` takes them from a framework.
    """
    names = {g.code: g.name for g in framework.groups}
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for c in framework.competencies:
        writer.writerow(
            [
                c.code,
                c.name,
                c.group,
                names[c.group],
                c.description,
                c.basis,
                ",".join(c.roles),
                ",".join(a.value for a in c.audiences),
                ",".join(t.value for t in c.themes),
                *(_number(c.weights[i]) if i in c.weights else "" for i in SCORED),
            ]
        )
    return "\ufeff" + out.getvalue()


def _listed(value: str, allowed: Iterable[str], column: str, row: str) -> list[str]:
    known = list(allowed)
    found = [part.strip() for part in value.split(",") if part.strip()]
    bad = [part for part in found if part not in known]
    if bad:
        raise ValueError(
            f"{row}: в столбце {column} неизвестные значения {', '.join(bad)}; "
            f"допустимы: {', '.join(known)}"
        )
    return found


def from_csv(text: str, defaults: Framework, *, version: str | None = None) -> Framework:
    """A framework whose competencies are the rows of a sheet made by ``to_csv`` (or edited in
    a spreadsheet: a byte order mark, CRLF, ``,`` or tab as the separator and decimal commas
    are accepted), everything framework-wide from ``defaults`` and its version from
    ``version`` when given.

    ``code``, ``name`` and ``group`` are required columns, the others may be left out;
    ``group`` must be one of the groups of ``defaults`` (a filled ``group_name`` renames the
    group); empty ``roles``/``audiences`` mean teacher/every audience. Rows are numbered as a
    spreadsheet shows them (the header is row 1); every error is a ``ValueError`` naming the row.
    """
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    first = lines[0] if lines else ""
    delimiter = ";" if ";" in first else ("\t" if "\t" in first else ("," if "," in first else ";"))
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if not rows:
        raise ValueError("Таблица пуста: нет строки заголовка / the sheet is empty")
    header = [cell.strip() for cell in rows[0]]
    unknown = [cell for cell in header if cell and cell not in CSV_COLUMNS]
    if unknown:
        raise ValueError(
            f"Строка 1: неизвестные столбцы {', '.join(unknown)}; "
            f"допустимы: {', '.join(CSV_COLUMNS)}"
        )
    absent = [column for column in ("code", "name", "group") if column not in header]
    if absent:
        raise ValueError(f"Строка 1: нет обязательных столбцов {', '.join(absent)}")
    if len(set(filter(None, header))) != len(list(filter(None, header))):
        raise ValueError("Строка 1: столбцы повторяются")

    group_names = {g.code: g.name for g in defaults.groups}
    renamed: dict[str, tuple[str, str]] = {}
    competencies: list[Competency] = []
    seen: dict[str, int] = {}
    for number, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        row = f"Строка {number}"
        value = {
            column: (cells[i].strip() if i < len(cells) else "")
            for i, column in enumerate(header)
            if column
        }
        code = value.get("code", "")
        if code:
            row = f"{row} ({code})"
        if code in seen:
            raise ValueError(f"{row}: код уже встречался в строке {seen[code]}")
        seen[code] = number
        group = value.get("group", "")
        if group not in group_names:
            raise ValueError(
                f"{row}: неизвестная группа «{group}»; в рамке {defaults.version} есть: "
                f"{', '.join(group_names)}"
            )
        group_name = value.get("group_name", "")
        if group_name:
            earlier = renamed.setdefault(group, (group_name, row))
            if earlier[0] != group_name:
                raise ValueError(
                    f"{row}: у группы {group} название «{group_name}», а в {earlier[1].lower()} "
                    f"— «{earlier[0]}»"
                )
        own: dict[str, Any] = {
            "code": code,
            "name": value.get("name", ""),
            "group": group,
            "description": value.get("description", ""),
            "basis": value.get("basis", ""),
            "themes": _listed(value.get("themes", ""), (t.value for t in Theme), "themes", row),
        }
        roles = _listed(value.get("roles", ""), _ROLES, "roles", row)
        if roles:
            own["roles"] = roles
        audiences = _listed(
            value.get("audiences", ""), (a.value for a in Audience), "audiences", row
        )
        if audiences:
            own["audiences"] = audiences
        weights: dict[Instrument, float] = {}
        for instrument in SCORED:
            column = f"weight_{instrument.value}"
            raw = value.get(column, "").replace(" ", "").replace("\u00a0", "")
            if not raw:
                continue
            try:
                weights[instrument] = float(raw.replace(",", "."))
            except ValueError:
                raise ValueError(f"{row}: в столбце {column} не число: «{raw}»") from None
        own["weights"] = weights
        try:
            competencies.append(Competency.model_validate(own))
        except ValidationError as exc:
            raise ValueError(f"{row}: {_explain(exc)}") from None
    if not competencies:
        raise ValueError("В таблице нет ни одной компетенции / the sheet has no competencies")

    groups = [
        Group(code=g.code, name=renamed[g.code][0] if g.code in renamed else g.name)
        for g in defaults.groups
    ]
    data = {
        **defaults.model_dump(mode="json", exclude={"groups", "competencies"}),
        "version": version or defaults.version,
        "groups": [g.model_dump() for g in groups],
        "competencies": [c.model_dump(mode="json") for c in competencies],
    }
    return _framework(data, "CSV")
