-- What one `tasker bench` run leaves behind that would make the next run on
-- the same database refuse it: the creation-rate tasks it made in the
-- namespace nobody serves (`bench_idle`, left pending with their messages
-- queued). The bench's own finished tasks stay: they are more history.
-- Deleting a task deletes its steps and edges (ON DELETE CASCADE) and its
-- audit rows (the statement triggers tasks_history_deleted / steps_history_deleted).
DELETE FROM tasker.tasks
 WHERE state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually');
-- Every bench queue empty again (the idle namespace's, and any leftovers).
SELECT pgmq.purge_queue(queue_name) FROM pgmq.meta
 WHERE queue_name IN ('steps_bench', 'steps_bench_idle', 'orchestration_results',
                      'floor_a', 'floor_b', 'floor_c');
