-- The login limiter's counts (web/loginlimit.go), shared by every millrace
-- process on the database, so that N replicas behind a load balancer give a
-- guesser the attempts of one. Three kinds of row:
--   client: the failures of one client (an IPv4 address or an IPv6 /64)
--           in its window;
--   name:   the failures of one of 65,536 buckets of user names (the first
--           two bytes of the name's SHA-256), whether or not a user has the
--           name, so that the limiter answers made-up names and real ones
--           alike and a flood of names cannot grow the table;
--   known:  a client and user name that logged in lately (the SHA-256 of
--           both), exempt from that name's lock; failures is 0.
-- until is when the row's window or exemption ends. Expired rows are
-- deleted at most a minute after they expire, and the client and known
-- rows are capped (the ones closest to expiring go first).
CREATE TABLE millrace.login_limits (
    kind     text        NOT NULL CHECK (kind IN ('client', 'name', 'known')),
    key      text        NOT NULL CHECK (length(key) <= 128),
    failures integer     NOT NULL DEFAULT 0,
    until    timestamptz NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX login_limits_until_idx ON millrace.login_limits (kind, until);
