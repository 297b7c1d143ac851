//! Simulated GPIO chip for tests and the demo.
