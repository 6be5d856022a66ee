"""Whether a route helped: the next diagnosis's changes attributed to the routes before it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from iomflow.shared.contracts import (
    CompetencyChange,
)

# --- effectiveness -------------------------------------------------------------------------

GOOD = ("closed", "improved")


@dataclass(frozen=True)
class Attribution:
    step_id: str
    kind: str
    competency: str
    change: str
    program_id: str | None
    site_id: str | None
    mentor_id: str | None
    community_id: str | None


def attribute(
    steps: Sequence[Mapping[str, Any]], changes: Iterable[CompetencyChange]
) -> list[Attribution]:
    """What a re-diagnosis says of a route's steps: each done step gets the change of its
    competency (closed / improved / unchanged / worse). Steps not done are not credited or
    blamed; a competency the new diagnosis does not mention is not attributed, nor is a
    burnout prevention step (it was not there for the competency's deficit)."""
    by_code = {c.code: c.change for c in changes}
    return [
        Attribution(
            step_id=s["step_id"],
            kind=s["kind"],
            competency=s["competency"],
            change=by_code[s["competency"]],
            program_id=s.get("program_id") if s["kind"] == "program" else None,
            site_id=s.get("site_id"),
            mentor_id=s.get("mentor_id"),
            community_id=s.get("community_id"),
        )
        for s in steps
        if s.get("status") == "done"
        and s.get("purpose", "deficit") == "deficit"
        and s["competency"] in by_code
        and by_code[s["competency"]] != "new"
    ]


def effectiveness(changes: Iterable[str]) -> dict[str, Any]:
    """Counts of outcomes and the share of closed or improved deficits among them."""
    counts = Counter(changes)
    evaluated = sum(counts.values())
    good = sum(counts[c] for c in GOOD)
    return {
        "evaluated": evaluated,
        **{c: counts[c] for c in ("closed", "improved", "unchanged", "worse")},
        "effective_share": round(100 * good / evaluated, 1) if evaluated else None,
    }
