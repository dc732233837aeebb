-- How far a running attempt is (phase, bytes of its object, rows so
-- far), written at most once a second outside the attempt's transaction,
-- so that everyone sees it at once.
ALTER TABLE millrace.runs ADD COLUMN progress jsonb;
