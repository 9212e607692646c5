//! Entry points shared by the cargo-fuzz targets in `fuzz/` and the corpus
//! replay test, so CI exercises the same code on stable.
