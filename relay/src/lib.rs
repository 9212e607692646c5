//! imxpd, the APEX relay (RFC 3340): listeners, intake, scheduler, delivery
//! and routing.
//!
//! Not implemented yet: reserved for the relay main-path work, which joins
//! `imxp-beep`, `imxp-apex` and `imxp-spool`. It deliberately exports nothing.
