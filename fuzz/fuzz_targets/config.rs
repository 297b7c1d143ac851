//! Fuzz target `config`: a board config (TOML) through Config::parse and what the daemon derives from it
//! (`edgeseg::input_checks::config`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeseg::input_checks::config(data));
