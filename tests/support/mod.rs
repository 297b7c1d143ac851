//! Shared test harness.
pub mod dashboard;
pub mod mosquitto;
