//! Access-entry parsing and RFC 3341 §3.1 selection.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imxp_apex::fuzzing::access_match(data));
