-- People: users with roles, API tokens, and the audit log of every action.

-- A person who signs in to the UI or the API. password_hash is an argon2id
-- PHC string; NULL for a user who signs in only through the company's proxy
-- (MILLRACE_AUTH_PROXY_HEADER).
CREATE TABLE millrace.users (
    name                text        PRIMARY KEY CHECK (name <> '' AND length(name) <= 64),
    role                text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash       text,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by          text        NOT NULL DEFAULT '',
    password_changed_at timestamptz
);

-- A script's credential, sent as Authorization: Bearer. Only its SHA-256 is
-- kept: the token itself is shown once, when it is created.
CREATE TABLE millrace.tokens (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL CHECK (name <> '' AND length(name) <= 64),
    role       text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    token_hash bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by text        NOT NULL DEFAULT '',
    revoked_at timestamptz,
    revoked_by text        NOT NULL DEFAULT ''
);

-- Every state-changing action, written in the transaction of the action.
CREATE TABLE millrace.audit (
    id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor   text        NOT NULL,
    action  text        NOT NULL,
    target  text        NOT NULL DEFAULT '',
    detail  jsonb       NOT NULL DEFAULT '{}',
    address text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_at_idx ON millrace.audit (at);

-- A session counts only while its user exists (the session's read joins
-- millrace.users): package users deletes a user's sessions when it removes
-- the user or changes the password, and any left under a name when it
-- creates a user of that name. The sessions of the one shared login stay:
-- they count again once its user, the first admin, exists.
CREATE INDEX sessions_username_idx ON millrace.sessions (username);

-- A session that the sign-in proxy opened counts only while the proxy's
-- header names its user: its cookie alone signs nobody in.
ALTER TABLE millrace.sessions ADD COLUMN via_proxy boolean NOT NULL DEFAULT false;
