"""Event contracts and the stream entry format, without Redis."""

from __future__ import annotations

import json
import typing
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from iomflow.shared import contracts, wire
from iomflow.shared.contracts import (
    EVENT_TYPES,
    INBOUND_TYPES,
    STREAM_OF,
    CompetencyResult,
    DiagnosisCompleted,
    Event,
    Instrument,
    Level,
    MethodistAssigned,
    ResultSubmitted,
    RouteDrafted,
    RouteStep,
    Streams,
    TeacherUpserted,
    inbound_schema,
    new_event,
)

RESULT = "diagnostics.result.submitted"


def result_payload(**changes: Any) -> ResultSubmitted:
    data: dict[str, Any] = {
        "teacher_id": "t-000001",
        "instrument": "standardized_test",
        "campaign_id": "2026-spring",
        "scores": {"digital": 35.5, "assessment": 72},
    }
    data.update(changes)
    return ResultSubmitted.model_validate(data)


def result_event() -> Event[Any]:
    return new_event(RESULT, result_payload(), source="test-publisher", subject="t-000001")


def fields(**changes: str) -> dict[str, str]:
    """Wire fields of a valid result event, with some replaced."""
    return wire.encode(result_event()) | changes


def bad(entry: dict[str, str]) -> wire.BadEntry:
    with pytest.raises(wire.BadEntry) as caught:
        wire.decode(entry)
    return caught.value


# --- contracts -----------------------------------------------------------------------------


def test_streams_dead_letter_name() -> None:
    assert Streams.dlq(Streams.RESULTS_INBOUND) == "{iomflow.diagnostics.results.inbound}.dlq"
    assert Streams.of_dlq(Streams.dlq(Streams.RESULTS_INBOUND)) == Streams.RESULTS_INBOUND
    assert Streams.of_dlq(Streams.legacy_dlq(Streams.ROUTES)) == Streams.ROUTES
    assert Streams.of_dlq(Streams.ROUTES) == Streams.ROUTES


def test_contracts_refuse_unknown_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        result_payload(full_name="Иванов Иван")
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_contracts_are_frozen() -> None:
    payload = result_payload()
    with pytest.raises(ValidationError):
        payload.teacher_id = "t-2"  # type: ignore[misc]


@pytest.mark.parametrize("score", [-0.1, 100.1, 150])
def test_score_outside_zero_to_hundred_is_refused(score: float) -> None:
    with pytest.raises(ValidationError, match=r"scores\.digital"):
        result_payload(scores={"digital": score})


@pytest.mark.parametrize("score", [0, 100])
def test_scores_at_the_bounds_are_accepted(score: float) -> None:
    assert result_payload(scores={"digital": score}).scores == {"digital": float(score)}


def test_result_needs_at_least_one_score() -> None:
    with pytest.raises(ValidationError):
        result_payload(scores={})


def test_campaign_defaults_to_default() -> None:
    payload = ResultSubmitted(teacher_id="t", instrument=Instrument.SELF_DIAGNOSIS, scores={"a": 1})
    assert payload.campaign_id == "default"


def test_every_inbound_type_has_a_contract() -> None:
    assert set(INBOUND_TYPES) <= set(EVENT_TYPES)


# --- new_event -----------------------------------------------------------------------------


def test_new_event_wraps_the_payload_in_a_fresh_envelope() -> None:
    before = datetime.now(UTC)
    event = result_event()
    assert event.type == RESULT
    assert event.version == 1
    assert event.source == "test-publisher"
    assert event.subject == "t-000001"
    assert event.payload == result_payload()
    assert isinstance(event.event_id, uuid.UUID)
    assert before <= event.occurred_at <= datetime.now(UTC)
    assert event.occurred_at.tzinfo is not None


def test_new_event_refuses_a_payload_of_the_wrong_type() -> None:
    teacher = TeacherUpserted(
        teacher_id="t-1",
        organization_id="o",
        municipality_id="m",
        position="учитель",
        audience="general",  # type: ignore[arg-type]
        age_band="<25",
        experience_band="<3",
    )
    with pytest.raises(TypeError, match="TeacherUpserted is not the contract of " + RESULT):
        new_event(RESULT, teacher, source="s", subject="t-1")


def test_new_event_refuses_an_unknown_type() -> None:
    with pytest.raises(TypeError, match=r"not the contract of nope\.event"):
        new_event("nope.event", result_payload(), source="s", subject="t-1")


