"""What publishers get wrong: the same event sent again (three times over, a whole batch
replayed) is applied once; a corpus of bad entries, each XADDed in one MULTI between valid
ones on the results inbound stream, is dead-lettered kind by kind with its reason while
every valid event is applied; the same corpus over HTTP (``POST /v1/events`` and inside a
``/v1/events/batch``) is refused with a 4xx each, never a 5xx, and nothing of a refused
batch is appended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import infra
import pytest
import redis
from e2e.test_chain import REGION, event_body, get, rule_breaking, start_suite

from faults.common import FAST_RECLAIM, at_rest, dead_letters, fresh_databases
from iomflow.cli.demo import result_entries, result_events
from iomflow.cli.launcher import Suite
from iomflow.shared import wire
from iomflow.shared.contracts import Event, Instrument, Streams

pytestmark = pytest.mark.faults

TEACHERS = [t["teacher_id"] for t in REGION["teachers"]]
PUBLISHER = "faults-http"
DROP = object()
"""A field or payload key left out."""
Fields = dict[str, str | bytes]
TYPES = ("--types", "diagnostics.result.submitted")
STREAM_ONLY = {"missing_source"}
"""Bad on the stream only: over HTTP the source is the key's publisher, never the body's."""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def suite(
    request: pytest.FixtureRequest,
    redis_server: infra.RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Suite]:
    """One suite for this module's scenarios (each counts from where the last left off)."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    databases: dict[str, str] = {}
    if request.param == "postgresql":
        databases = fresh_databases(request.getfixturevalue("postgres_server"), "inputs")
    workdir = tmp_path_factory.mktemp(f"inputs-{request.param}")
    started = start_suite(workdir, redis_server.url, databases, env=FAST_RECLAIM)
    try:
        yield started
    finally:
        started.stop()


def counts(suite: Suite, client: redis.Redis) -> dict[str, int]:
    return {
        "applied_before": get(f"{suite.url('diagnostics')}/v1/stats")["results"],
        "dead_before": client.xlen(Streams.dlq(Streams.RESULTS_INBOUND)),
    }


