CREATE TYPE user_role AS ENUM ('customer', 'staff', 'admin');

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    email         text        NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash text        NOT NULL,
    role          user_role   NOT NULL DEFAULT 'customer',
    name          text        NOT NULL,
    birthday      date,
    sex           text        CHECK (sex IN ('female', 'male', 'other')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One live code per e-mail and purpose; a new request replaces it and resets the tries.
CREATE TABLE otps (
    email      text        NOT NULL,
    purpose    text        NOT NULL CHECK (purpose IN ('registration', 'password_reset')),
    code_hash  bytea       NOT NULL,
    expires_at timestamptz NOT NULL,
    attempts   integer     NOT NULL DEFAULT 0,
    used_at    timestamptz,
    PRIMARY KEY (email, purpose)
);

-- Every code request, to cap resends per hour.
CREATE TABLE otp_requests (
    email        text        NOT NULL,
    purpose      text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX otp_requests_recent ON otp_requests (email, purpose, requested_at);

-- Proof that an e-mail was verified by its code: spent by the next step of the flow.
CREATE TABLE verifications (
    token_hash bytea PRIMARY KEY,
    email      text        NOT NULL,
    purpose    text        NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- A session is a chain of refresh tokens; each refresh replaces the token (rotation), and
-- presenting a replaced token revokes the whole session (it was stolen or replayed).
CREATE TABLE sessions (
    id         uuid PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);

CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    session_id  uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    replaced_at timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
