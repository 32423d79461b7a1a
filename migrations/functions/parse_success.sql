-- A success message's fields, or task_id NULL when it is not a well-formed
-- success (a failure, or something unreadable: the caller's per-result path
-- handles it). Used by take_step_results' one-by-one path.
CREATE OR REPLACE FUNCTION tasker.parse_success(p_message jsonb,
    OUT task_id uuid, OUT step_id uuid, OUT attempt integer, OUT result jsonb,
    OUT worker_id text, OUT started_at timestamptz, OUT finished_at timestamptz)
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_message->'outcome'->>'status' IS DISTINCT FROM 'success'
       OR NOT (p_message->'outcome' ? 'result')
       OR jsonb_typeof(p_message->'attempt') IS DISTINCT FROM 'number'
       OR jsonb_typeof(p_message->'worker_id') IS DISTINCT FROM 'string' THEN
        RETURN;
    END IF;
    task_id := (p_message->>'task_id')::uuid;
    step_id := (p_message->>'step_id')::uuid;
    attempt := (p_message->>'attempt')::integer;
    result := p_message->'outcome'->'result';
    worker_id := p_message->>'worker_id';
    started_at := (p_message->>'started_at')::timestamptz;
    finished_at := (p_message->>'finished_at')::timestamptz;
    IF task_id IS NULL OR step_id IS NULL OR attempt IS NULL OR attempt < 0
       OR started_at IS NULL OR finished_at IS NULL THEN
        task_id := NULL;
    END IF;
EXCEPTION WHEN data_exception THEN
    task_id := NULL;
END;
$$;