# --- encode / decode -----------------------------------------------------------------------


def test_encode_writes_plain_string_fields() -> None:
    event = result_event()
    entry = wire.encode(event)
    assert set(entry) == set(wire.ENVELOPE_FIELDS)
    assert all(isinstance(v, str) for v in entry.values())
    assert entry["event_id"] == str(event.event_id)
    assert entry["version"] == "1"
    assert json.loads(entry["data"]) == {
        "teacher_id": "t-000001",
        "instrument": "standardized_test",
        "campaign_id": "2026-spring",
        "scores": {"digital": 35.5, "assessment": 72.0},
        "items": [],
        "external_id": None,
        "expert_id": None,
        "taken_at": None,
    }


def test_encode_then_decode_round_trips_an_event() -> None:
    event = result_event()
    decoded = wire.decode(wire.encode(event))
    assert decoded.event_id == event.event_id
    assert decoded.type == event.type
    assert decoded.payload == event.payload
    assert isinstance(decoded.payload, ResultSubmitted)
    assert decoded.occurred_at == event.occurred_at
    assert (decoded.version, decoded.source, decoded.subject) == (1, "test-publisher", "t-000001")


def test_round_trip_of_a_nested_payload() -> None:
    level = CompetencyResult(code="digital", score=25.0, level=Level.CRITICAL)
    completed = DiagnosisCompleted(
        diagnosis_id="d-1",
        teacher_id="t-1",
        organization_id="org-1",
        municipality_id="mun-01",
        campaign_id="default",
        framework_version="2026.1-demo",
        competencies=[level],
        deficits=[level],
    )
    event = new_event("diagnostics.diagnosis.completed", completed, source="diag", subject="t-1")
    decoded = wire.decode(wire.encode(event))
    assert decoded.payload == completed
    assert decoded.payload.deficits[0].level is Level.CRITICAL


def test_round_trip_of_a_route() -> None:
    route = RouteDrafted(
        route_id="r-1",
        diagnosis_id="d-1",
        teacher_id="t-1",
        organization_id="org-1",
        municipality_id="mun-01",
        steps=[RouteStep(competency="digital", kind="consultation", hours=4, reason="дефицит")],
        total_hours=4,
    )
    event = new_event("routes.route.drafted", route, source="routes", subject="t-1")
    assert wire.decode(wire.encode(event)).payload == route


def test_encode_carries_the_trace_context_when_given() -> None:
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    entry = wire.encode(result_event(), trace | {"tracestate": "", "baggage": "x"})
    assert entry["traceparent"] == trace["traceparent"]
    assert "tracestate" not in entry  # empty values are not written
    assert "baggage" not in entry


def test_decode_ignores_trace_fields() -> None:
    entry = fields(traceparent="00-abc-def-01", tracestate="k=v")
    assert wire.decode(entry).type == RESULT


def test_decode_reads_an_entry_without_a_version_as_version_one() -> None:
    entry = fields()
    del entry["version"]
    assert wire.decode(entry).version == 1


def test_decode_reads_an_entry_written_by_hand() -> None:
    entry = {
        "event_id": "7d444840-9dc0-11d1-b245-5ffdce74fad2",
        "type": RESULT,
        "version": "1",
        "source": "lms",
        "occurred_at": "2026-03-01T10:00:00+08:00",
        "subject": "t-000042",
        "data": '{"teacher_id": "t-000042", "instrument": "self_diagnosis", '
        '"scores": {"digital": 80}}',
    }
    event = wire.decode(entry)
    assert event.event_id == uuid.UUID("7d444840-9dc0-11d1-b245-5ffdce74fad2")
    assert event.payload.instrument is Instrument.SELF_DIAGNOSIS
    assert event.payload.campaign_id == "default"
    assert event.occurred_at == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


# --- decode: bad entries -------------------------------------------------------------------


def test_bad_entry_missing_fields_names_each_field() -> None:
    entry = fields()
    del entry["event_id"], entry["data"]
    error = bad(entry)
    assert error.reason == "missing fields"
    assert [e["loc"] for e in error.errors] == [["event_id"], ["data"]]
    assert all(e["type"] == "missing" for e in error.errors)


def test_bad_entry_data_not_json() -> None:
    error = bad(fields(data="{not json"))
    assert error.reason == "data is not JSON"
    assert error.errors[0]["loc"] == ["data"]
    assert error.errors[0]["type"] == "json_invalid"


