"""Sessions the user service ended (logout, a replayed refresh token, a password reset), read
from its outbox topic, so that their access tokens stop at the gateway at once rather than
living on until they expire."""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer

from bmt_common.events import SessionRevoked
from bmt_common.kafka import decode

log = logging.getLogger(__name__)


class RevokedSessions:
    """Session ids ended in the last `keep_seconds` (an access token's life and some margin)."""

    def __init__(self, keep_seconds: float) -> None:
        self.keep_seconds = keep_seconds
        self.caught_up = False  # the window before start-up has been read
        self._until: dict[str, float] = {}

    def __contains__(self, session_id: object) -> bool:
        until = self._until.get(str(session_id))
        return until is not None and until > time.time()

    def add(self, session_id: str, revoked_at: float) -> None:
        self._until[session_id] = revoked_at + self.keep_seconds
        if len(self._until) % 1024 == 0:  # now and then, forget what can no longer matter
            now = time.time()
            self._until = {s: until for s, until in self._until.items() if until > now}

    async def follow(self, bootstrap: str, topic: str) -> None:
        """Reads the topic for ever, from `keep_seconds` ago; reconnects after any failure."""
        while True:
            try:
                await self._follow(bootstrap, topic)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading revoked sessions from %s failed; reading again", topic)
                await asyncio.sleep(1.0)

    async def _follow(self, bootstrap: str, topic: str) -> None:
        # No consumer group: every gateway replica reads every revocation for itself.
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            partitions = list(consumer.assignment())
            since = int((time.time() - self.keep_seconds) * 1000)
            starts = await consumer.offsets_for_times({tp: since for tp in partitions})
            for tp, start in starts.items():
                if start is None:
                    await consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, start.offset)
            ends = await consumer.end_offsets(partitions)
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for records in batches.values():
                    for record in records:
                        delivery = decode(record)
                        if delivery is not None and isinstance(delivery.event, SessionRevoked):
                            self.add(delivery.event.session_id, record.timestamp / 1000)
                if not self.caught_up:
                    self.caught_up = all(
                        [await consumer.position(tp) >= ends[tp] for tp in partitions]
                    )
        finally:
            await consumer.stop()
