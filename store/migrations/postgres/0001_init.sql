-- Sextant's schema on PostgreSQL. Names are unqualified so that the connection's search_path
-- picks the schema.

CREATE TABLE experiments (
    name TEXT NOT NULL PRIMARY KEY,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    resource_version BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
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
    created_at TIMESTAMPTZ NOT NULL,
    start_time TIMESTAMPTZ,
    completion_time TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX trials_by_experiment ON trials (experiment_name, created_at);

-- No foreign key to trials: collectors may report for trials this store does not hold.
CREATE TABLE observation_logs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trial_name TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    value TEXT NOT NULL,
    numeric_value DOUBLE PRECISION,
    time TIMESTAMPTZ NOT NULL
);

CREATE INDEX observation_logs_by_trial_metric_time
    ON observation_logs (trial_name, metric_name, time);
