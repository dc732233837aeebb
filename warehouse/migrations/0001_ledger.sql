-- The run ledger: one row per pipeline partition (what the scheduler asks),
-- one row per attempt (the history the UI shows).
CREATE TABLE millrace.partitions (
    pipeline     text        NOT NULL,
    partition    text        NOT NULL, -- YYYY-MM, or '' when not partitioned
    state        text        NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    rows         bigint      NOT NULL DEFAULT 0,
    started_at   timestamptz,
    finished_at  timestamptz,
    error        text        NOT NULL DEFAULT '',
    last_run_id  bigint,
    succeeded_at timestamptz,  -- newest success: the partition's data exists
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (pipeline, partition)
);

CREATE TABLE millrace.runs (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline    text        NOT NULL,
    partition   text        NOT NULL,
    attempt     integer     NOT NULL,
    state       text        NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    trigger     text        NOT NULL DEFAULT '',
    job_id      bigint,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    rows        bigint      NOT NULL DEFAULT 0,
    error       text        NOT NULL DEFAULT '',
    log         text        NOT NULL DEFAULT ''
);

CREATE INDEX runs_partition_idx ON millrace.runs (pipeline, partition, id DESC);
