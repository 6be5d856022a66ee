"""What routes costs per diagnosis when it drafts in batches: CPU, SQL statements, time.

    uv run python bench/routes.py [--database-url URL] [--diagnoses 1000] [--batch 100]

A synthetic region of the demo's proportions (2,000 teachers, 300 programs, 173
methodists, 60 tutors, 800 mentors, 40 internship sites, 50 communities) is loaded into a
fresh routes database (default: a SQLite file). Then the diagnoses are applied as the
consumer applies a batch: one transaction that records the batch's event ids in the inbox
(one statement), calls the ``diagnostics.diagnosis.completed`` handler once with the whole
batch (drafting every route in memory, seating methodists, tutors, mentors and sites) and
writes the staged events into the outbox (one statement). A first batch warms the kept
offer and is not counted. ``--batch 1`` gives the cost of entry-by-entry application.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert

from iomflow.routes import domain, handlers, repository, service
from iomflow.shared import db, inbox
from iomflow.shared.contracts import CompetencyResult, DiagnosisCompleted, Event, Level, new_event
from iomflow.shared.outbox import Outbox
from iomflow.shared.unit import Deps

CODES = [
    "subject_content",
    "teaching_methods",
    "assessment",
    "functional_literacy",
    "digital",
    "upbringing",
    "inclusive_education",
    "communication",
    "career_guidance",
    "gifted_children",
]
MUNICIPALITIES = [f"mun-{n:02d}" for n in range(1, 43)]
SUBJECTS = ["математика", "русский язык", "история", "физика", "биология"]


def region(rnd: random.Random, teachers: int) -> dict[Any, list[dict[str, Any]]]:
    """Rows of the read models, as the registries' events leave them."""
    return {
        repository.municipalities: [
            {"municipality_id": mun, "name": mun, "remote": n % 4 == 0}
            for n, mun in enumerate(MUNICIPALITIES)
        ],
        repository.teachers: [
            {
                "teacher_id": f"t-{n}",
                "organization_id": f"org-{n % 1500}",
                "municipality_id": rnd.choice(MUNICIPALITIES),
                "audience": "general",
                "subjects": [rnd.choice(SUBJECTS)],
                "young": n % 10 == 0,
                "is_manager": False,
            }
            for n in range(teachers)
        ],
        repository.programs: [
            {
                "program_id": f"p-{n}",
                "title": f"Программа {n}",
                "hours": rnd.choice([16, 36, 72]),
                "federal_registry": n % 3 == 0,
                "competencies": rnd.sample(CODES, 2),
                "audiences": ["general"],
                "format": rnd.choice(["in_person", "distance", "network"]),
                "subjects": [] if n % 2 else [rnd.choice(SUBJECTS)],
                "federal_number": None,
            }
            for n in range(300)
        ],
        repository.methodists: [
            {
                "methodist_id": f"m-{n}",
                "specialisations": rnd.sample(CODES, 3),
                "municipalities": [] if n % 5 == 0 else rnd.sample(MUNICIPALITIES, 3),
                "subjects": [rnd.choice(SUBJECTS)],
                "capacity": 250,
            }
            for n in range(173)
        ],
        repository.tutors: [
            {
                "tutor_id": f"tu-{n}",
                "specialisations": rnd.sample(CODES, 3),
                "programs": [],
                "municipalities": [],
                "capacity": 50,
            }
            for n in range(60)
        ],
        repository.mentors: [
            {
                "mentor_id": f"mn-{n}",
                "organization_id": f"org-{n}",
                "municipality_id": rnd.choice(MUNICIPALITIES),
                "subjects": [rnd.choice(SUBJECTS)],
                "capacity": 3,
            }
            for n in range(800)
        ],
        repository.sites: [
            {
                "site_id": f"s-{n}",
                "title": f"Площадка {n}",
                "organization_id": f"org-{n}",
                "municipality_id": rnd.choice(MUNICIPALITIES),
                "competencies": rnd.sample(CODES, 2),
                "capacity": 20,
            }
            for n in range(40)
        ],
        repository.communities: [
            {
                "community_id": f"c-{n}",
                "title": f"Сообщество {n}",
                "level": "regional",
                "municipality_id": None,
                "subjects": [],
                "competencies": rnd.sample(CODES, 2),
            }
            for n in range(50)
        ],
    }


def diagnosis(rnd: random.Random, teacher: int) -> Event[Any]:
    deficits = [
        CompetencyResult(
            code=code,
            score=rnd.uniform(20, 60),
            level=Level.CRITICAL if rnd.random() < 0.3 else Level.DEFICIT,
        )
        for code in rnd.sample(CODES, rnd.randint(2, 6))
    ]
    payload = DiagnosisCompleted(
        diagnosis_id=str(uuid.uuid4()),
        teacher_id=f"t-{teacher}",
        organization_id=f"org-{teacher % 1500}",
        municipality_id="mun-01",
        campaign_id="bench",
        framework_version="bench",
        competencies=deficits,
        deficits=deficits,
    )
    return new_event(
        "diagnostics.diagnosis.completed", payload, source="diagnostics", subject=f"t-{teacher}"
    )


async def main(url: str, n: int, batch: int, teachers: int) -> None:
    engine = db.create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(repository.metadata.create_all)
    sessions = db.sessionmaker(engine)
    rnd = random.Random(7)
    async with sessions() as session, session.begin():
        for table, rows in region(rnd, teachers).items():
            await session.execute(insert(table), rows)
    ctx = service.Routes(rules=domain.load_rules())
    outbox = Outbox(repository.tables.outbox)
    handle = handlers.HANDLERS["diagnostics.diagnosis.completed"]
    statements = [0]

    def counted(*_: Any) -> None:
        statements[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", counted)

    async def apply(events: list[Event[Any]]) -> None:
        async with sessions() as session, session.begin():
            await inbox.record_many(
                session, repository.tables.inbox, "routes", [e.event_id for e in events]
            )
            deps = Deps(session, outbox, ctx)
            await handle(events, deps)
            await deps.flush()

    # Distinct teachers per batch while they last (a burst of a campaign), then again.
    order = list(range(teachers))
    rnd.shuffle(order)
    diagnoses = [diagnosis(rnd, order[i % teachers]) for i in range(n + batch)]
    await apply(diagnoses[:batch])  # warms the kept offer
    statements[0] = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(batch, n + batch, batch):
        await apply(diagnoses[start : start + batch])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    async with sessions() as session:
        counts = await repository.get_counts(session)
    await engine.dispose()
    print(
        f"database: {url.split('://')[0]}; diagnoses: {n} in batches of {batch}; "
        f"region teachers: {teachers}"
    )
    print(
        f"per diagnosis: {1000 * cpu / n:.2f} ms CPU, {1000 * wall / n:.2f} ms wall, "
        f"{statements[0] / n:.2f} SQL statements ({statements[0] * batch / n:.1f} per batch)"
    )
    print(f"throughput: {n / wall:.0f} diagnoses/s")
    print(f"routes open {counts['routes']}, assigned {counts['assigned']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--diagnoses", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--teachers", type=int, default=2000)
    args = parser.parse_args()
    url = args.database_url or (
        f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'routes-bench.db'}"
    )
    asyncio.run(main(url, args.diagnoses, args.batch, args.teachers))
