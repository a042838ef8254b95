-- Overlap of showtimes in a hall is refused by an exclusion constraint (btree_gist is a
-- trusted extension: the database owner may create it).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE cinemas (
    id           bigserial PRIMARY KEY,
    external_key text UNIQUE,
    name         text        NOT NULL,
    city         text        NOT NULL,
    address      text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE halls (
    id        bigserial PRIMARY KEY,
    cinema_id bigint NOT NULL REFERENCES cinemas (id) ON DELETE CASCADE,
    name      text   NOT NULL,
    UNIQUE (cinema_id, name)
);

CREATE TABLE seats (
    id           bigserial PRIMARY KEY,
    hall_id      bigint  NOT NULL REFERENCES halls (id) ON DELETE CASCADE,
    row_label    text    NOT NULL,
    number       integer NOT NULL CHECK (number > 0),
    label        text    NOT NULL,
    seat_type    text    NOT NULL CHECK (seat_type IN ('standard', 'vip', 'couple')),
    price        bigint  NOT NULL CHECK (price >= 0),
    blocked      boolean NOT NULL DEFAULT false,
    pair_label   text,
    UNIQUE (hall_id, label)
);

CREATE TABLE showtimes (
    id           bigserial PRIMARY KEY,
    external_key text UNIQUE,
    film_id      bigint      NOT NULL,
    hall_id      bigint      NOT NULL REFERENCES halls (id),
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL CHECK (ends_at > starts_at),
    released_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT showtimes_no_overlap EXCLUDE USING gist (
        hall_id WITH =, tstzrange(starts_at, ends_at) WITH &&
    )
);
CREATE INDEX showtimes_film_start ON showtimes (film_id, starts_at);
