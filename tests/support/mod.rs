//! Shared test harness.
pub mod mosquitto;