@pytest.mark.parametrize("data", ["[1, 2]", '"text"', "42", "null"])
def test_bad_entry_data_not_an_object(data: str) -> None:
    error = bad(fields(data=data))
    assert error.reason == "data is not a JSON object"
    assert error.errors == [{"loc": ["data"], "msg": "expected an object", "type": "dict_type"}]


def test_bad_entry_unknown_type() -> None:
    error = bad(fields(type="diagnostics.result.deleted"))
    assert error.reason == "unknown event type"
    assert error.errors[0]["msg"] == "unknown type 'diagnostics.result.deleted'"


def test_bad_entry_unsupported_version() -> None:
    error = bad(fields(version="2"))
    assert error.reason == "unsupported version"
    [detail] = error.errors
    assert detail["loc"] == ["version"]
    assert "version 2 of diagnostics.result.submitted is not supported" in detail["msg"]


def test_a_raised_version_is_read_and_the_previous_one_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(contracts.EVENT_VERSIONS, "diagnostics.result.submitted", 2)
    event = wire.decode(fields(version="2"))
    assert event.version == 2
    error = bad(fields(version="1"))
    assert error.reason == "unsupported version"
    assert "this service reads version 2" in error.errors[0]["msg"]


def test_bad_entry_version_not_a_number() -> None:
    error = bad(fields(version="one"))
    assert error.reason == "validation failed"
    assert error.errors[0]["loc"] == ["version"]


def test_bad_entry_event_id_not_a_uuid() -> None:
    error = bad(fields(event_id="42"))
    assert error.reason == "validation failed"
    assert error.errors[0]["loc"] == ["event_id"]


def test_bad_entry_score_of_150() -> None:
    data = json.dumps(
        {"teacher_id": "t-1", "instrument": "standardized_test", "scores": {"digital": 150}}
    )
    error = bad(fields(data=data))
    assert error.reason == "validation failed"
    assert error.errors[0]["loc"] == ["scores", "digital"]
    assert "less than or equal to 100" in error.errors[0]["msg"]
    assert "150" in error.describe()


def test_bad_entry_unknown_instrument() -> None:
    data = json.dumps({"teacher_id": "t-1", "instrument": "horoscope", "scores": {"digital": 50}})
    error = bad(fields(data=data))
    assert error.reason == "validation failed"
    assert error.errors[0]["loc"] == ["instrument"]
    assert error.errors[0]["type"] == "enum"


def test_bad_entry_personal_data_field_is_refused() -> None:
    data = json.dumps(
        {"teacher_id": "t-1", "instrument": "self_diagnosis", "scores": {"a": 1}, "snils": "1"}
    )
    error = bad(fields(data=data))
    assert error.errors[0]["loc"] == ["snils"]
    assert error.errors[0]["type"] == "extra_forbidden"


def test_bad_entry_errors_carry_scalar_inputs_but_never_whole_objects() -> None:
    # The DLQ entry keeps the original fields anyway; the error names the offending value.
    data = json.dumps({"teacher_id": "", "instrument": "self_diagnosis", "scores": {"a": 1}})
    error = bad(fields(data=data))
    assert error.errors[0]["loc"] == ["teacher_id"]
    assert error.errors[0]["input"] == ""
    missing = bad(fields(data=json.dumps({"instrument": "self_diagnosis"})))
    assert all("input" not in e or not isinstance(e["input"], dict) for e in missing.errors)


def test_bad_entry_describe_is_json_with_reason_and_errors() -> None:
    described = json.loads(bad(fields(type="nope")).describe())
    assert described["reason"] == "unknown event type"
    assert described["errors"][0]["loc"] == ["type"]


def test_bad_entry_without_details_describes_itself_by_reason() -> None:
    assert wire.BadEntry("gone").describe() == "gone"
    assert str(wire.BadEntry("gone")) == "gone"


# --- PlainFieldsFormat ---------------------------------------------------------------------


def test_parse_lifts_traceparent_into_headers() -> None:
    entry = wire.encode(result_event(), {"traceparent": "00-aa-bb-01", "tracestate": "k=v"})
    raw = {k.encode(): v.encode() for k, v in entry.items()}
    body, headers = wire.PlainFieldsFormat.parse(raw)
    assert headers == {
        "traceparent": "00-aa-bb-01",
        "tracestate": "k=v",
        "message_id": entry["event_id"],
        "correlation_id": entry["event_id"],
    }
    assert body == b"{}"  # the consumer reads the fields from the raw entry


