-- Security (CVE-2018-1058 class): millrace keeps what only it may create out
-- of schema public, and records what it created in public, so that it never
-- drops, alters or reads another user's object.
--
-- millrace_data holds the tables of loads in progress and the monthly
-- partitions of public.sales. Only its owner can create there, so no user's
-- object can take a name millrace needs. Readers reach the partitions through
-- public.sales, whose privileges are the only ones checked.
CREATE SCHEMA IF NOT EXISTS millrace_data;
REVOKE ALL ON SCHEMA millrace_data FROM PUBLIC;

-- The tables of schema public that millrace created: it replaces, alters,
-- drops and reads only these, and a name held by anything else fails the run
-- with a message naming the object. relid changes when a reload publishes a
-- new table; the row changes in the same transaction.
CREATE TABLE millrace.relations (
    name  text PRIMARY KEY,
    relid oid  NOT NULL UNIQUE
);

-- Adopt what an earlier millrace created: the tables of its pipelines that
-- the user running this migration (the superuser millrace connects as) owns.
INSERT INTO millrace.relations (name, relid)
SELECT c.relname, c.oid
FROM pg_catalog.pg_class c
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
  AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
  AND c.relname IN ('customer_profiles', 'customer_activity', 'labels', 'stores', 'sales', 'monthly_sales',
                    'feature_store', 'customer_activity_ranked', 'sales_statistics');

-- Move the monthly partitions of sales out of public, where their names
-- (sales_2020_01) were free for any user to take.
DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_catalog.pg_inherits i
        JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
        JOIN millrace.relations r ON r.relid = i.inhparent AND r.name = 'sales'
        WHERE c.relnamespace = 'public'::regnamespace
          AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE public.%I SET SCHEMA millrace_data', part.relname);
    END LOOP;
END
$$;

-- Take TRIGGER and REFERENCES on millrace's tables back from mle_user, to
-- whom an earlier set-up gave all rights: a trigger on them would run as the
-- superuser, and a foreign key to them would block their reloads.
-- `millrace db setup` does the same, and sets the default privileges.
DO $$
DECLARE
    rel record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'mle_user_role') THEN
        FOR rel IN SELECT name FROM millrace.relations LOOP
            EXECUTE pg_catalog.format('REVOKE TRIGGER, REFERENCES ON public.%I FROM mle_user_role', rel.name);
        END LOOP;
        EXECUTE pg_catalog.format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public REVOKE TRIGGER, REFERENCES ON TABLES FROM mle_user_role', current_user);
    END IF;
END
$$;
