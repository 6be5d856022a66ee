"""HTTP ingestion of inbound events, for outside publishers with their own keys.

The rules, each in its part: the key (``auth``), the rate (``ratelimit``), the body and
the events (``validation``), the audit and refusals (``audit``), the routes and the append
(``router``), a service's own intake form (``form``).

Outside systems (the testing platform, municipal services, further-education providers, the
federal portal) may post their events over HTTP instead of writing the stream:
``POST /v1/events`` with one envelope as JSON, ``POST /v1/events/batch`` with a list of them.
Each publisher has a key (shown once; only its SHA-256 is kept) and the list of event types
it may send. A request is checked in this order, and a refusal is answered with a Russian
``detail`` and a machine ``code``:

1. a key of an active publisher (``Authorization: Bearer`` or ``X-API-Key``):
   401 ``unauthenticated`` / ``invalid_key``;
2. the publisher's rate, events per minute over a sliding window counted in Redis
   (replicas share it; a batch counts each of its events): 429 ``rate_limited`` with
   ``Retry-After``. Only what is accepted uses the rate: the events of a request refused
   for any reason (the rate itself, a bad body, our stream unavailable) are given back.
   Every answer to a known publisher carries ``RateLimit-Limit``, ``RateLimit-Remaining``
   and ``RateLimit-Reset`` (seconds) and ``RateLimit-Policy``;
3. the body's size (``IOMFLOW_INGEST_MAX_BYTES``; a batch holds at most ``BATCH_MAX``):
   413 ``too_large``; JSON: 422 ``invalid_json``;
4. each event's type: one this service does not ingest at all: 422 ``type_not_ingested``;
   one it ingests but the publisher may not send: 403 ``type_not_allowed``;
5. the envelope (``contracts.Envelope``) and the payload against the contract, exactly as
   the stream consumer checks them (``wire.decode``): 422 ``invalid_event`` with ``errors``
   (``loc`` of each field; a batch's start with the event's index). ``source`` is the
   publisher's id, never taken from the body; ``version`` is by default the type's current.

A service's own intake form (diagnostics' ``POST /v1/results``, a result's payload as the
body) goes through the same door (``form.intake``): a publisher's key with the type — rated and
audited as here, the ``source`` its id — or an operator's key, by hand (audited, not rated).

A batch is all or nothing: its events are appended in one MULTI/EXEC. An accepted event is
appended to the inbound stream whose subscription applies its type (the service's consumer
reads it), with the request's trace context (the consumer's span continues the HTTP
request's trace), and processed like any other entry: the consumer's inbox dedupes on
``event_id``, so posting an event again is safe. Every request, accepted or refused, leaves
rows in ``ingest_audit``, written in their own transaction after the answer is decided: an
audit that fails after the append is logged (ids only), and the events are still accepted.
"""

from iomflow.shared.ingest import audit, auth, form, ratelimit, router, validation
from iomflow.shared.ingest.audit import Call
from iomflow.shared.ingest.form import Intake, intake
from iomflow.shared.ingest.ratelimit import WINDOW_S, Rate, rate_key, rate_keys
from iomflow.shared.ingest.router import (
    ERRORS,
    AcceptedBatch,
    AcceptedEvent,
    Appended,
    IngestAuditRead,
    PublisherRead,
    ingestion_router,
)
from iomflow.shared.ingest.validation import BATCH_MAX, body_schema, inbound_streams, validate

__all__ = [
    "BATCH_MAX",
    "ERRORS",
    "WINDOW_S",
    "AcceptedBatch",
    "AcceptedEvent",
    "Appended",
    "Call",
    "IngestAuditRead",
    "Intake",
    "PublisherRead",
    "Rate",
    "audit",
    "auth",
    "body_schema",
    "form",
    "inbound_streams",
    "ingestion_router",
    "intake",
    "rate_key",
    "rate_keys",
    "ratelimit",
    "router",
    "validate",
    "validation",
]
