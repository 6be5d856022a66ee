"""Every event type of a stream a service reads is applied or declared ignored.

A type the subscription neither handles nor ignores is dead-lettered as ``not_handled``
(``shared/streams.py``): right for a type no contract knows, wrong for one another service
publishes on purpose — the new type's every entry would pile up in the DLQ (the needs
answers did, in routes, before this test)."""

from __future__ import annotations

import importlib

import pytest

from iomflow.shared.contracts import types_of
from iomflow.shared.streams import Subscription

CONSUMERS = ("diagnostics", "routes", "monitoring")


@pytest.mark.parametrize("service", CONSUMERS)
def test_every_type_of_a_read_stream_is_applied_or_ignored(service: str) -> None:
    subscriptions: list[Subscription] = importlib.import_module(
        f"iomflow.{service}.handlers"
    ).SUBSCRIPTIONS
    assert subscriptions
    for sub in subscriptions:
        unknown = types_of(sub.stream) - set(sub.handlers) - set(sub.ignores)
        assert not unknown, f"{service} on {sub.stream}: neither applies nor ignores {unknown}"
        assert not set(sub.handlers) & set(sub.ignores), f"{service}: both applied and ignored"
