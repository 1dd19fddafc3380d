-- The trial a pipeline run belongs to, when a trial's template is a Pipeline (NULL for a run
-- started on its own), so a trial's runs are found by an index rather than by reading every run.

ALTER TABLE pipeline_runs ADD COLUMN trial_name TEXT;

CREATE INDEX pipeline_runs_by_trial ON pipeline_runs (trial_name);
