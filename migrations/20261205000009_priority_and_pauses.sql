-- Priority and pause (issue 19).
--
-- Priority: every step message carries a `rank`, the epoch second it became
-- ready minus its task's priority (tasker.send_step_messages, create_task.sql),
-- and workers claim in rank order (claim_steps.sql). A priority is seconds of
-- head start: a step of priority 60 goes before priority-0 steps that became
-- ready up to a minute earlier, and after older ones — low priority ages
-- instead of starving. Messages already queued get the rank of their
-- enqueue time; each step queue gets the index the claim reads
-- (tasker_store::queue::ensure adds it to new ones).
DO $$
DECLARE
    v_queue text;
BEGIN
    FOR v_queue IN SELECT queue_name FROM pgmq.meta WHERE queue_name LIKE 'steps\_%' LOOP
        EXECUTE format(
            'UPDATE pgmq.%I m SET message = m.message || jsonb_build_object(''rank'',
                 extract(epoch FROM m.enqueued_at) - coalesce((SELECT t.priority FROM tasker.tasks t
                   WHERE t.id = CASE WHEN m.message->>''task_id'' ~ ''^[0-9a-f-]{36}$''
                                     THEN (m.message->>''task_id'')::uuid END), 0))
              WHERE NOT m.message ? ''rank''', 'q_' || v_queue);
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON pgmq.%I (((message->>''rank'')::float8) NULLS FIRST, msg_id)',
                       'q_' || v_queue || '_rank_idx', 'q_' || v_queue);
    END LOOP;
END;
$$;

-- Pauses: while a row names a task, a template (`namespace/name`, every
-- version) or a namespace, no step of the tasks it covers is claimed. Their
-- messages are parked (visible at 'infinity') when the pause is made, when
-- they are sent, or when a claim meets one; resuming deletes the row and makes
-- them visible again in their old rank. In-flight steps finish.
CREATE TABLE tasker.pauses (
    scope     text NOT NULL CHECK (scope IN ('namespace', 'template', 'task')),
    target    text NOT NULL CHECK (length(target) BETWEEN 1 AND 512),
    reason    text CHECK (length(reason) <= 1000),
    paused_by text,
    paused_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, target)
);
