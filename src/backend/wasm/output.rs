//! Bounded capture of a guest's stdout or stderr.
//!
//! [`CappedOutput`] keeps the first `cap` bytes a guest writes, counts every byte it tries
//! to write, and stops the guest (the write traps) as soon as the total passes the cap, so
//! a flood ends the run instead of growing a host buffer or spinning on a closed stream.
//! It must never buffer more than `cap` bytes, and it never touches a host file descriptor.

use std::{
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::{
    cli::{IsTerminal, StdoutStream},
    p2::{OutputStream, Pollable, StreamError},
};

use crate::outcome::CapturedOutput;

/// The largest write permit handed to a guest at once: it bounds the buffer the host
/// allocates for one `write-zeroes` or one chunk of a blocking write.
const WRITE_PERMIT_BYTES: usize = 64 * 1024;

/// The error a write past the cap traps with.
#[derive(Debug, thiserror::Error)]
#[error("output cap of {cap} bytes exceeded: the guest was stopped (raise limits.output_bytes if the tool needs more)")]
pub struct OutputCapExceeded {
    /// The cap, in bytes.
    pub cap: u64,
}

#[derive(Debug)]
struct Captured {
    kept: Vec<u8>,
    total: u64,
    cap: usize,
    exceeded: bool,
}

/// A capture buffer shared by every handle the guest opens on one stream.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    inner: Arc<Mutex<Captured>>,
}

impl CappedOutput {
    /// A buffer that keeps at most `cap` bytes.
    pub fn new(cap: u64) -> Self {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        CappedOutput { inner: Arc::new(Mutex::new(Captured { kept: Vec::new(), total: 0, cap, exceeded: false })) }
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        // A poisoned lock only means another handle panicked mid-write; the counters are
        // still meaningful, so keep going rather than lose the capture.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// True once the guest tried to write more than the cap.
    pub fn exceeded(&self) -> bool {
        self.lock().exceeded
    }

    /// What was captured so far.
    pub fn snapshot(&self) -> CapturedOutput {
        let captured = self.lock();
        CapturedOutput { bytes: captured.kept.clone(), total_bytes: captured.total, truncated: captured.exceeded }
    }

    /// What was captured, without a copy when this is the last handle.
    pub fn into_captured(self) -> CapturedOutput {
        match Arc::try_unwrap(self.inner) {
            Ok(mutex) => {
                let captured = mutex.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
                CapturedOutput { bytes: captured.kept, total_bytes: captured.total, truncated: captured.exceeded }
            }
            Err(shared) => CappedOutput { inner: shared }.snapshot(),
        }
    }

    /// Records `bytes`; fails once the total passes the cap (the bytes that still fit are
    /// kept).
    fn record(&self, bytes: &[u8]) -> Result<(), OutputCapExceeded> {
        let mut captured = self.lock();
        captured.total = captured.total.saturating_add(bytes.len() as u64);
        let room = captured.cap.saturating_sub(captured.kept.len());
        let keep = room.min(bytes.len());
        captured.kept.extend_from_slice(&bytes[..keep]);
        if keep < bytes.len() {
            captured.exceeded = true;
        }
        if captured.exceeded {
            return Err(OutputCapExceeded { cap: captured.cap as u64 });
        }
        Ok(())
    }

    fn check_exceeded(&self) -> Result<(), OutputCapExceeded> {
        let captured = self.lock();
        if captured.exceeded {
            return Err(OutputCapExceeded { cap: captured.cap as u64 });
        }
        Ok(())
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.record(&bytes).map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always grant a permit until the cap is passed: a stream that reported "closed"
        // at the cap would let a guest ignore the error and keep spinning.
        self.check_exceeded().map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))?;
        Ok(WRITE_PERMIT_BYTES)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CappedOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.record(buf).map(|()| buf.len()).map_err(std::io::Error::other))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_cap_bytes_and_fails_past_the_cap() {
        let out = CappedOutput::new(5);
        assert!(out.record(b"abc").is_ok());
        assert!(out.record(b"de").is_ok(), "exactly at the cap is fine");
        assert!(!out.exceeded());
        assert!(out.record(b"fgh").is_err());
        let snap = out.snapshot();
        assert_eq!(snap.bytes, b"abcde");
        assert_eq!(snap.total_bytes, 8);
        assert!(snap.truncated);
        assert!(out.check_exceeded().is_err(), "later permits are refused too");
    }

    #[test]
    fn a_zero_cap_refuses_the_first_byte() {
        let out = CappedOutput::new(0);
        assert!(out.record(b"").is_ok());
        assert!(out.record(b"x").is_err());
        assert_eq!(out.snapshot().bytes, b"");
    }
}