def test_parse_of_json_bytes_as_faststream_passes_them() -> None:
    entry = wire.encode(result_event(), {"traceparent": "00-cc-dd-01"})
    body, headers = wire.PlainFieldsFormat.parse(json.dumps(entry).encode())
    assert headers["traceparent"] == "00-cc-dd-01"
    assert headers["message_id"] == entry["event_id"]
    assert wire.decode(json.loads(body)).event_id == uuid.UUID(entry["event_id"])


def test_parse_without_trace_context_has_no_trace_headers() -> None:
    body, headers = wire.PlainFieldsFormat.parse({"type": "x"})
    assert headers == {}
    assert body == b"{}"


@pytest.mark.parametrize(
    ("garbage", "body"),
    [
        (b"\x00\xff\xfe binary", b"\x00\xff\xfe binary"),
        (b"not json", b"not json"),
        (bytearray(b"[1, 2]"), b"[1, 2]"),
        ("[1, 2]", b""),
        (None, b""),
        (42, b""),
    ],
)
def test_parse_never_raises_on_garbage(garbage: Any, body: bytes) -> None:
    assert wire.PlainFieldsFormat.parse(garbage) == (body, {})


def test_parse_of_non_utf8_fields_replaces_bad_bytes() -> None:
    body, headers = wire.PlainFieldsFormat.parse({b"traceparent": b"\xff"})
    assert headers == {"traceparent": "\ufffd"}
    assert body == b"{}"


def test_parse_never_raises_on_a_mapping_of_odd_values() -> None:
    body, _ = wire.PlainFieldsFormat.parse({"type": object()})
    assert isinstance(body, bytes)


# --- inbound schema ------------------------------------------------------------------------


def test_inbound_schema_pins_the_type_and_refers_data_to_the_payload() -> None:
    schema = inbound_schema(RESULT)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == RESULT
    assert schema["properties"]["type"] == {"const": RESULT, "type": "string"}
    assert schema["properties"]["data"] == {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": "#/$defs/ResultSubmitted"},
    }
    assert schema["properties"]["version"]["const"] == "1"
    payload = schema["$defs"]["ResultSubmitted"]
    assert payload["title"] == "ResultSubmitted"
    assert payload["additionalProperties"] is False
    assert set(payload["required"]) == {"teacher_id", "instrument"}
    # scores or items: at least one of them, not empty
    assert [sorted(alt["required"]) for alt in payload["anyOf"]] == [["scores"], ["items"]]


def test_inbound_schema_refs_all_resolve() -> None:
    schema = inbound_schema(RESULT)
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert "#/$defs/Instrument" in refs
    for ref in refs:
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in schema["$defs"]
    assert schema["$defs"]["Instrument"]["enum"] == [i.value for i in Instrument]


def test_inbound_schema_envelope_requires_the_envelope_fields() -> None:
    schema = inbound_schema(RESULT)
    assert set(schema["required"]) == {
        "event_id",
        "type",
        "source",
        "occurred_at",
        "subject",
        "data",
    }
    assert all(p["type"] == "string" for p in schema["properties"].values())
    assert schema["properties"]["event_id"]["format"] == "uuid"


def test_inbound_schema_is_json_and_fresh_each_call() -> None:
    first = inbound_schema(RESULT)
    first["properties"]["type"]["const"] = "changed"
    second = inbound_schema(RESULT)
    assert second["properties"]["type"]["const"] == RESULT
    assert json.loads(json.dumps(second, ensure_ascii=False)) == second


def test_inbound_schema_of_an_unknown_type_fails() -> None:
    with pytest.raises(KeyError):
        inbound_schema("nope.event")


def test_inbound_schema_bounds_scores_to_zero_to_hundred() -> None:
    scores = inbound_schema(RESULT)["$defs"]["ResultSubmitted"]["properties"]["scores"]
    assert scores["additionalProperties"].get("minimum") == 0
    assert scores["additionalProperties"].get("maximum") == 100


