-- The processes that run jobs. Each holds its row locked (FOR UPDATE, in a
-- transaction of its own) for as long as it lives; PostgreSQL frees the
-- lock when the process dies. A run job whose process's row is free has no
-- live worker, and the scheduler hands it back at once; a live process's
-- job is never handed back, however long it stalls.
CREATE TABLE millrace.processes (
    id         text        PRIMARY KEY, -- River's client id, as river_job.attempted_by names it
    started_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
