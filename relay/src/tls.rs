//! Certificates and rustls configurations (in progress).
