//! Shared test harness.
pub mod daemon;
pub mod dashboard;
pub mod mosquitto;
