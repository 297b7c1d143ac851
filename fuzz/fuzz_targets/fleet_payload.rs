//! The fleet view's MQTT decoder and device table on arbitrary messages:
//! topic, a NUL byte, payload (checks: `edgeseg::dashboard::fuzzing::fleet_payload`).
#![no_main]

use edgeseg::dashboard::fleet::FleetState;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static STATE: OnceLock<FleetState> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let state = STATE.get_or_init(edgeseg::dashboard::fuzzing::fleet_state);
    edgeseg::dashboard::fuzzing::fleet_payload(state, data);
});
