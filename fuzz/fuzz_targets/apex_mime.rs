//! Whole MSG payloads (application/beep+xml, multipart/related).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imxp_apex::fuzzing::mime(data));
