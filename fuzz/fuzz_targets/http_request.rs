//! The dashboard's HTTP request head parser on arbitrary bytes (checks: `edgeseg::dashboard::fuzzing::http_request`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgeseg::dashboard::fuzzing::http_request(data));
