//! Frame decoder: round trip, incremental decoding, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imxp_beep::fuzzing::frame_decode(data));
