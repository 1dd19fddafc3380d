-- The trial a pipeline run belongs to, when a trial's template is a Pipeline (NULL for a run
-- started on its own), so a trial's runs are found by an index rather than by reading every run.

ALTER TABLE pipeline_runs
    ADD COLUMN trial_name VARCHAR(255) COLLATE utf8mb4_bin NULL,
    ADD INDEX pipeline_runs_by_trial (trial_name);
