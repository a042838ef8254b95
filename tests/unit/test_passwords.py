"""Password hashing: a bounded number at once, whatever the burst of requests."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bmt_user import domain
from bmt_user.passwords import Passwords


async def test_no_more_hashes_run_at_once_than_the_pool_has_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running, most, lock = 0, 0, threading.Lock()

    def slow_hash(password: str) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)  # the work itself: argon2id takes this long and 64 MiB
        with lock:
            running -= 1
        return f"hash of {password}"

    monkeypatch.setattr(domain, "hash_password", slow_hash)
    passwords = Passwords(2)
    try:
        hashes = await asyncio.gather(*(passwords.hash(f"pw{n}") for n in range(8)))
    finally:
        passwords.close()
    assert hashes == [f"hash of pw{n}" for n in range(8)]
    assert most == 2


async def test_a_real_hash_matches_its_password_only() -> None:
    passwords = Passwords(1)
    try:
        stored = await passwords.hash("a long enough password")
        assert await passwords.matches(stored, "a long enough password")
        assert not await passwords.matches(stored, "another password")
        assert not await passwords.matches(None, "a long enough password")
    finally:
        passwords.close()
