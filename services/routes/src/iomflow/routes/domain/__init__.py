"""Routes (ИОМ): drafting, pace, methodist and tutor choice, lifecycle rules, effectiveness.

Pure rules, no I/O. The service loads views of the read models, calls these functions and
saves what they return. Every choice carries its reason in Russian, written for the
teacher and the methodist: which deficit, which competency, why this item over the
alternatives. Rule parameters (weights, hours, pace, budget, capacities) come from
``data/rules.json``; the route's own rules (who approves, its transitions) are the
methods of ``Route``.
"""

from __future__ import annotations

from iomflow.routes.domain.catalogue import (
    Catalogue,
    CommunityView,
    Draft,
    MentorView,
    MethodistView,
    ProgramView,
    SiteView,
    TeacherView,
    TutorView,
    for_audience,
    index_programs,
)
from iomflow.routes.domain.effectiveness import (
    GOOD,
    Attribution,
    attribute,
    effectiveness,
)
from iomflow.routes.domain.methodists import (
    Move,
    Seat,
    _methodist_key,
    best_methodist,
    eligible_methodists,
    methodist_reason,
    plan_rebalance,
    serves,
)
from iomflow.routes.domain.route import (
    OPEN,
    STEP_SEATS,
    Diagnosed,
    Fact,
    Route,
    RouteEvent,
    SeatsChanged,
    completion,
    missing_approvals,
    seats_of,
    starts_now,
    step_for_course,
    step_for_internship,
    trained_in,
    training,
    training_id,
)
from iomflow.routes.domain.rules import (
    Budget,
    Capacities,
    Capacity,
    CommunityRule,
    CompletionRule,
    InternshipRule,
    Pace,
    ProgramWeights,
    Rules,
    StepHours,
    _period_start,
    _Strict,
    load_rules,
)

__all__ = [
    "GOOD",
    "OPEN",
    "STEP_SEATS",
    "Attribution",
    "Budget",
    "Capacities",
    "Capacity",
    "Catalogue",
    "CommunityRule",
    "CommunityView",
    "CompletionRule",
    "Diagnosed",
    "Draft",
    "Fact",
    "InternshipRule",
    "MentorView",
    "MethodistView",
    "Move",
    "Pace",
    "ProgramView",
    "ProgramWeights",
    "Route",
    "RouteEvent",
    "Rules",
    "Seat",
    "SeatsChanged",
    "SiteView",
    "StepHours",
    "TeacherView",
    "TutorView",
    "_Strict",
    "_methodist_key",
    "_period_start",
    "attribute",
    "best_methodist",
    "completion",
    "effectiveness",
    "eligible_methodists",
    "for_audience",
    "index_programs",
    "load_rules",
    "methodist_reason",
    "missing_approvals",
    "plan_rebalance",
    "seats_of",
    "serves",
    "starts_now",
    "step_for_course",
    "step_for_internship",
    "trained_in",
    "training",
    "training_id",
]
