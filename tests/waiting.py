"""Waiting for what the services do in the background (no timed assertions: a generous
limit, then a failure that says what never happened)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