def test_methodist_assigned_contract_round_trips() -> None:
    payload = MethodistAssigned(
        route_id="r",
        teacher_id="t",
        methodist_id="met-001",
        municipality_id="mun-01",
        load=1,
        capacity=250,
    )
    event = new_event("routes.methodist.assigned", payload, source="routes", subject="t")
    assert wire.decode(wire.encode(event)).payload == payload


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("[" * 2000 + "]" * 2000, "data is not JSON"),
        (
            '{"teacher_id": "t-1", "instrument": "self_diagnosis", "scores": {"digital": NaN}}',
            "data is not JSON",
        ),
        (
            '{"teacher_id": "t-1\\u0000", "instrument": "self_diagnosis", '
            '"scores": {"digital": 5}}',
            "NUL character",
        ),
    ],
)
def test_decode_turns_any_poison_into_a_bad_entry(data: str, reason: str) -> None:
    entry = {**wire.encode(result_event()), "data": data}
    with pytest.raises(wire.BadEntry) as caught:
        wire.decode(entry)
    assert caught.value.reason == reason


def test_a_nul_in_an_envelope_field_is_a_bad_entry() -> None:
    entry = {**wire.encode(result_event()), "subject": "t-1\x00"}
    with pytest.raises(wire.BadEntry) as caught:
        wire.decode(entry)
    assert caught.value.errors[0]["loc"] == ["subject"]


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    entry = wire.encode(result_event())
    data = json.loads(entry["data"])
    data["teacher_id"] = "t\\u0000"  # a backslash, then the text u0000
    event = wire.decode({**entry, "data": json.dumps(data)})
    assert event.payload.teacher_id == "t\\u0000"


def test_the_quick_decoding_and_the_careful_one_agree() -> None:
    """``decode`` takes a valid entry in one pass over its JSON; what it gives must be what
    the careful, step-by-step reading gives (the demo's six instruments of some teachers)."""
    from iomflow.cli import demo

    for _, fields in demo.result_entries([f"t-{n:06d}" for n in range(1, 6)]):
        assert wire._decode(fields, {}) == wire._explain(fields)


def test_every_digest_a_service_reads_through_is_a_projection_of_its_contract() -> None:
    """A digest keeps a subset of its contract's fields, each with the contract's own type,
    bounds and default; read through it, a valid event gives those fields' values."""
    from iomflow.monitoring.handlers import SUBSCRIPTIONS as monitoring
    from iomflow.routes.handlers import SUBSCRIPTIONS as routes
    from iomflow.shared.contracts import Digest

    def projection(reader: type[Any], contract: type[Any], where: str) -> None:
        assert issubclass(reader, Digest) and reader.__digest_of__ is contract, where
        for name, field in reader.model_fields.items():
            assert name in contract.model_fields, (where, name)
            theirs = contract.model_fields[name]
            assert field.default == theirs.default, (where, name)
            assert field.metadata == theirs.metadata, (where, name)
            if field.annotation == theirs.annotation:
                continue
            # read through a digest of its own: list[XDigest] for list[X]
            mine, other = typing.get_args(field.annotation), typing.get_args(theirs.annotation)
            assert typing.get_origin(field.annotation) is typing.get_origin(theirs.annotation)
            assert len(mine) == len(other) == 1, (where, name)
            projection(mine[0], other[0], f"{where}.{name}")

    seen = 0
    for sub in [*monitoring, *routes]:
        for type_, reader in sub.digests.items():
            assert STREAM_OF[type_] == sub.stream
            projection(reader, EVENT_TYPES[type_], type_)
            seen += 1
    assert seen >= 4


def test_an_event_read_through_a_digest_has_the_contracts_values() -> None:
    from iomflow.shared.contracts import DiagnosisDigest

    level = CompetencyResult(code="digital", score=20, level=Level.CRITICAL)
    diagnosis = DiagnosisCompleted(
        diagnosis_id="d-1",
        teacher_id="t-1",
        organization_id="o-1",
        municipality_id="m-1",
        campaign_id="c",
        framework_version="f",
        competencies=[level],
        deficits=[level],
    )
    fields = wire.encode(
        new_event("diagnostics.diagnosis.completed", diagnosis, source="x", subject="t-1")
    )
    read = wire.decode(fields, {"diagnostics.diagnosis.completed": DiagnosisDigest}).payload
    assert read.model_dump() == diagnosis.model_dump(exclude={"competencies"})
    # and a digest still refuses what its fields' contract refuses
    bad = json.loads(fields["data"]) | {"deficits": [{"code": "digital", "score": "x"}]}
    with pytest.raises(wire.BadEntry):
        wire.decode(
            {**fields, "data": json.dumps(bad)},
            {"diagnostics.diagnosis.completed": DiagnosisDigest},
        )
