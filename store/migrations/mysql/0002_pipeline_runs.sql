-- Pipeline runs and the states of their step instances, kept for the pipeline crate's RunStore.
-- `record` is JSON text owned by the pipeline crate; the other columns are what queries select
-- on, compared byte for byte (utf8mb4_bin) as run and step names are case-sensitive.
-- `item_index` is -1 for a step without withItems, so the key has no NULL. `position` keeps the
-- order in which instances were first recorded.

CREATE TABLE pipeline_runs (
    run_id VARCHAR(255) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    pipeline_name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    phase VARCHAR(32) COLLATE utf8mb4_bin NOT NULL,
    record LONGTEXT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE pipeline_steps (
    run_id VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    step_name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    item_index BIGINT NOT NULL,
    position BIGINT NOT NULL,
    phase VARCHAR(32) COLLATE utf8mb4_bin NOT NULL,
    cache_key VARCHAR(128) COLLATE utf8mb4_bin,
    record LONGTEXT NOT NULL,
    PRIMARY KEY (run_id, step_name, item_index),
    INDEX pipeline_steps_by_cache_key (cache_key, phase),
    CONSTRAINT pipeline_steps_run FOREIGN KEY (run_id)
        REFERENCES pipeline_runs (run_id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
