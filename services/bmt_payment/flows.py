"""The flows behind the routes and the consumer: applying a gateway's result once, and refunds."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping

import asyncpg

from bmt_common import outbox
from bmt_common.events import PaymentFailed, PaymentRefunded, PaymentSucceeded
from bmt_payment import domain
from bmt_payment import repository as repo
from bmt_payment.domain import Outcome, Provider
from bmt_payment.gateway import Gateway, GatewayError, Refund, Result

log = logging.getLogger(__name__)


async def apply_result(
    pool: asyncpg.Pool, provider: Provider, result: Result, now: dt.datetime
) -> tuple[Outcome, int | None]:
    """Apply a verified gateway result, once; returns the outcome and, when money arrived for
    an order that cannot take it, the payment to refund once this transaction has committed."""
    async with pool.acquire() as conn, conn.transaction():
        # The row lock orders concurrent copies of one callback: the second sees the first's end.
        payment = await repo.payment_by_txn_ref_for_update(conn, result.txn_ref)
        if payment is None or payment["provider"] != provider:
            return Outcome.NOT_FOUND, None
        if result.amount != payment["amount"]:
            return Outcome.WRONG_AMOUNT, None
        if payment["status"] != "created":
            if result.success and payment["transaction_no"] != result.transaction_no:
                if payment["status"] == "failed":
                    # Money came after the payment was closed as failed: it goes back.
                    fresh = await repo.record_callback(
                        conn,
                        provider=provider,
                        transaction_no=domain.callback_key(result.transaction_no, result.txn_ref),
                        payment_id=payment["id"],
                        result_code=result.code,
                        params=result.params,
                    )
                    if fresh:
                        reason = "paid after the payment had failed"
                        await repo.mark_paid_late(
                            conn, payment["id"], result.transaction_no, now, reason
                        )
                        log.warning("payment %s: %s; refunding it", payment["id"], reason)
                        return Outcome.APPLIED, payment["id"]
                else:
                    log.error(
                        "%s reports a second transaction for payment %s, already %s;"
                        " check it by hand",
                        provider,
                        payment["id"],
                        payment["status"],
                        extra={"transaction_no": result.transaction_no},
                    )
            return Outcome.ALREADY_APPLIED, None
        fresh = await repo.record_callback(
            conn,
            provider=provider,
            transaction_no=domain.callback_key(result.transaction_no, result.txn_ref),
            payment_id=payment["id"],
            result_code=result.code,
            params=result.params,
        )
        if not fresh:
            return Outcome.ALREADY_APPLIED, None
        if not result.success:
            failure = f"{result.code}: {result.message}"
            await repo.mark_failed(conn, payment["id"], result.transaction_no, failure)
            await outbox.add(
                conn,
                PaymentFailed(
                    payment_id=payment["id"],
                    order_id=payment["order_id"],
                    provider=provider,
                    reason=failure,
                ),
            )
            return Outcome.APPLIED, None
        # Locked, so that two payments of one order arriving together are told apart.
        order = await repo.order_for_update(conn, payment["order_id"])
        late = domain.late_reason(
            order["status"] if order else None,
            order["expires_at"] if order else None,
            now,
            await repo.order_paid(conn, payment["order_id"], other_than=payment["id"]),
        )
        if late is not None:
            # Never kept, never dropped: the money goes back after the commit.
            await repo.mark_paid_late(conn, payment["id"], result.transaction_no, now, late)
            log.warning("payment %s arrived late: %s; refunding it", payment["id"], late)
            return Outcome.APPLIED, payment["id"]
        await repo.mark_succeeded(conn, payment["id"], result.transaction_no, now)
        await outbox.add(
            conn,
            PaymentSucceeded(
                payment_id=payment["id"],
                order_id=payment["order_id"],
                amount=payment["amount"],
                provider=provider,
                transaction_no=result.transaction_no,
            ),
        )
        return Outcome.APPLIED, None


class Refunder:
    """Refunds payments in refund_pending: at once when asked, and again every
    `retry_seconds` for those whose refund failed or was interrupted. A lease on the payment
    row keeps two workers (or replicas) from asking the gateway twice at the same time."""

    def __init__(
        self, pool: asyncpg.Pool, gateways: Mapping[str, Gateway], retry_seconds: float
    ) -> None:
        self.pool = pool
        self.gateways = gateways
        self.retry_seconds = retry_seconds
        self._tasks: set[asyncio.Task[bool]] = set()

    async def refund(self, payment_id: int) -> bool:
        """True if the payment is refunded now; failures are logged and retried later."""
        async with self.pool.acquire() as conn, conn.transaction():
            payment = await repo.claim_refund(conn, payment_id, self.retry_seconds)
        if payment is None:
            return False
        refund = Refund(
            payment_id=payment["id"],
            txn_ref=payment["txn_ref"],
            amount=payment["amount"],
            transaction_no=payment["transaction_no"] or "",
            created_at=payment["created_at"],
            reason=payment["refund_reason"] or "refund requested",
        )
        try:
            outcome = await self.gateways[payment["provider"]].refund(refund)
        except GatewayError as exc:
            log.warning("refund of payment %s failed: %s; retrying later", payment_id, exc)
            return False
        if not outcome.ok:
            log.warning(
                "the gateway refused to refund payment %s (%s: %s); retrying later",
                payment_id,
                outcome.code,
                outcome.message,
            )
            return False
        async with self.pool.acquire() as conn, conn.transaction():
            done = await repo.mark_refunded(conn, payment_id)
            if done is not None:
                await outbox.add(
                    conn,
                    PaymentRefunded(
                        payment_id=done["id"],
                        order_id=done["order_id"],
                        amount=done["amount"],
                        reason=refund.reason,
                    ),
                )
        log.info("refunded payment %s", payment_id)
        return done is not None

    def soon(self, payment_id: int) -> None:
        """Refund in the background; safe to call inside the transaction that asked for it,
        since the claim waits for that transaction to end."""
        task = asyncio.create_task(self.refund(payment_id), name=f"refund:{payment_id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[bool]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("refund task failed", exc_info=task.exception())

    async def sweep(self) -> int:
        """Refund every payment whose refund is due; returns how many were refunded."""
        async with self.pool.acquire() as conn:
            due = await repo.refunds_due(conn, self.retry_seconds)
        done = 0
        for payment_id in due:
            done += await self.refund(payment_id)
        return done

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # the sweep is the safety net: it must outlive any one failure
                log.exception("the refund sweep failed; trying again later")
            await asyncio.sleep(self.retry_seconds)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
