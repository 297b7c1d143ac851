//! Shared test harness.
pub mod daemon;
pub mod mosquitto;
