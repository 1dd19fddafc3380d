-- Sextant's schema on MySQL and MariaDB. Names compare byte for byte (utf8mb4_bin): Katib's
-- names are case-sensitive, and a metric `Loss` is not `loss`; the other text columns keep the
-- default collation, as nothing compares them. Times are DATETIME(6) in UTC, as in Katib's own
-- observation_logs table.

CREATE TABLE experiments (
    name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    spec LONGTEXT NOT NULL,
    status LONGTEXT NOT NULL,
    resource_version BIGINT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE trials (
    name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    experiment_name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    spec LONGTEXT NOT NULL,
    assignments LONGTEXT NOT NULL,
    labels LONGTEXT NOT NULL,
    condition_type TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    observation LONGTEXT,
    created_at DATETIME(6) NOT NULL,
    start_time DATETIME(6),
    completion_time DATETIME(6),
    updated_at DATETIME(6) NOT NULL,
    INDEX trials_by_experiment (experiment_name, created_at),
    CONSTRAINT trials_experiment FOREIGN KEY (experiment_name)
        REFERENCES experiments (name) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- No foreign key to trials: collectors may report for trials this store does not hold.
CREATE TABLE observation_logs (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    trial_name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    metric_name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    value TEXT NOT NULL,
    numeric_value DOUBLE,
    time DATETIME(6) NOT NULL,
    INDEX observation_logs_by_trial_metric_time (trial_name, metric_name, time)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
