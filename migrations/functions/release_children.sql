-- One more parent done for each child of p_step; returns the children that no
-- longer wait for any parent and are still pending.
CREATE OR REPLACE FUNCTION tasker.release_children(p_step uuid)
RETURNS uuid[] LANGUAGE plpgsql AS $$
DECLARE
    v_ready uuid[];
BEGIN
    -- plpgsql rather than a SQL function: its plan is cached per session.
    WITH released AS (
        UPDATE tasker.steps SET pending_parents = pending_parents - 1, updated_at = now()
         WHERE id IN (SELECT child_id FROM tasker.step_edges WHERE parent_id = p_step)
     RETURNING id, pending_parents, state)
    SELECT coalesce(array_agg(id) FILTER (WHERE pending_parents = 0 AND state = 'pending'), '{}')
      INTO v_ready FROM released;
    RETURN v_ready;
END;
$$;
