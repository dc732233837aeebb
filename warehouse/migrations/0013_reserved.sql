-- Every table millrace will publish is created at set-up, empty, so that no
-- database user can take its name first (a user's public.feature_store made
-- the first process_data fail for good). Such a table is millrace's but
-- holds no data of a run yet: reserved until the first publication.
ALTER TABLE millrace.relations ADD COLUMN reserved boolean NOT NULL DEFAULT false;
