//! The users file and SASL mechanisms for edge sessions (in progress).
