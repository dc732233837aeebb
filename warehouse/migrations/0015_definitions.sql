-- The revisions of the installation's pipeline files (`millrace pipelines
-- apply`): every process and command runs the newest. A revision is never
-- changed or deleted; its files are kept so that the UI shows what each
-- run ran. pipelines holds each pipeline's hash (what its data depends
-- on), which a run records: a partition served by another hash is stale.
CREATE TABLE millrace.definitions (
    revision   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256     text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    source     text        NOT NULL DEFAULT '',
    files      jsonb       NOT NULL,
    pipelines  jsonb       NOT NULL,
    retired    text[]      NOT NULL DEFAULT '{}',
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    applied_by text        NOT NULL DEFAULT ''
);

-- The revision and the pipeline's hash a run ran; NULL for the runs of
-- millrace before declared pipelines, and for runs of the built-ins in a
-- process to which no revision was applied.
ALTER TABLE millrace.runs ADD COLUMN revision bigint, ADD COLUMN definition text;
