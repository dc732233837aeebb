-- millrace's locks are row locks on tables of schema millrace, which no
-- other database user can reach. (Advisory locks are open to every user:
-- anyone could hold one of millrace's and stop its runs, its scheduler or
-- its start.)

-- One row per pipeline partition that ever ran: an attempt holds its row
-- (SELECT ... FOR UPDATE NOWAIT) from before it records its start until its
-- outcome commits, on the connection of its work; PostgreSQL releases it
-- when that connection ends, so a dead process holds nothing.
CREATE TABLE millrace.run_locks (
    pipeline  text NOT NULL,
    partition text NOT NULL,
    PRIMARY KEY (pipeline, partition)
);

-- Named locks: one scheduler pass at a time, one migration of River's
-- tables at a time.
CREATE TABLE millrace.locks (
    name text PRIMARY KEY
);
INSERT INTO millrace.locks (name) VALUES ('scheduler_pass'), ('job_queue_migrations');
