//! APEX (RFC 3340, RFC 3341, RFC 3342, RFC 3343) protocol elements, with no I/O.
//!
//! Not implemented yet: this crate is reserved for the relay main-path work
//! (attach, bind, terminate, data, options and services). It deliberately
//! exports nothing so that no other crate can mistake it for working code.
