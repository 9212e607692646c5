//! Session state machine fed arbitrary peer input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imxp_beep::fuzzing::session_input(data));
