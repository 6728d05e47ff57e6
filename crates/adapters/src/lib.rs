//! Depot's outside world behind small traits.
//!
//! Each capability has an embedded implementation (zero setup) and a scale-out one (configured by
//! URL). This crate holds the clock and the reachability probes of the scale-out services; the
//! cache, broker, mail and blob adapters grow here beside them.

pub mod blobs;
pub mod broker;
pub mod cache;
pub mod clock;
pub mod mail;
pub mod payments;
pub mod probe;
pub mod realtime;
pub mod webhook;

pub use clock::SystemClock;
pub use probe::{AmqpProbe, Probe, ProbeError, RedisProbe};
