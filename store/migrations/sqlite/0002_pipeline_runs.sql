-- Pipeline runs and the states of their step instances, kept for the pipeline crate's RunStore.
-- `record` is JSON text owned by the pipeline crate; the other columns are what queries select
-- on. `item_index` is -1 for a step without withItems, so the key has no NULL. `position` keeps
-- the order in which instances were first recorded.

CREATE TABLE pipeline_runs (
    run_id TEXT NOT NULL PRIMARY KEY,
    pipeline_name TEXT NOT NULL,
    phase TEXT NOT NULL,
    record TEXT NOT NULL
);

CREATE TABLE pipeline_steps (
    run_id TEXT NOT NULL REFERENCES pipeline_runs (run_id) ON DELETE CASCADE,
    step_name TEXT NOT NULL,
    item_index INTEGER NOT NULL,
    position INTEGER NOT NULL,
    phase TEXT NOT NULL,
    cache_key TEXT,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, step_name, item_index)
);

CREATE INDEX pipeline_steps_by_cache_key ON pipeline_steps (cache_key, phase);
