-- Released showtimes and their seats, from `showtime_released` events.
CREATE TABLE showtimes (
    id          bigint PRIMARY KEY,
    film_id     bigint      NOT NULL,
    cinema_name text        NOT NULL,
    hall_name   text        NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL
);

-- The inventory. A seat is held by one order until `held_until`; past that moment it is free
-- for the next buyer at once, whether or not the sweeper has run.
CREATE TABLE seats (
    showtime_id  bigint NOT NULL REFERENCES showtimes (id),
    seat_id      bigint NOT NULL,
    label        text   NOT NULL,
    seat_type    text   NOT NULL,
    price        bigint NOT NULL,
    pair_seat_id bigint,
    status       text   NOT NULL DEFAULT 'available' CHECK (status IN ('available', 'held', 'sold')),
    order_id     bigint,
    held_until   timestamptz,
    PRIMARY KEY (showtime_id, seat_id),
    CHECK ((status = 'available') = (order_id IS NULL))
);
CREATE INDEX seats_order ON seats (order_id) WHERE order_id IS NOT NULL;

CREATE TABLE orders (
    id           bigserial PRIMARY KEY,
    user_id      bigint      NOT NULL,
    email        text        NOT NULL,
    showtime_id  bigint      NOT NULL REFERENCES showtimes (id),
    status       text        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'confirmed', 'expired', 'cancelled', 'refund_required')),
    seats_total  bigint      NOT NULL DEFAULT 0,
    fabs_total   bigint      NOT NULL DEFAULT 0,
    total        bigint      NOT NULL DEFAULT 0,
    expires_at   timestamptz NOT NULL,
    payment_id   bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz,
    closed_at    timestamptz
);
CREATE INDEX orders_pending_expiry ON orders (expires_at) WHERE status = 'pending';
CREATE INDEX orders_user ON orders (user_id, id);

CREATE TABLE order_seats (
    order_id  bigint NOT NULL REFERENCES orders (id),
    seat_id   bigint NOT NULL,
    label     text   NOT NULL,
    seat_type text   NOT NULL,
    price     bigint NOT NULL,
    PRIMARY KEY (order_id, seat_id)
);

CREATE TABLE order_fabs (
    order_id   bigint  NOT NULL REFERENCES orders (id),
    fab_id     bigint  NOT NULL,
    name       text    NOT NULL,
    unit_price bigint  NOT NULL,
    quantity   integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, fab_id)
);

-- The last safety net: whatever happens above, a seat of a showtime has one ticket.
CREATE TABLE tickets (
    id            bigserial PRIMARY KEY,
    order_id      bigint      NOT NULL REFERENCES orders (id),
    showtime_id   bigint      NOT NULL,
    seat_id       bigint      NOT NULL,
    seat_label    text        NOT NULL,
    code          text        NOT NULL UNIQUE,
    issued_at     timestamptz NOT NULL DEFAULT now(),
    checked_in_at timestamptz,
    UNIQUE (showtime_id, seat_id)
);
CREATE INDEX tickets_order ON tickets (order_id);
