-- Admits waiting tasks under template concurrency limits (docs/flow-control.md,
-- "Concurrency limits"): for each group of p_groups, marks its oldest waiting
-- tasks (concurrency_admitted false, not finished) admitted while the group
-- has fewer than its limit admitted unfinished tasks, and enqueues their
-- ready steps through tasker.enqueue_steps (which holds those under a step
-- limit and admits them through tasker.admit_held). Returns the queue of
-- every step enqueued.
--
-- As tasker.admit_held: per group, in sorted order, under the group's
-- transaction advisory lock, counting in a statement after the lock;
-- candidates locked SKIP LOCKED. Paused tasks and delayed starts not yet due
-- wait (the orchestrators' sweep tries again). The limit is the oldest
-- waiting task's.
CREATE OR REPLACE FUNCTION tasker.admit_tasks(p_groups text[], p_processor text)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_group text;
    v_busy integer;
    v_limit integer;
    v_tasks uuid[];
    v_all text[] := '{}';
    v_any_pause boolean := EXISTS (SELECT 1 FROM tasker.pauses);
BEGIN
    IF p_groups IS NULL OR cardinality(p_groups) = 0 THEN
        RETURN '{}';
    END IF;
    FOR v_group IN SELECT DISTINCT g FROM unnest(p_groups) AS g WHERE g IS NOT NULL ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(hashtext('tasker.concurrency'), hashtext(v_group));
        -- The slots taken (a fresh snapshot: after the lock).
        SELECT count(*) INTO v_busy FROM tasker.tasks t
         WHERE t.concurrency_group = v_group AND t.concurrency_admitted
           AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually');
        SELECT t.concurrency_limit INTO v_limit FROM tasker.tasks t
         WHERE t.concurrency_group = v_group AND NOT t.concurrency_admitted
           AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
         ORDER BY t.id LIMIT 1;
        IF v_limit IS NULL OR v_busy >= v_limit THEN
            CONTINUE;
        END IF;
        -- The oldest waiting (ids are UUIDv7: creation order).
        WITH picked AS (
            SELECT t.id FROM tasker.tasks t
             WHERE t.concurrency_group = v_group AND NOT t.concurrency_admitted
               AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
               AND (t.run_at IS NULL OR t.run_at <= now())
               AND NOT (v_any_pause AND tasker.task_paused(t.id))
             ORDER BY t.id
             LIMIT v_limit - v_busy
               FOR UPDATE SKIP LOCKED),
        admitted AS (
            UPDATE tasker.tasks t SET concurrency_admitted = true, updated_at = now()
              FROM picked p WHERE t.id = p.id
         RETURNING t.id)
        SELECT array_agg(a.id) INTO v_tasks FROM admitted a;
        IF v_tasks IS NULL THEN
            CONTINUE;
        END IF;
        v_all := v_all || tasker.enqueue_steps(
            ARRAY(SELECT s.id FROM tasker.steps s
                   WHERE s.task_id = ANY (v_tasks) AND s.state = 'pending'
                     AND s.pending_parents = 0
                   ORDER BY s.id),
            'pending', 'admitted', p_processor);
    END LOOP;
    RETURN v_all;
END;
$$;
