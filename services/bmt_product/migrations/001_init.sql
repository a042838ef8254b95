CREATE TABLE films (
    id               bigserial PRIMARY KEY,
    title            text        NOT NULL,
    description      text        NOT NULL DEFAULT '',
    release_date     date        NOT NULL,
    duration_minutes integer     NOT NULL CHECK (duration_minutes BETWEEN 1 AND 600),
    genres           text[]      NOT NULL DEFAULT '{}',
    age_rating       text        NOT NULL,
    -- The object keys the film's media are expected at; a URL counts once media has it.
    poster_key       text,
    trailer_key      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fabs (
    id         bigserial PRIMARY KEY,
    name       text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('food', 'beverage')),
    price      bigint      NOT NULL CHECK (price >= 0),
    image_key  text,
    is_deleted boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Objects the media pipeline reported as stored. Keyed by object key, so an event that
-- arrives before its film row commits, or twice, still ends in the same state.
CREATE TABLE media (
    key         text PRIMARY KEY,
    owner       text        NOT NULL,
    owner_id    bigint      NOT NULL,
    slot        text        NOT NULL,
    url         text        NOT NULL,
    size        bigint      NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now()
);
