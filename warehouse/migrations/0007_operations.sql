-- Running unattended: cancel, pause, backfills as records, alerts.

-- A run can be cancelled: a queued one before it starts, a running one
-- rolls back. Cancelled is a state of its own, never retried.
ALTER TABLE millrace.partitions DROP CONSTRAINT partitions_state_check,
    ADD CONSTRAINT partitions_state_check CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled'));
ALTER TABLE millrace.runs DROP CONSTRAINT runs_state_check,
    ADD CONSTRAINT runs_state_check CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled'));
ALTER TABLE millrace.partitions
    -- Set when a person asks to cancel the running attempt: the attempt
    -- watches it, and rolls back.
    ADD COLUMN cancel_requested_at timestamptz,
    ADD COLUMN cancel_requested_by text NOT NULL DEFAULT '';
ALTER TABLE millrace.runs
    ADD COLUMN backfill_id bigint,
    -- The person who asked for the run ('' for the schedule).
    ADD COLUMN requested_by text NOT NULL DEFAULT '';
CREATE INDEX runs_backfill_idx ON millrace.runs (backfill_id) WHERE backfill_id IS NOT NULL;

-- A paused pipeline is queued by nothing automatic.
CREATE TABLE millrace.pauses (
    pipeline  text        PRIMARY KEY,
    reason    text        NOT NULL,
    paused_by text        NOT NULL,
    paused_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    until     timestamptz -- NULL: until resumed
);

-- Every backfill, with the plan it queued.
CREATE TABLE millrace.backfills (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline       text        NOT NULL,
    from_month     text        NOT NULL,
    to_month       text        NOT NULL,
    only_states    text        NOT NULL,
    requested_by   text        NOT NULL,
    trigger        text        NOT NULL,
    max_concurrent integer     NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    cancelled_at   timestamptz,
    cancelled_by   text        NOT NULL DEFAULT ''
);
CREATE TABLE millrace.backfill_months (
    backfill_id   bigint  NOT NULL REFERENCES millrace.backfills ON DELETE CASCADE,
    partition     text    NOT NULL,
    state_at_plan text    NOT NULL,
    run           boolean NOT NULL, -- the plan runs it (and queued it)
    reason        text    NOT NULL,
    PRIMARY KEY (backfill_id, partition)
);

-- Alerts, recorded in the transaction of the state change they tell of,
-- and their delivery to each notification URL (target: the URL's sha256,
-- as the URL may hold a secret).
CREATE TABLE millrace.alerts (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event     text        NOT NULL CHECK (event IN ('failed', 'recovered', 'late', 'cancelled')),
    pipeline  text        NOT NULL,
    partition text        NOT NULL,
    error     text        NOT NULL DEFAULT '',
    attempts  integer     NOT NULL DEFAULT 0,
    run_id    bigint,
    at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- A partition's newest alert decides the next: a success after 'failed'
-- or 'late' sends 'recovered'; 'late' is sent once.
CREATE INDEX alerts_partition_idx ON millrace.alerts (pipeline, partition, id DESC);
CREATE TABLE millrace.alert_deliveries (
    alert_id     bigint      NOT NULL REFERENCES millrace.alerts ON DELETE CASCADE,
    target       text        NOT NULL,
    target_label text        NOT NULL, -- the URL without path, query or user
    attempts     integer     NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at timestamptz,
    error        text        NOT NULL DEFAULT '',
    PRIMARY KEY (alert_id, target)
);
