//! Benchmarks for imxp; see `benches/`.
