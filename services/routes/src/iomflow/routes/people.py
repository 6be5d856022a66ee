"""People's names for the methodist's workplace, read from the registries.

Routes holds pseudonymous ids only (152-ФЗ): full names live in the registries, behind
their ``personal_data`` role, each read written to their access log with its purpose. The
workplace asks for them server-side, with the routes service's own registries key
(``registries_key``) and the purpose «рабочее место методиста» naming the person acting, and
only for a principal that holds ``personal_data`` here too. Otherwise — or when the
registries are not configured or do not answer — the page shows the pseudonyms and says why
(``Names.note``). This is a page's convenience, not the hot path: nothing here is waited on
by event handling, and a registries outage costs the page its names only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx

from iomflow.routes.settings import Settings
from iomflow.shared.auth import Principal

log = logging.getLogger(__name__)

ROLE = "personal_data"
"""The role the registries require to read a person's name (and that a principal of routes
must hold for the workplace to ask for one)."""

PURPOSE = "рабочее место методиста"
PARALLEL = 8
"""Reads in flight at once: the registries answer one record per request."""

NOTE_NO_ROLE = (
    "Имена не показаны: нужна роль доступа к персональным данным. "
    "Вместо имён — псевдонимы педагогов."
)
NOTE_NOT_CONNECTED = (
    "Имена не показаны: сервис маршрутов не подключён к реестрам. "
    "Вместо имён — псевдонимы педагогов."
)
NOTE_UNAVAILABLE = "Реестры не ответили: имена не получены. Вместо имён — псевдонимы педагогов."
NOTE_REFUSED = (
    "Реестры отказали в доступе к персональным данным: имена не получены. "
    "Вместо имён — псевдонимы педагогов."
)
NOTE_NOT_YOURS = (
    "Маршрут закреплён за другим методистом: имена не показаны, вместо них — псевдонимы."
)


@dataclass
class Names:
    """Full names by register and record id, whether they are shown, and if not (or not
    all), why."""

    shown: bool
    note: str | None = None
    names: dict[str, dict[str, str]] = field(default_factory=dict)

    def of(self, register: str, record_id: str | None) -> str | None:
        if record_id is None:
            return None
        return self.names.get(register, {}).get(record_id)

    def public(self) -> dict[str, object]:
        return {"shown": self.shown, "note": self.note}


def hidden(note: str) -> Names:
    return Names(shown=False, note=note)


def allowed(principal: Principal) -> bool:
    return principal.holds(ROLE)


async def names_of(
    settings: Settings, principal: Principal, wanted: Mapping[str, Iterable[str]]
) -> Names:
    """The names of ``wanted`` (register → record ids: teachers, mentors, methodists), for
    ``principal``; pseudonyms (no names) with a note when it may not see them, the
    registries are not configured, or they fail. A record the registries keep no name for
    is simply left out (its pseudonym is shown)."""
    if not allowed(principal):
        return hidden(NOTE_NO_ROLE)
    if not settings.registries_url or settings.registries_key is None:
        return hidden(NOTE_NOT_CONNECTED)
    acting = principal.person_id or principal.name
    purpose = f"{PURPOSE}: действует {acting}"
    key = settings.registries_key.get_secret_value()
    pairs = sorted({(r, i) for r, ids in wanted.items() for i in ids if i})
    names: dict[str, dict[str, str]] = {}
    gate = asyncio.Semaphore(PARALLEL)

    async def read(client: httpx.AsyncClient, register: str, record_id: str) -> None:
        async with gate:
            answer = await client.get(
                f"/v1/registers/{register}/records/{record_id}/personal",
                params={"purpose": purpose},
            )
        if answer.status_code == 404:
            return  # no personal data kept for this record: its pseudonym is shown
        answer.raise_for_status()
        full_name = answer.json().get("full_name")
        if full_name:
            names.setdefault(register, {})[record_id] = full_name

    try:
        async with httpx.AsyncClient(
            base_url=settings.registries_url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=settings.registries_timeout_s,
        ) as client:
            await asyncio.gather(*(read(client, r, i) for r, i in pairs))
    except httpx.HTTPStatusError as exc:
        log.warning("registries refused a personal-data read: %s", exc.response.status_code)
        note = NOTE_REFUSED if exc.response.status_code in (401, 403) else NOTE_UNAVAILABLE
        return hidden(note)
    except httpx.HTTPError as exc:
        log.warning("registries unavailable for names: %r", exc)
        return hidden(NOTE_UNAVAILABLE)
    return Names(shown=True, names=names)
