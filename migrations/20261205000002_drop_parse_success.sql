-- tasker.parse_success served take_step_results' one-by-one path, which moved
-- to Rust (tasker_store::result::take_batch_on): the set path's failure now
-- hands the batch back unapplied.
DROP FUNCTION IF EXISTS tasker.parse_success(jsonb);
