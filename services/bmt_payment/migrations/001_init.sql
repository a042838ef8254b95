-- The local copy of each order, kept from the order service's events (and refreshed when a
-- payment starts): enough to tell, when money arrives, whether the order can still take it.
CREATE TABLE orders (
    id         bigint PRIMARY KEY,
    user_id    bigint      NOT NULL,
    total      bigint      NOT NULL CHECK (total >= 0),
    status     text        NOT NULL
        CHECK (status IN ('pending', 'confirmed', 'expired', 'cancelled', 'refund_required')),
    expires_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One attempt to pay an order through one gateway. txn_ref is what the gateway calls the
-- merchant's reference (vnp_TxnRef, MoMo orderId); transaction_no is the gateway's own id.
CREATE TABLE payments (
    id                bigserial PRIMARY KEY,
    order_id          bigint      NOT NULL REFERENCES orders (id),
    user_id           bigint      NOT NULL,
    provider          text        NOT NULL CHECK (provider IN ('vnpay', 'momo')),
    amount            bigint      NOT NULL CHECK (amount > 0),
    status            text        NOT NULL DEFAULT 'created'
        CHECK (status IN ('created', 'succeeded', 'failed', 'refund_pending', 'refunded')),
    txn_ref           text        NOT NULL UNIQUE,
    transaction_no    text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    paid_at           timestamptz,
    refunded_at       timestamptz,
    failure           text,
    refund_reason     text,
    -- When a refund call was last started: a lease, so that two workers never refund at once.
    refund_attempt_at timestamptz
);
CREATE INDEX payments_order ON payments (order_id);
CREATE INDEX payments_refund_pending ON payments (id) WHERE status = 'refund_pending';

-- Every gateway callback that changed a payment; the unique key applies each gateway
-- transaction once, however often the gateway retries it.
CREATE TABLE gateway_callbacks (
    provider       text        NOT NULL,
    transaction_no text        NOT NULL,
    payment_id     bigint      NOT NULL REFERENCES payments (id),
    result_code    text        NOT NULL,
    params         jsonb       NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, transaction_no)
);
CREATE INDEX gateway_callbacks_payment ON gateway_callbacks (payment_id);
