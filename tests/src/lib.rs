//! Harness for the multi-component scenarios in `tests/tests/`.
