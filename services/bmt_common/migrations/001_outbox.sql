-- The transactional outbox: a row per event, written in the transaction of the state change.
-- Debezium streams it to `<database>.public.outboxes`; rows are never updated.
CREATE TABLE outboxes (
    id             bigserial PRIMARY KEY,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    event_type     text        NOT NULL,
    event_version  integer     NOT NULL DEFAULT 1,
    payload        jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- What this service's consumers applied, recorded in the transaction of the effect:
-- a second delivery of the same event finds its row and changes nothing.
CREATE TABLE applied_events (
    source     text        NOT NULL,
    event_id   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
);
