-- Recurring runs: a pipeline on a cron schedule. `record` is JSON text owned by the server;
-- names compare byte for byte (utf8mb4_bin), as they are case-sensitive.

CREATE TABLE recurring_runs (
    name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    record LONGTEXT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
