-- Artifacts kept in object storage by `sextant server`: pipeline steps' output artifacts and
-- trials' output logs. Each row names a content-addressed object by its SHA-256 (lowercase hex);
-- one object may be named by many rows, and is deleted with the last of them. `item_index` is -1
-- for a step without withItems, so the key has no NULL. `archive` is true when the artifact was a
-- directory, stored as a tar archive. Names compare byte for byte (utf8mb4_bin); the run key's
-- three names fit InnoDB's 3072-byte key limit.

CREATE TABLE run_artifacts (
    run_id VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    step_name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    item_index BIGINT NOT NULL,
    name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    digest CHAR(64) COLLATE utf8mb4_bin NOT NULL,
    size BIGINT NOT NULL,
    archive BOOLEAN NOT NULL,
    PRIMARY KEY (run_id, step_name, item_index, name),
    INDEX run_artifacts_by_digest (digest)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE trial_artifacts (
    trial_name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    experiment_name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    digest CHAR(64) COLLATE utf8mb4_bin NOT NULL,
    size BIGINT NOT NULL,
    archive BOOLEAN NOT NULL,
    PRIMARY KEY (trial_name, name),
    INDEX trial_artifacts_by_experiment (experiment_name),
    INDEX trial_artifacts_by_digest (digest)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
