//! End-to-end tests: the real application on 127.0.0.1:0 with a fresh database per test
//! (SQLite, or PostgreSQL when `DEPOT_TEST_DATABASE_URL` is set), driven over HTTP — and the
//! real binary as a child process where the process itself is under test (CLI, signals).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod alerts;
mod auth_csrf;
mod auth_login;
mod auth_mfa;
mod auth_tokens;
mod broker_outage;
mod cache;
mod catalog;
mod cli;
mod connections;
mod crash;
mod crm;
mod errors;
mod faults;
mod grouping;
mod hardening;
mod helpers;
mod idempotency;
mod imports;
mod limits;
mod mail;
mod messaging;
mod metrics;
mod notifications;
mod ops;
mod payments;
mod process;
mod purchasing;
mod rbac;
mod realtime;
mod reports;
mod sales;
mod shutdown;
mod stock;
mod traces;
mod users;
mod webhooks;
