-- The advisory lock that keeps one attempt of a pipeline partition running
-- at a time, defined once for Go and SQL: the 64-bit key holds the
-- pipeline's hash in its high half and the month's number (year * 12 +
-- month, 0 for the partition '') in its low half, so that two months of a
-- pipeline never share a key (hashtext of 'pipeline/month' could). Keys of
-- different pipelines could collide only if their names' hashes did, which
-- a test rules out for the pipelines millrace has. The 64-bit key space does
-- not overlap the two-key one of millrace's fixed locks (LockSpace, n).
CREATE FUNCTION millrace.run_lock_key(pipeline text, partition text) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog
    RETURN (hashtext(pipeline)::bigint << 32)
        | CASE WHEN partition = '' THEN 0
               ELSE substr(partition, 1, 4)::bigint * 12 + substr(partition, 6, 2)::bigint END;
