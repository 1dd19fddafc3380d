//! Integration tests of sextant-store: the store and the DBManager service on SQLite,
//! PostgreSQL and MariaDB, over real databases and real gRPC on loopback.

mod connect;
mod durability;
mod scenarios;
mod service;
mod support;
