-- Moves the given steps that are still in p_from to 'enqueued', audits them and
-- sends each one's message to its pool's queue (`steps_<pool>`). Returns the
-- queue of every step it moved (one element per step; empty when none moved).
-- A wait step (`wait_seconds` set: `wait_for`, `sleep`) moves to 'waiting'
-- instead, with no message and no queue returned: its wait begins
-- (attempts + 1, `wake_at` from tasker.wait_due_at).
-- A step under a concurrency limit (docs/flow-control.md) is not moved here:
-- a step with a `concurrency_group`, or any step of a task still waiting for
-- its template's limit, is held (left, or put back, `pending`; audited when
-- it came from another state) and then admitted by tasker.admit_tasks /
-- tasker.admit_held while its group has a free slot; the queues of the steps
-- they admit are returned too.
CREATE OR REPLACE FUNCTION tasker.enqueue_steps(p_steps uuid[], p_from text, p_event text,
                                                p_processor text)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_queues text[];
    v_msgs jsonb[];
    v_held uuid[];
    v_step_groups text[];
    v_task_groups text[];
BEGIN
    IF p_steps IS NULL OR cardinality(p_steps) = 0 THEN
        RETURN '{}';
    END IF;
    -- The held ones: under a step limit, or of a task not yet admitted.
    WITH held AS (
        SELECT s.id, s.concurrency_group AS step_group,
               CASE WHEN NOT t.concurrency_admitted THEN t.concurrency_group END AS task_group
          FROM tasker.steps s JOIN tasker.tasks t ON t.id = s.task_id
         WHERE s.id = ANY (p_steps) AND s.state = p_from
           AND (s.concurrency_group IS NOT NULL OR NOT t.concurrency_admitted)),
    parked AS (
        UPDATE tasker.steps s SET state = 'pending', next_retry_at = NULL, updated_at = now()
          FROM held h
         WHERE s.id = h.id AND p_from <> 'pending' AND s.state = p_from
     RETURNING s.id, s.task_id, s.attempts),
    audit AS (
        INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event,
                                             reason, attempt, processor_id)
        SELECT k.id, k.task_id, p_from, 'pending', p_event, 'held by a concurrency limit',
               k.attempts, p_processor
          FROM parked k)
    SELECT array_agg(h.id),
           array_agg(DISTINCT h.step_group) FILTER (WHERE h.step_group IS NOT NULL),
           array_agg(DISTINCT h.task_group) FILTER (WHERE h.task_group IS NOT NULL)
      INTO v_held, v_step_groups, v_task_groups
      FROM held h;
    WITH moved AS (
        UPDATE tasker.steps
           SET state = CASE WHEN wait_seconds IS NULL THEN 'enqueued' ELSE 'waiting' END,
               next_retry_at = NULL, updated_at = now(),
               attempts = CASE WHEN wait_seconds IS NULL THEN attempts ELSE attempts + 1 END,
               started_at = CASE WHEN wait_seconds IS NULL THEN started_at ELSE now() END,
               wake_at = CASE WHEN wait_seconds IS NULL THEN wake_at
                              ELSE tasker.wait_due_at(task_id, wait_signal, wait_seconds, now()) END
         WHERE id = ANY (p_steps) AND state = p_from
           AND NOT (id = ANY (coalesce(v_held, '{}')))
     RETURNING id, task_id, attempts, pool, state),
    audit AS (
        INSERT INTO tasker.step_transitions (step_id, task_id, from_state, to_state, event, attempt, processor_id)
        SELECT id, task_id, p_from, state, p_event, attempts, p_processor FROM moved)
    SELECT array_agg('steps_' || pool ORDER BY pool, id) FILTER (WHERE state = 'enqueued'),
           array_agg(jsonb_build_object('step_id', id, 'task_id', task_id) ORDER BY pool, id)
               FILTER (WHERE state = 'enqueued')
      INTO v_queues, v_msgs FROM moved;
    IF v_msgs IS NULL THEN
        v_queues := '{}';
    ELSE
        PERFORM tasker.send_step_messages(v_queues, v_msgs);
    END IF;
    IF v_held IS NOT NULL THEN
        v_queues := v_queues || tasker.admit_tasks(v_task_groups, p_processor)
                             || tasker.admit_held(v_step_groups, p_processor);
    END IF;
    RETURN v_queues;
END;
$$;
