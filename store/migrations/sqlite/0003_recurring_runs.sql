-- Recurring runs: a pipeline on a cron schedule. `record` is JSON text owned by the server.

CREATE TABLE recurring_runs (
    name TEXT NOT NULL PRIMARY KEY,
    record TEXT NOT NULL
);
