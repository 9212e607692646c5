//! imxpd (in progress).
fn main() {}
