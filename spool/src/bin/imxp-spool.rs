//! imxp-spool (in progress).
fn main() {}
