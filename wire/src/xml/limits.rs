//! The size and depth bounds a document is read under.

/// Bounds for one [`parse`](super::parse). Each protocol picks its own:
/// BEEP's channel 0 documents are small, APEX control documents may carry
/// inline data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Largest document accepted, in octets.
    pub max_document: usize,
    /// Deepest element nesting accepted, the root counting as 1.
    pub max_depth: usize,
}

impl XmlLimits {
    /// Bounds of `max_document` octets and `max_depth` levels.
    pub const fn new(max_document: usize, max_depth: usize) -> Self {
        Self {
            max_document,
            max_depth,
        }
    }
}
