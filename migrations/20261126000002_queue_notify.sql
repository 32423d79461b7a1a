-- Wake-ups for queue readers without a hot row.
--
-- PGMQ's own enable_notify_insert() updates one throttle row per queue on every
-- insert, which serialises all concurrent senders to a queue on that row's lock.
-- This statement-level trigger only NOTIFYs (PostgreSQL folds identical
-- notifications of one transaction into one, delivered at commit), on the same
-- channel name PGMQ uses: pgmq.q_<queue>.INSERT.
CREATE OR REPLACE FUNCTION tasker.notify_queue_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgmq.' || TG_TABLE_NAME || '.INSERT', NULL);
    RETURN NULL;
END;
$$;
