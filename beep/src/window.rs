//! RFC 3081 §3 flow control: one receive and one send window per channel and
//! direction, in sequence-number space (mod 2^32, RFC 1982 arithmetic).
//!
//! Receive side policy (§3.1.4): the receive buffer of a channel is the
//! configured window; octets of complete messages the application has not
//! consumed yet occupy it. A SEQ is due when the right edge we could
//! advertise has moved by at least half the buffer, so a fast sender always
//! has at least half a buffer of credit, and the right edge never moves left.
//!
//! Send side: we never send past the edge the peer advertised last, even
//! one that moved left (RFC 1122 §4.2.2.16 robustness).

/// The window every channel starts with, in both directions (RFC 3081 §3.1).
pub const INITIAL_WINDOW: u32 = 4096;

/// `a < b` in RFC 1982 serial-number arithmetic (mod 2^32).
pub(crate) fn serial_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

/// Why a peer's frame or SEQ violates flow control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowViolation {
    /// The frame's seqno is not the next expected one.
    Seqno { expected: u32, got: u32 },
    /// The frame does not fit the window we advertised.
    Overrun { size: u32, available: u32 },
    /// A SEQ acknowledges octets we never sent.
    AckBeyondSent { ackno: u32, sent: u32 },
}

/// Our receive side of one channel.
#[derive(Debug, Clone)]
pub(crate) struct RecvWindow {
    /// The next seqno we expect.
    expected: u32,
    /// One past the last seqno the peer may send (ackno + window advertised).
    right_edge: u32,
    /// The buffer we advertise against.
    buffer: u32,
    /// Octets delivered to the application and not yet consumed.
    held: u64,
}

impl RecvWindow {
    pub(crate) fn new(buffer: u32) -> Self {
        Self {
            expected: 0,
            right_edge: INITIAL_WINDOW,
            buffer: buffer.max(INITIAL_WINDOW),
            held: 0,
        }
    }

    /// Octets the peer may still send.
    pub(crate) fn available(&self) -> u32 {
        self.right_edge.wrapping_sub(self.expected)
    }

    /// Accepts a frame of `size` octets starting at `seqno` (RFC 3080 §2.2.1.2).
    pub(crate) fn receive(&mut self, seqno: u32, size: u32) -> Result<(), WindowViolation> {
        if seqno != self.expected {
            return Err(WindowViolation::Seqno {
                expected: self.expected,
                got: seqno,
            });
        }
        let available = self.available();
        if size > available {
            return Err(WindowViolation::Overrun { size, available });
        }
        self.expected = self.expected.wrapping_add(size);
        Ok(())
    }

    /// Marks `size` octets as handed to the application (occupying buffer).
    pub(crate) fn hold(&mut self, size: usize) {
        self.held += size as u64;
    }

    /// The application consumed `size` octets: buffer space is free again.
    pub(crate) fn release(&mut self, size: usize) {
        self.held = self.held.saturating_sub(size as u64);
    }

    /// The SEQ that re-advertises the current window unchanged (the
    /// right edge stays where it is).
    pub(crate) fn current(&self) -> (u32, u32) {
        (self.expected, self.available())
    }

    /// The SEQ to send now, if the window should be advertised (moves the
    /// right edge).
    pub(crate) fn poll_update(&mut self) -> Option<(u32, u32)> {
        let free = u64::from(self.buffer).saturating_sub(self.held) as u32;
        let new_edge = self.expected.wrapping_add(free);
        if !serial_lt(self.right_edge, new_edge) {
            return None;
        }
        if new_edge.wrapping_sub(self.right_edge) < self.buffer / 2 {
            return None;
        }
        self.right_edge = new_edge;
        Some((self.expected, free))
    }
}

/// Our send side of one channel: the peer's window.
#[derive(Debug, Clone)]
pub(crate) struct SendWindow {
    /// The seqno of our next octet.
    next: u32,
    /// One past the last seqno the peer accepts.
    right_edge: u32,
}

impl SendWindow {
    pub(crate) fn new() -> Self {
        Self {
            next: 0,
            right_edge: INITIAL_WINDOW,
        }
    }

