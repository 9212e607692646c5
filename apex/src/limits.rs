//! Bounds applied to every payload and XML document before and while they
//! are parsed (docs/architecture.md, "Security"; RFC 3080 §6.4 for what
//! `application/beep+xml` excludes).

/// Size and depth bounds for parsing. [`Limits::default`] is meant for a
/// relay; tighten or loosen per deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest whole BEEP message payload (MIME headers, XML and content
    /// part), in octets. Default 16 MiB.
    pub max_payload: usize,
    /// Largest XML control document (including any inline `data-content`),
    /// in octets. Default 256 KiB.
    pub max_xml: usize,
    /// Deepest element nesting in the XML control document, the root
    /// counting as 1. Default 32.
    pub max_depth: usize,
    /// Largest MIME header block (of the payload or of one part), in octets.
    /// Default 16 KiB.
    pub max_headers: usize,
}

impl Limits {
    /// The default limits (see the field docs).
    pub const DEFAULT: Self = Self {
        max_payload: 16 * 1024 * 1024,
        max_xml: 256 * 1024,
        max_depth: 32,
        max_headers: 16 * 1024,
    };

    /// Limits with the given payload bound and the other defaults.
    pub fn with_max_payload(mut self, max_payload: usize) -> Self {
        self.max_payload = max_payload;
        self
    }

    /// Limits with the given XML size bound.
    pub fn with_max_xml(mut self, max_xml: usize) -> Self {
        self.max_xml = max_xml;
        self
    }

    /// Limits with the given depth bound.
    pub fn with_max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// Limits with the given header-block bound.
    pub fn with_max_headers(mut self, max_headers: usize) -> Self {
        self.max_headers = max_headers;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