def test_the_same_event_three_times_and_a_replayed_batch_are_applied_once(
    suite: Suite, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    before = counts(suite, client)
    tripled = result_entries(TEACHERS[:20])
    replayed = result_entries(TEACHERS[20:50])
    with client.pipeline(transaction=False) as pipe:
        for stream, fields in tripled:  # three entries in a row: one batch reads them all
            for _ in range(3):
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
        for stream, fields in replayed:
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
        pipe.execute()
    at_rest(suite, client, "duplicates-first-pass", len(tripled) + len(replayed), **before)
    with client.pipeline(transaction=False) as pipe:  # the whole batch again, once applied
        for stream, fields in [*replayed, *tripled]:
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
        pipe.execute()
    figures = at_rest(
        suite,
        client,
        "duplicates",
        len(tripled) + len(replayed),
        note=f"{len(tripled)} events x4 entries, {len(replayed)} events x2 entries",
        **before,
    )
    assert figures.dead_lettered == 0
    diagnoses = get(f"{suite.url('diagnostics')}/v1/stats")["diagnoses"]
    assert diagnoses == 50


# --- the bad-input corpus ------------------------------------------------------------------


def base_event(teacher_id: str) -> Event[Any]:
    """A valid self-diagnosis of the teacher, by the HTTP publisher (its source)."""
    event = rule_breaking(
        teacher_id,
        Instrument.SELF_DIAGNOSIS,
        scores={"digital": 80.0, "communication": 70.0},
        taken_at=datetime(2026, 10, 14, 11, 0, tzinfo=UTC),
    )
    return event.model_copy(update={"source": PUBLISHER})


def corpus(teacher_id: str) -> dict[str, Fields]:
    """Kind -> a stream entry that can never be applied, each with its own event id."""
    event = base_event(teacher_id)
    payload = event.payload.model_dump(mode="json", exclude_none=True)
    data = json.dumps(payload)

    def entry(**changes: Any) -> Fields:
        fields: Fields = {**wire.encode(event), "event_id": str(uuid.uuid4())}
        for name, value in changes.items():
            if value is DROP:
                del fields[name]
            else:
                fields[name] = value
        return fields

    def with_data(**changes: Any) -> Fields:
        changed = {**payload, **changes}
        return entry(data=json.dumps({k: v for k, v in changed.items() if v is not DROP}))

    nested = '{"a": ' * 2000 + "1" + "}" * 2000
    return {
        "not_json": entry(data="not json at all"),
        "truncated_json": entry(data=data[: len(data) // 2]),
        "trailing_garbage": entry(data=data + "}"),
        "data_array": entry(data="[1, 2, 3]"),
        "data_null": entry(data="null"),
        "data_string": entry(data='"results"'),
        "scores_wrong_type": with_data(scores="high"),
        "score_wrong_type": with_data(scores={"digital": "eighty"}),
        "teacher_id_wrong_type": with_data(teacher_id=123),
        "instrument_unknown": with_data(instrument="astrology"),
        "taken_at_not_a_date": with_data(taken_at="yesterday"),
        "missing_teacher_id": with_data(teacher_id=DROP),
        "missing_instrument": with_data(instrument=DROP),
        "missing_scores": with_data(scores=DROP),
        "score_out_of_range": with_data(scores={"digital": 150.0}),
        "missing_event_id": entry(event_id=DROP),
        "missing_type": entry(type=DROP),
        "missing_source": entry(source=DROP),
        "missing_occurred_at": entry(occurred_at=DROP),
        "missing_subject": entry(subject=DROP),
        "missing_data": entry(data=DROP),
        "huge_payload": with_data(external_id="x" * (300 * 1024)),
        "nested_2000_deep": entry(data=data[:-1] + ', "deep": ' + nested + "}"),
        "nul_in_payload_string": with_data(teacher_id=teacher_id + "\u0000"),
        "nul_in_envelope_field": entry(subject=teacher_id + "\x00"),
        "nan": entry(data=data.replace("80.0", "NaN")),
        "infinity": entry(data=data.replace("80.0", "Infinity")),
        "minus_infinity": entry(data=data.replace("80.0", "-Infinity")),
        "invalid_utf8_in_data": entry(data=b"\xff\xfe" + data.encode()),
        "invalid_utf8_in_event_id": entry(event_id=b"\xff\xfe\xfd-not-utf8"),
        "known_type_wrong_stream": entry(type="diagnostics.diagnosis.completed"),
        "unknown_type": entry(type="diagnostics.result.retracted"),
        "empty_type": entry(type=""),
        "unknown_version": entry(version="99"),
        "version_not_a_number": entry(version="one"),
        "extra_payload_fields_1000": with_data(**{f"extra_{i}": i for i in range(1000)}),
        "occurred_at_without_time_zone": entry(occurred_at="2026-10-14T11:00:00"),
        "occurred_at_not_a_date": entry(occurred_at="soon"),
        "bad_uuid_event_id": entry(event_id="not-a-uuid"),
        "empty_event_id": entry(event_id=""),
        "empty_entry": {"": ""},
    }


def http_body(fields: Fields) -> bytes:
    """The entry as a posted envelope: its fields as JSON strings, ``data`` as it is (so
    what is not JSON in the entry is not JSON in the body either)."""

    def raw(value: str | bytes) -> bytes:
        return value if isinstance(value, bytes) else value.encode()

    parts = [
        json.dumps(name).encode()
        + b": "
        + (raw(value) if name == "data" else b'"' + raw(value) + b'"')
        if isinstance(value, bytes) or name == "data"
        else json.dumps(name).encode() + b": " + json.dumps(value).encode()
        for name, value in fields.items()
    ]
    return b"{" + b", ".join(parts) + b"}"


def posted(event: Event[Any]) -> bytes:
    return json.dumps(event_body(event)).encode()


def publisher_key(suite: Suite) -> dict[str, str]:
    added = subprocess.run(
        [sys.executable, "-m", "iomflow.diagnostics", "publishers", "add", PUBLISHER, *TYPES],
        env={**os.environ, **suite.env_for("diagnostics")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stderr
    return {"X-API-Key": added.stdout.strip(), "Content-Type": "application/json"}


def test_bad_input_is_dead_lettered_or_refused_4xx_and_every_valid_event_applied(
    suite: Suite, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    before = counts(suite, client)
    bad = corpus(TEACHERS[110])
    assert len(bad) >= 30
    valid = result_entries(TEACHERS[50:100])
    kinds = list(bad)
    with client.pipeline(transaction=True) as pipe:  # one MULTI, bad between the valid
        for i, (stream, fields) in enumerate(valid):
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
            if i < len(kinds):
                pipe.xadd(Streams.RESULTS_INBOUND, bad[kinds[i]])  # type: ignore[arg-type]
        ids = [wire.as_text(i) for i in pipe.execute()]
    bad_ids = {ids[2 * i + 1]: kind for i, kind in enumerate(kinds)}

    # The same corpus over HTTP: alone, and inside a batch next to a valid event.
    key = publisher_key(suite)
    events = f"{suite.url('diagnostics')}/v1/events"
    never = posted(result_events(TEACHERS[111], source=PUBLISHER)[0])  # only in refused batches
    answers: dict[str, tuple[int, int]] = {}
    single, batch = events, f"{events}/batch"
    for kind, fields in bad.items():
        if kind in STREAM_ONLY:
            continue
        body = http_body(fields)
        one = httpx.post(single, content=body, headers=key, timeout=30)
        inside = httpx.post(
            batch, content=b"[" + never + b", " + body + b"]", headers=key, timeout=30
        )
        answers[kind] = (one.status_code, inside.status_code)
    extras: dict[str, list[tuple[str, bytes]]] = {
        "empty_body": [(single, b""), (batch, b"")],
        "source_of_another": [
            (single, other := never[:-1] + b', "source": "someone"}'),
            (batch, b"[" + never + b", " + other + b"]"),
        ],
        "array_on_single": [(single, b"[" + never + b"]")],
        "batch_not_an_array": [(batch, never)],
        "batch_empty": [(batch, b"[]")],
    }
    for kind, tries in extras.items():
        codes = [
            httpx.post(url, content=body, headers=key, timeout=30).status_code
            for url, body in tries
        ]
        answers[kind] = (codes[0], codes[-1])
    wrong = {
        kind: codes for kind, codes in answers.items() if not all(400 <= c < 500 for c in codes)
    }
    assert not wrong, f"bad HTTP items not refused with a 4xx: {wrong}"

    by_http = [posted(e) for t in TEACHERS[100:105] for e in result_events(t, source=PUBLISHER)]
    for body in by_http:
        answer = httpx.post(events, content=body, headers=key, timeout=30)
        assert answer.status_code == 202, answer.text
    in_batch = [posted(e) for t in TEACHERS[105:110] for e in result_events(t, source=PUBLISHER)]
    answer = httpx.post(
        f"{events}/batch", content=b"[" + b", ".join(in_batch) + b"]", headers=key, timeout=30
    )
    assert answer.status_code == 202 and answer.json()["accepted"] == len(in_batch), answer.text

    published = len(valid) + len(bad) + len(by_http) + len(in_batch)
    figures = at_rest(
        suite,
        client,
        "bad-input",
        published,
        note=f"{len(bad)} kinds on the stream, {len(answers)} over HTTP: all 4xx, no 5xx",
        **before,
    )
    assert figures.dead_lettered == len(bad)
    letters = {letter["dlq_entry_id"]: letter for letter in dead_letters(client)}
    missing = {kind for entry_id, kind in bad_ids.items() if entry_id not in letters}
    assert not missing, f"bad entries not dead-lettered: {missing}"
    reasons = {kind: letters[entry_id]["dlq_reason"] for entry_id, kind in bad_ids.items()}
    assert all(reasons.values()), reasons
    unexplained = [kind for entry_id, kind in bad_ids.items() if not letters[entry_id]["dlq_error"]]
    assert not unexplained, f"dead letters without their error: {unexplained}"
    print("dead-letter reasons:", json.dumps(reasons, ensure_ascii=False))
