//! The imxp endpoint library (attach to a relay, send and receive datagrams).
//!
//! Not implemented yet: reserved for the relay main-path work. It deliberately
//! exports nothing.