    /// The seqno the next frame carries.
    pub(crate) fn next_seqno(&self) -> u32 {
        self.next
    }

    /// Octets we may send now.
    pub(crate) fn available(&self) -> u32 {
        if serial_lt(self.right_edge, self.next) {
            0
        } else {
            self.right_edge.wrapping_sub(self.next)
        }
    }

    /// Records a frame of `size` octets sent.
    pub(crate) fn consume(&mut self, size: u32) {
        debug_assert!(size <= self.available());
        self.next = self.next.wrapping_add(size);
    }

    /// Applies a SEQ from the peer (RFC 3081 §3.1.3): the right edge is
    /// the one most recently advertised, even when it moves left. RFC 3081
    /// §3.1.4 follows RFC 1122 §4.2.2.16, where a receiver should not
    /// shrink its window but a sender must be robust against it: we never
    /// send past the current edge, and with the edge behind what we already
    /// sent we send nothing until a SEQ opens the window again. An ackno
    /// beyond what we sent is a violation.
    pub(crate) fn update(&mut self, ackno: u32, window: u32) -> Result<(), WindowViolation> {
        if serial_lt(self.next, ackno) {
            return Err(WindowViolation::AckBeyondSent {
                ackno,
                sent: self.next,
            });
        }
        self.right_edge = ackno.wrapping_add(window);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(serial_lt(1, 2));
        assert!(serial_lt(u32::MAX - 5, 4));
        assert!(!serial_lt(4, u32::MAX - 5));
        assert!(!serial_lt(7, 7));
    }

    #[test]
    fn receive_checks_seqno_and_window() {
        let mut window = RecvWindow::new(4096);
        assert_eq!(window.receive(0, 4000), Ok(()));
        assert_eq!(
            window.receive(10, 1),
            Err(WindowViolation::Seqno {
                expected: 4000,
                got: 10
            })
        );
        assert_eq!(
            window.receive(4000, 97),
            Err(WindowViolation::Overrun {
                size: 97,
                available: 96
            })
        );
        assert_eq!(window.receive(4000, 96), Ok(()));
        assert_eq!(window.available(), 0);
    }

    #[test]
    fn large_buffer_is_advertised_at_once() {
        let mut window = RecvWindow::new(256 * 1024);
        assert_eq!(window.poll_update(), Some((0, 256 * 1024)));
        assert_eq!(window.poll_update(), None);
    }

    #[test]
    fn seq_sent_after_half_buffer_and_held_octets_count() {
        let mut window = RecvWindow::new(8192);
        assert_eq!(window.poll_update(), Some((0, 8192)));
        window.receive(0, 3000).unwrap();
        window.hold(3000);
        assert_eq!(window.poll_update(), None, "nothing freed yet");
        window.release(3000);
        assert_eq!(window.poll_update(), None, "3000 < half of 8192");
        window.receive(3000, 2000).unwrap();
        assert_eq!(window.poll_update(), Some((5000, 8192)));
    }

    #[test]
    fn seqno_wraps_mod_2_32() {
        let mut window = RecvWindow::new(4096);
        window.expected = u32::MAX - 5;
        window.right_edge = window.expected.wrapping_add(4096);
        assert_eq!(window.receive(u32::MAX - 5, 10), Ok(()));
        assert_eq!(window.expected, 4);
    }

    #[test]
    fn send_window_follows_the_latest_edge_and_checks_ackno() {
        let mut window = SendWindow::new();
        window.consume(1000);
        assert_eq!(window.available(), 3096);
        window.update(1000, 100).unwrap();
        assert_eq!(window.available(), 100, "a shrinking SEQ is obeyed");
        window.update(0, 512).unwrap();
        assert_eq!(window.available(), 0, "edge behind what was sent: wait");
        window.update(1000, 10_000).unwrap();
        assert_eq!(window.available(), 10_000);
        assert_eq!(
            window.update(2000, 10),
            Err(WindowViolation::AckBeyondSent {
                ackno: 2000,
                sent: 1000
            })
        );
    }
}
