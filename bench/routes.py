"""How fast routes drafts a route per diagnosis, as a ratio of a bare transaction.

    uv run python bench/routes.py [--database-url URL] [--diagnoses 1000]

A synthetic region of the demo's proportions (2,000 teachers, 300 programs, 173
methodists, 60 tutors, 800 mentors, 40 internship sites, 50 communities) is loaded into a
fresh routes database (default: a SQLite file). Baseline, same run, same database: one
transaction per diagnosis that records its event id in the inbox and nothing else. Then
one transaction per diagnosis that records it and drafts its route (ranking programs,
choosing an internship site, a community, a mentor and tutors, pacing the steps, seating
a methodist and staging the events in the outbox).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from pathlib import Path

from iomflow.routes import domain, repository, service
from iomflow.shared import db, inbox
from iomflow.shared.contracts import CompetencyResult, DiagnosisCompleted, Level
from iomflow.shared.outbox import Outbox

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


async def load_region(sessions: object, rnd: random.Random, teachers: int) -> None:
    async with sessions() as session, session.begin():  # type: ignore[operator]
        for n, mun in enumerate(MUNICIPALITIES):
            await repository.save(
                session, "municipality", {"municipality_id": mun, "name": mun, "remote": n % 4 == 0}
            )
        for n in range(teachers):
            await repository.save(
                session,
                "teacher",
                {
                    "teacher_id": f"t-{n}",
                    "organization_id": f"org-{n % 1500}",
                    "municipality_id": rnd.choice(MUNICIPALITIES),
                    "audience": "general",
                    "subjects": [rnd.choice(SUBJECTS)],
                    "young": n % 10 == 0,
                    "is_manager": False,
                },
            )
        for n in range(300):
            await repository.save(
                session,
                "program",
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
                },
            )
        for n in range(173):
            await repository.save(
                session,
                "methodist",
                {
                    "methodist_id": f"m-{n}",
                    "specialisations": rnd.sample(CODES, 3),
                    "municipalities": [] if n % 5 == 0 else rnd.sample(MUNICIPALITIES, 3),
                    "subjects": [rnd.choice(SUBJECTS)],
                    "capacity": 250,
                },
            )
        for n in range(60):
            await repository.save(
                session,
                "tutor",
                {
                    "tutor_id": f"tu-{n}",
                    "specialisations": rnd.sample(CODES, 3),
                    "programs": [],
                    "municipalities": [],
                    "capacity": 50,
                },
            )
        for n in range(800):
            mun = rnd.choice(MUNICIPALITIES)
            await repository.save(
                session,
                "mentor",
                {
                    "mentor_id": f"mn-{n}",
                    "organization_id": f"org-{n}",
                    "municipality_id": mun,
                    "subjects": [rnd.choice(SUBJECTS)],
                    "capacity": 3,
                },
            )
        for n in range(40):
            await repository.save(
                session,
                "internship_site",
                {
                    "site_id": f"s-{n}",
                    "title": f"Площадка {n}",
                    "organization_id": f"org-{n}",
                    "municipality_id": rnd.choice(MUNICIPALITIES),
                    "competencies": rnd.sample(CODES, 2),
                    "capacity": 20,
                },
            )
        for n in range(50):
            await repository.save(
                session,
                "community",
                {
                    "community_id": f"c-{n}",
                    "title": f"Сообщество {n}",
                    "level": "regional",
                    "municipality_id": None,
                    "subjects": [],
                    "competencies": rnd.sample(CODES, 2),
                },
            )


def diagnosis(rnd: random.Random, teacher: int) -> DiagnosisCompleted:
    deficits = [
        CompetencyResult(
            code=code,
            score=rnd.uniform(20, 60),
            level=Level.CRITICAL if rnd.random() < 0.3 else Level.DEFICIT,
        )
        for code in rnd.sample(CODES, rnd.randint(2, 6))
    ]
    return DiagnosisCompleted(
        diagnosis_id=str(uuid.uuid4()),
        teacher_id=f"t-{teacher}",
        organization_id=f"org-{teacher % 1500}",
        municipality_id="mun-01",
        campaign_id="bench",
        framework_version="bench",
        competencies=deficits,
        deficits=deficits,
    )


async def main(url: str, n: int, teachers: int) -> None:
    engine = db.create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(repository.metadata.create_all)
    sessions = db.sessionmaker(engine)
    rnd = random.Random(7)
    await load_region(sessions, rnd, teachers)
    ctx = service.Routes(rules=domain.load_rules(), outbox=Outbox(repository.tables.outbox))
    inbox_table = repository.tables.inbox

    started = time.perf_counter()
    for _ in range(n):
        async with sessions() as session, session.begin():
            await inbox.record(session, inbox_table, "bench-baseline", uuid.uuid4())
    baseline = n / (time.perf_counter() - started)

    diagnoses = [diagnosis(rnd, i % teachers) for i in range(n)]
    started = time.perf_counter()
    for d in diagnoses:
        async with sessions() as session, session.begin():
            await inbox.record(session, inbox_table, "bench-routes", uuid.UUID(d.diagnosis_id))
            await service.draft_for_diagnosis(ctx, session, d)
    drafting = n / (time.perf_counter() - started)
    async with sessions() as session:
        counts = await repository.counts(session)
    await engine.dispose()
    print(f"database: {url.split('://')[0]}; diagnoses: {n}; region teachers: {teachers}")
    print(f"baseline (inbox row per transaction): {baseline:8.0f} /s")
    print(
        f"drafting a route per transaction:     {drafting:8.0f} /s"
        f"  = {drafting / baseline:.3f} x baseline"
    )
    print(f"routes open {counts['routes']}, assigned {counts['assigned']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--diagnoses", type=int, default=1000)
    parser.add_argument("--teachers", type=int, default=2000)
    args = parser.parse_args()
    url = args.database_url or (
        f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'routes-bench.db'}"
    )
    asyncio.run(main(url, args.diagnoses, args.teachers))
