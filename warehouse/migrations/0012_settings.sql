-- The installation's settings that every millrace process on this database
-- must share (where the files come from, the first month of the sales
-- schedule, the checks' ratios...), recorded by `db setup`, `serve` and
-- `demo` and read by every command, so that a command run beside a server
-- uses the server's source. One row per setting, by name; never a
-- credential. Numbered 12: 11 is taken by another change in flight.
CREATE TABLE millrace.settings (
    name       text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]*$'),
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_by text        NOT NULL DEFAULT ''
);
