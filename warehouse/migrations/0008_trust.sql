-- Trust in the data: what each attempt read, the checks it made before
-- publishing, accepted anomalies, and sources that changed since.

-- The source objects an attempt read, with their identity then: ETag,
-- size and modification time as the source reports them, and the
-- SHA-256 of the bytes read.
CREATE TABLE millrace.run_sources (
    run_id      bigint      NOT NULL,
    key         text        NOT NULL,
    etag        text        NOT NULL DEFAULT '',
    size        bigint      NOT NULL,
    modified_at timestamptz,
    sha256      text        NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, key)
);

-- The checks an attempt made before it published: passed, failed, or
-- failed and accepted by a person.
CREATE TABLE millrace.run_checks (
    run_id   bigint NOT NULL,
    name     text   NOT NULL,
    outcome  text   NOT NULL CHECK (outcome IN ('passed', 'failed', 'accepted')),
    observed text   NOT NULL,
    expected text   NOT NULL,
    detail   text   NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, name)
);
ALTER TABLE millrace.runs
    -- A person accepted the attempt's failed checks: who, and when.
    ADD COLUMN accepted_by text NOT NULL DEFAULT '',
    ADD COLUMN accepted_at timestamptz;

-- A succeeded partition whose source changed or disappeared since it was
-- loaded: its data is still served.
ALTER TABLE millrace.partitions
    ADD COLUMN stale_since  timestamptz,
    ADD COLUMN stale_reason text NOT NULL DEFAULT '';

INSERT INTO millrace.locks (name) VALUES ('source_check');

ALTER TABLE millrace.alerts DROP CONSTRAINT alerts_event_check,
    ADD CONSTRAINT alerts_event_check CHECK (event IN ('failed', 'recovered', 'late', 'cancelled', 'stale'));

-- OpenLineage run events, written in the transaction of the run's start
-- or outcome and delivered afterwards (package lineage).
CREATE TABLE millrace.lineage_events (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       bigint      NOT NULL,
    event_type   text        NOT NULL CHECK (event_type IN ('START', 'COMPLETE', 'FAIL', 'ABORT')),
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts     integer     NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at timestamptz,
    error        text        NOT NULL DEFAULT ''
);
CREATE INDEX lineage_events_due_idx ON millrace.lineage_events (next_at) WHERE delivered_at IS NULL;
