-- Sextant's schema on SQLite. Times are fixed-width UTC text (YYYY-MM-DDTHH:MM:SS.ffffffZ) so
-- that text order is time order; JSON documents are text owned by the controller.

CREATE TABLE experiments (
    name TEXT NOT NULL PRIMARY KEY,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    resource_version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE trials (
    name TEXT NOT NULL PRIMARY KEY,
    experiment_name TEXT NOT NULL REFERENCES experiments (name) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    assignments TEXT NOT NULL,
    labels TEXT NOT NULL,
    condition_type TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    observation TEXT,
    created_at TEXT NOT NULL,
    start_time TEXT,
    completion_time TEXT,
    updated_at TEXT NOT NULL
);

CREATE INDEX trials_by_experiment ON trials (experiment_name, created_at);

-- `id` is the rowid: it grows with every insert while rows exist above it, which is all that
-- "insertion order" needs; AUTOINCREMENT would add a write to sqlite_sequence per statement.
-- No foreign key to trials: collectors may report for trials this store does not hold (the
-- cluster mode keeps trials as Kubernetes resources).
CREATE TABLE observation_logs (
    id INTEGER PRIMARY KEY,
    trial_name TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    value TEXT NOT NULL,
    numeric_value REAL,
    time TEXT NOT NULL
);

CREATE INDEX observation_logs_by_trial_metric_time
    ON observation_logs (trial_name, metric_name, time);
