-- Admits held steps under step concurrency limits (docs/flow-control.md,
-- "Concurrency limits"): for each group of p_groups, moves its oldest held
-- steps (pending, pending_parents = 0: ready, but kept back because the group
-- was full) to 'enqueued', audited ('admitted') and sent to their pools'
-- queues, while the group has fewer than its limit occupying steps
-- (enqueued, in_progress, enqueued_for_orchestration). Returns the queue of
-- every step it moved (one element per step).
--
-- Across processes: each group is decided under a transaction advisory lock
-- of the group, taken in sorted order. The count is a statement of its own,
-- after the lock: under READ COMMITTED it sees every admission committed
-- before the lock was granted, so two admissions of one group never both
-- fill the same slot. Candidates are locked SKIP LOCKED: a step some other
-- transaction is changing (a cancel) is left to the next admission.
--
-- Not admitted: steps of a task that is finished, not admitted under its
-- template's limit, paused, or whose delayed start has not come; the
-- orchestrators' sweep (tasker_store::concurrency::sweep) tries again. Task states are not
-- re-decided here (the caller may hold a task state it read): a task whose
-- step was admitted later is re-decided at that step's result.
CREATE OR REPLACE FUNCTION tasker.admit_held(p_groups text[], p_processor text)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_group text;
    v_busy integer;
    v_limit integer;
    v_queues text[];
    v_msgs jsonb[];
    v_all text[] := '{}';
    v_any_pause boolean := EXISTS (SELECT 1 FROM tasker.pauses);
BEGIN
    IF p_groups IS NULL OR cardinality(p_groups) = 0 THEN
        RETURN '{}';
    END IF;
    FOR v_group IN SELECT DISTINCT g FROM unnest(p_groups) AS g WHERE g IS NOT NULL ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(hashtext('tasker.concurrency'), hashtext(v_group));
        -- The slots taken (a fresh snapshot: after the lock).
        SELECT count(*) INTO v_busy FROM tasker.steps s
         WHERE s.concurrency_group = v_group
           AND s.state IN ('enqueued', 'in_progress', 'enqueued_for_orchestration');
        -- The group's limit: its oldest held step's (steps of two versions
        -- of a template with different limits share a group).
        SELECT s.concurrency_limit INTO v_limit
          FROM tasker.steps s JOIN tasker.tasks t ON t.id = s.task_id
         WHERE s.concurrency_group = v_group
           AND s.state = 'pending' AND s.pending_parents = 0
           AND t.concurrency_admitted
           AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
         ORDER BY s.updated_at, s.id
         LIMIT 1;
        IF v_limit IS NULL OR v_busy >= v_limit THEN
            CONTINUE;
        END IF;
        -- The oldest held (updated_at: when it became ready and was held),
        -- up to the free slots, skipping rows another transaction holds.
        WITH picked AS (
            SELECT s.id FROM tasker.steps s JOIN tasker.tasks t ON t.id = s.task_id
             WHERE s.concurrency_group = v_group
               AND s.state = 'pending' AND s.pending_parents = 0
               AND t.concurrency_admitted
               AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
               AND (t.run_at IS NULL OR t.run_at <= now())
               AND NOT (v_any_pause AND tasker.task_paused(t.id))
             ORDER BY s.updated_at, s.id
             LIMIT v_limit - v_busy
               FOR UPDATE OF s SKIP LOCKED),
        moved AS (
            UPDATE tasker.steps s SET state = 'enqueued', updated_at = now()
              FROM picked p
             WHERE s.id = p.id
         RETURNING s.id, s.task_id, s.attempts, s.pool),
        audit AS (
            INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event,
                                                 attempt, processor_id, created_at)
            SELECT m.id, m.task_id, 'pending', 'enqueued', 'admitted', m.attempts, p_processor,
                   clock_timestamp()
              FROM moved m)
        SELECT array_agg('steps_' || m.pool ORDER BY m.pool, m.id),
               array_agg(jsonb_build_object('step_id', m.id, 'task_id', m.task_id)
                         ORDER BY m.pool, m.id)
          INTO v_queues, v_msgs FROM moved m;
        IF v_msgs IS NOT NULL THEN
            PERFORM tasker.send_step_messages(v_queues, v_msgs);
            v_all := v_all || v_queues;
        END IF;
    END LOOP;
    RETURN v_all;
END;
$$;
