//! BEEP (RFC 3080, RFC 3081) session core. Work in progress.
