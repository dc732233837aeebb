-- Sessions of the web UI, shared by every millrace process on the database.
CREATE TABLE millrace.sessions (
    token_hash bytea       PRIMARY KEY, -- sha256 of the cookie's token
    username   text        NOT NULL,
    csrf       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL
);
