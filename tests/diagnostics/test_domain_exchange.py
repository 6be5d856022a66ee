"""Exchanging the framework: CASE packages and spreadsheets, both ways, with no infrastructure."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from iomflow.diagnostics.domain import Framework, load_framework
from iomflow.diagnostics.exchange import (
    COMPETENCY_TYPE,
    CSV_COLUMNS,
    GROUP_TYPE,
    from_case,
    from_csv,
    normalise_code,
    to_case,
    to_csv,
)
from iomflow.shared.contracts import Audience, Instrument

SHIPPED = Path(str(resources.files("iomflow.diagnostics").joinpath("data/framework.json")))


@pytest.fixture(scope="module")
def framework() -> Framework:
    return load_framework(SHIPPED)


def _by_type(package: dict[str, Any], item_type: str) -> list[dict[str, Any]]:
    return [item for item in package["CFItems"] if item["CFItemType"] == item_type]


def _csv_row(code: str, group: str, audiences: str = "general") -> str:
    return f"{code};Имя {code};{group};;;;teacher;{audiences};;;;;"


# --- CASE ---------------------------------------------------------------------------------


def test_case_export_reads_back_as_the_same_shipped_framework(framework: Framework) -> None:
    package = json.loads(json.dumps(to_case(framework), ensure_ascii=False))
    assert from_case(package) == framework


def test_case_package_has_one_document_an_item_per_group_and_per_competency(
    framework: Framework,
) -> None:
    package = to_case(framework)
    assert set(package) == {"CFDocument", "CFItems", "CFAssociations"}
    document = package["CFDocument"]
    assert document["title"] == framework.title
    assert document["version"] == framework.version
    assert document["CFPackageURI"]["identifier"] == document["identifier"]
    assert set(document["extensions"]["iomflow"]) >= {"levels", "instrument_weights", "burnout"}
    groups, competencies = _by_type(package, GROUP_TYPE), _by_type(package, COMPETENCY_TYPE)
    # the shipped framework has 10 groups and 16 competencies; counted so that it may grow
    assert len(groups) == len(framework.groups) >= 10
    assert len(competencies) == len(framework.competencies) >= 16
    assert len(package["CFItems"]) == len(groups) + len(competencies)
    assert [i["humanCodingScheme"] for i in competencies] == [
        c.code for c in framework.competencies
    ]
    for item in package["CFItems"]:
        assert item["fullStatement"]
        assert item["CFDocumentURI"]["identifier"] == document["identifier"]


def test_every_competency_is_child_of_exactly_its_group_and_groups_of_the_document(
    framework: Framework,
) -> None:
    package = to_case(framework)
    document_id = package["CFDocument"]["identifier"]
    ids = {item["identifier"]: item for item in package["CFItems"]}
    links = [a for a in package["CFAssociations"] if a["associationType"] == "isChildOf"]
    assert len(links) == len(package["CFAssociations"])
    assert all({"title", "identifier", "uri"} <= set(a["originNodeURI"]) for a in links)
    assert all({"title", "identifier", "uri"} <= set(a["destinationNodeURI"]) for a in links)
    parents = Counter(a["originNodeURI"]["identifier"] for a in links)
    assert set(parents.values()) == {1} and set(parents) == set(ids)

    parent = {
        a["originNodeURI"]["identifier"]: a["destinationNodeURI"]["identifier"] for a in links
    }
    for item in _by_type(package, GROUP_TYPE):
        assert parent[item["identifier"]] == document_id
    for competency in framework.competencies:
        item = next(
            i
            for i in _by_type(package, COMPETENCY_TYPE)
            if i["humanCodingScheme"] == competency.code
        )
        group = ids[parent[item["identifier"]]]
        assert group["CFItemType"] == GROUP_TYPE
        assert group["humanCodingScheme"] == competency.group


def test_case_identifiers_are_unique_uuids_and_the_same_in_two_exports(
    framework: Framework,
) -> None:
    first, second = to_case(framework), to_case(framework)
    assert first == second
    ids = [first["CFDocument"]["identifier"]]
    ids += [item["identifier"] for item in first["CFItems"]]
    ids += [association["identifier"] for association in first["CFAssociations"]]
    assert len(set(ids)) == len(ids)
    assert all(str(uuid.UUID(i)) == i for i in ids)
    # another version is another document
    bumped = to_case(framework.model_copy(update={"version": framework.version + "-next"}))
    assert bumped["CFDocument"]["identifier"] != first["CFDocument"]["identifier"]


def test_case_uris_follow_the_base_uri_when_given(framework: Framework) -> None:
    base = "https://case.example.org/ims/case/v1p1"
    package = to_case(framework, base_uri=base)
    item = package["CFItems"][0]
    assert item["uri"] == f"{base}/CFItems/{item['identifier']}"
    document = package["CFDocument"]
    assert document["CFPackageURI"]["uri"] == f"{base}/CFPackages/{document['identifier']}"
    assert from_case(package) == framework


def test_case_education_levels_follow_audiences(framework: Framework) -> None:
    items = {i["humanCodingScheme"]: i for i in _by_type(to_case(framework), COMPETENCY_TYPE)}
    assert items["preschool_environment"]["educationLevel"] == ["IT", "PR", "PK", "KG"]
    general = [f"{grade:02d}" for grade in range(1, 12)]
    assert items["subject_content"]["educationLevel"] == [*general, "PS"]


def _foreign_package() -> dict[str, Any]:
    """A package as another tool writes it: no extensions, its own item types, a domain
    above the groups, a standard right under the document, associations out of order."""
    doc = {"identifier": "d0000000-0000-4000-8000-000000000000", "uri": "https://x/d"}

    def item(n: int, statement: str, code: str | None = None, **more: Any) -> dict[str, Any]:
        own = {
            "identifier": f"00000000-0000-4000-8000-{n:012d}",
            "uri": f"https://x/items/{n}",
            "fullStatement": statement,
            "CFItemType": "Standard",
            **more,
        }
        return own | ({"humanCodingScheme": code} if code else {})

    def child(n: int, origin: dict[str, Any], destination: dict[str, Any], seq: int):
        return {
            "identifier": f"a0000000-0000-4000-8000-{n:012d}",
            "associationType": "isChildOf",
            "originNodeURI": {"identifier": origin["identifier"], "uri": origin["uri"]},
            "destinationNodeURI": {
                "identifier": destination["identifier"],
                "uri": destination["uri"],
            },
            "sequenceNumber": seq,
        }

    domain = item(1, "Профессиональные компетенции", CFItemType="Domain")
    digital = item(2, "Цифровая грамотность педагога", "DIG", CFItemType="Cluster")
    talk = item(3, "Коммуникация", CFItemType="Cluster")
    dig1 = item(
        4,
        "Использует цифровые сервисы для организации обучения",
        "DIG.1",
        abbreviatedStatement="Цифровые сервисы",
        educationLevel=["01", "02", "03", "04"],
        notes="Профстандарт «Педагог», ТФ A/01.6",
    )
    dig2 = item(5, "Защищает персональные данные", "DIG-2", educationLevel=["PK", "KG"])
    talk1 = item(6, "Ведёт диалог с родителями", "ПК-1.2", educationLevel=["PS"])
    loose = item(7, "Рефлексия собственной практики", "7.1")
    associations = [
        child(1, dig2, digital, 2),
        child(2, dig1, digital, 1),
        child(3, talk1, talk, 1),
        child(4, talk, domain, 2),
        child(5, digital, domain, 1),
        child(6, domain, {"identifier": doc["identifier"], "uri": doc["uri"]}, 1),
        child(7, loose, {"identifier": doc["identifier"], "uri": doc["uri"]}, 2),
        {**child(8, dig1, talk1, 1), "associationType": "isRelatedTo"},
    ]
    return {
        "CFDocument": {
            **doc,
            "creator": "Другой инструмент",
            "title": "Чужая рамка",
            "version": "v3",
            "notes": "Документ один\nДокумент два",
        },
        "CFItems": [loose, talk1, dig2, dig1, talk, digital, domain],
        "CFAssociations": associations,
    }


def test_foreign_case_package_without_extensions_imports_with_defaults(
    framework: Framework,
) -> None:
    imported = from_case(_foreign_package(), defaults=framework)
    assert imported.version == "v3" and imported.title == "Чужая рамка"
    assert imported.basis == ["Документ один", "Документ два"]
    assert [(g.code, g.name) for g in imported.groups] == [
        ("dig", "Цифровая грамотность педагога"),
        ("g_00000000_0000_4000_8000_000000000003", "Коммуникация"),
        ("ungrouped", "Без группы"),
    ]
    by_code = {c.code: c for c in imported.competencies}
    assert list(by_code) == ["dig_1", "dig_2", "pk_1_2", "c_7_1"]  # the tree's order
    dig1 = by_code["dig_1"]
    assert (dig1.name, dig1.group) == ("Цифровые сервисы", "dig")
    assert dig1.description == "Использует цифровые сервисы для организации обучения"
    assert dig1.basis == "Профстандарт «Педагог», ТФ A/01.6"
    assert dig1.audiences == [Audience.GENERAL]
    assert dig1.roles == ["teacher"] and dig1.themes == [] and dig1.weights == {}
    assert by_code["dig_2"].name == "Защищает персональные данные"
    assert by_code["dig_2"].description == ""
    assert by_code["dig_2"].audiences == [Audience.PRESCHOOL]
    assert by_code["pk_1_2"].audiences == [Audience.COLLEGE]
    assert by_code["c_7_1"].group == "ungrouped"
    assert by_code["c_7_1"].audiences == list(Audience)  # no education level: everyone
    # everything framework-wide comes from the defaults
    assert imported.levels == framework.levels
    assert imported.instrument_weights == framework.instrument_weights
    assert imported.required_instruments == framework.required_instruments
    assert imported.combination == framework.combination
    assert imported.burnout == framework.burnout


def test_foreign_case_package_without_defaults_is_refused_in_russian_and_english() -> None:
    with pytest.raises(ValueError, match="defaults=") as caught:
        from_case(_foreign_package())
    assert "Нет настроек рамки" in str(caught.value)
    assert "Framework settings missing" in str(caught.value)


def test_own_case_export_stripped_of_extensions_keeps_codes_names_groups_and_audiences(
    framework: Framework,
) -> None:
    package = to_case(framework)
    del package["CFDocument"]["extensions"]
    for item in package["CFItems"]:
        del item["extensions"]
    imported = from_case(package, defaults=framework)
    assert imported.groups == framework.groups
    assert imported.basis == framework.basis
    for got, want in zip(imported.competencies, framework.competencies, strict=True):
        assert (got.code, got.name, got.group, got.description, got.basis, got.audiences) == (
            want.code,
            want.name,
            want.group,
            want.description,
            want.basis,
            want.audiences,
        )


@pytest.mark.parametrize(
    "package",
    [
        [],
        {"CFItems": []},
        {"CFDocument": {"title": "x"}, "CFItems": "nope"},
        {"CFDocument": {"title": "x"}, "CFItems": [{"fullStatement": "no identifier"}]},
    ],
    ids=["not-an-object", "no-document", "items-not-a-list", "item-without-identifier"],
)
def test_malformed_case_package_is_a_value_error(package: Any, framework: Framework) -> None:
    with pytest.raises(ValueError):
        from_case(package, defaults=framework)


def test_case_package_breaking_the_framework_rules_is_a_readable_value_error(
    framework: Framework,
) -> None:
    package = to_case(framework)
    package["CFDocument"]["extensions"]["iomflow"]["levels"].reverse()
    with pytest.raises(ValueError, match="levels must be ordered"):
        from_case(package)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("DIG.1", "dig_1"),
        ("ПК-1.2", "pk_1_2"),
        ("1.2", "c_1_2"),
        ("subject_content", "subject_content"),
        ("  Ёлка / Щука ", "elka_shchuka"),
        (" -- ", None),
    ],
)
def test_human_codes_normalise_to_framework_codes(raw: str, code: str | None) -> None:
    assert normalise_code(raw) == code


# --- spreadsheet --------------------------------------------------------------------------


def test_csv_export_reads_back_as_the_same_shipped_framework(framework: Framework) -> None:
    assert from_csv(to_csv(framework), defaults=framework) == framework


def test_csv_export_is_what_excel_opens(framework: Framework) -> None:
    text = to_csv(framework)
    assert text.startswith("\ufeff")
    lines = text[1:].split("\r\n")
    assert lines[0] == ";".join(CSV_COLUMNS)
    assert lines[-1] == "" and len(lines) == len(framework.competencies) + 2
    assert "\n" not in text.replace("\r\n", "")


def test_csv_keeps_per_competency_weights_with_decimal_commas(framework: Framework) -> None:
    competencies = [
        c.model_copy(update={"weights": {Instrument.EXPERT_EVALUATION: 0.55}})
        if c.code == "digital"
        else c
        for c in framework.competencies
    ]
    weighted = framework.model_copy(update={"competencies": competencies})
    text = to_csv(weighted)
    assert ";0,55;" in text
    assert from_csv(text, defaults=framework) == weighted


def test_csv_import_takes_the_version_keyword_and_settings_from_defaults(
    framework: Framework,
) -> None:
    imported = from_csv(to_csv(framework), defaults=framework, version="2027.1")
    assert imported.version == "2027.1"
    assert imported.model_copy(update={"version": framework.version}) == framework


def test_csv_with_an_unknown_group_fails_naming_the_row(framework: Framework) -> None:
    text = "\r\n".join(
        [";".join(CSV_COLUMNS), _csv_row("digital", "digital"), _csv_row("robots", "robotics")]
    )
    with pytest.raises(ValueError, match=r"Строка 3 \(robots\).*неизвестная группа «robotics»"):
        from_csv(text, defaults=framework)


def test_csv_with_a_bad_audience_fails_naming_the_row(framework: Framework) -> None:
    text = "\n".join(
        [
            ";".join(CSV_COLUMNS),
            _csv_row("digital", "digital"),
            _csv_row("assessment", "assessment_literacy", "general,university"),
        ]
    )
    with pytest.raises(ValueError, match=r"Строка 3 \(assessment\).*audiences.*university"):
        from_csv(text, defaults=framework)


def test_csv_with_a_bad_weight_fails_naming_the_row_and_column(framework: Framework) -> None:
    row = _csv_row("digital", "digital").rsplit(";", 4)[0] + ";много;;;"
    with pytest.raises(ValueError, match=r"Строка 2 \(digital\).*weight_standardized_test"):
        from_csv(";".join(CSV_COLUMNS) + "\n" + row, defaults=framework)


def test_csv_edited_in_a_spreadsheet_still_imports(framework: Framework) -> None:
    """Saved by Excel as "CSV UTF-8": a BOM, CRLF, quoted cells with line breaks and ';',
    padded empty rows; a weight typed with a decimal comma; columns with blanks around."""
    header = ";".join(f" {column} " for column in CSV_COLUMNS)
    rows = [
        'digital;"Цифровая; образовательная среда";digital;Цифровые компетенции;'
        '"Две строки\r\nописания";;teacher;general, college;digital_environment;0,5;;;',
        "management_staff;Кадры;management;;;;manager;preschool,general,college;management;;;;",
        ";;;;;;;;;;;;",
        "",
    ]
    text = "\ufeff" + "\r\n".join([header, *rows]) + "\r\n"
    imported = from_csv(text, defaults=framework)
    digital, staff = imported.competencies
    assert digital.name == "Цифровая; образовательная среда"
    assert digital.description == "Две строки\r\nописания"
    assert digital.audiences == [Audience.GENERAL, Audience.COLLEGE]
    assert digital.weights == {Instrument.STANDARDIZED_TEST: 0.5}
    assert staff.roles == ["manager"] and staff.group == "management"
    assert imported.groups == framework.groups and imported.levels == framework.levels


def test_csv_group_name_renames_the_group(framework: Framework) -> None:
    text = to_csv(framework).replace(";Цифровые компетенции;", ";Цифровая грамотность;")
    imported = from_csv(text, defaults=framework)
    assert {g.code: g.name for g in imported.groups}["digital"] == "Цифровая грамотность"
