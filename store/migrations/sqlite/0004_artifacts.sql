-- Artifacts kept in object storage by `sextant server`: pipeline steps' output artifacts and
-- trials' output logs. Each row names a content-addressed object by its SHA-256 (lowercase hex);
-- one object may be named by many rows, and is deleted with the last of them. `item_index` is -1
-- for a step without withItems, so the key has no NULL. `archive` is 1 when the artifact was a
-- directory, stored as a tar archive.

CREATE TABLE run_artifacts (
    run_id TEXT NOT NULL,
    step_name TEXT NOT NULL,
    item_index INTEGER NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    archive INTEGER NOT NULL,
    PRIMARY KEY (run_id, step_name, item_index, name)
);

CREATE INDEX run_artifacts_by_digest ON run_artifacts (digest);

CREATE TABLE trial_artifacts (
    trial_name TEXT NOT NULL,
    name TEXT NOT NULL,
    experiment_name TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    archive INTEGER NOT NULL,
    PRIMARY KEY (trial_name, name)
);

CREATE INDEX trial_artifacts_by_experiment ON trial_artifacts (experiment_name);
CREATE INDEX trial_artifacts_by_digest ON trial_artifacts (digest);
