//! Every APEX element parser on one XML document; round trips.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imxp_apex::fuzzing::xml(data));
