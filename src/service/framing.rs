//! Line framing: a byte stream cut into newline-terminated lines, each at most a cap long
//! and finished within a timeout once it has started.
//!
//! Owns: the two guards that keep a client from holding service memory or a connection
//! hostage with one endless or never-finished line.
//! Must not: look inside a line (that is `protocol`'s job). Once it has returned an error
//! the stream is out of sync and the connection must be closed.

use std::time::Duration;

use tokio::{
    io::{AsyncRead, AsyncReadExt},
    time::Instant,
};

/// Caps one request line (JSON-RPC message). A client cannot make the service buffer more
/// than this per connection: a longer line is refused and the connection closed.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Once a line has started, the rest of it must arrive within this time, or the connection
/// is closed: a client that trickles bytes (slowloris) cannot keep a buffer and a slot
/// forever. An idle connection between lines is not timed.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(10);

/// How much is read from the socket at once.
const READ_CHUNK: usize = 64 << 10;

/// Why no line could be read; the connection must be closed after any of them.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the request line is longer than {max} bytes; split the work into smaller requests")]
    TooLong { max: usize },
    #[error("the request line was not finished within {after:?}; send each message with its newline at once")]
    Unfinished { after: Duration },
    #[error("cannot read from the connection: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads capped, timed lines from `R`.
pub struct LineReader<R> {
    inner: R,
    chunk: Box<[u8]>,
    pending: Vec<u8>,
    /// Where the search for the next newline resumes in `pending`.
    scanned: usize,
    /// When the line now in `pending` started.
    started: Option<Instant>,
    max: usize,
    timeout: Duration,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader with the given cap and timeout (the service uses [`MAX_LINE_BYTES`] and
    /// [`LINE_TIMEOUT`]).
    pub fn new(inner: R, max: usize, timeout: Duration) -> Self {
        LineReader {
            inner,
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
            pending: Vec::new(),
            scanned: 0,
            started: None,
            max,
            timeout,
        }
    }

    /// The next line without its `\n` (and without a `\r` before it); `None` at the end of
    /// the stream (an unfinished last line is dropped: its sender is gone).
    ///
    /// Cancel-safe: state changes only after a read completes, so the future may be dropped
    /// (in a `select!`) and called again without losing bytes or extending the deadline.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            if let Some(offset) = self.pending[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + offset;
                if end > self.max {
                    return Err(FrameError::TooLong { max: self.max });
                }
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.scanned = 0;
                // Bytes already here belong to the next line, which has started now.
                self.started = (!self.pending.is_empty()).then(Instant::now);
                return Ok(Some(line));
            }
            self.scanned = self.pending.len();
            if self.pending.len() > self.max {
                return Err(FrameError::TooLong { max: self.max });
            }
            let read = match self.started {
                None => self.read_chunk().await?,
                Some(started) => {
                    let deadline = started + self.timeout;
                    match tokio::time::timeout_at(deadline, self.read_chunk()).await {
                        Ok(read) => read?,
                        Err(_elapsed) => return Err(FrameError::Unfinished { after: self.timeout }),
                    }
                }
            };
            if read == 0 {
                return Ok(None);
            }
            if self.started.is_none() {
                self.started = Some(Instant::now());
            }
        }
    }

    async fn read_chunk(&mut self) -> std::io::Result<usize> {
        let read = self.inner.read(&mut self.chunk).await?;
        self.pending.extend_from_slice(&self.chunk[..read]);
        Ok(read)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn lines_are_cut_at_newlines_and_crlf_is_accepted() {
        let data: &[u8] = b"one\r\ntwo\n\nthree";
        let mut reader = LineReader::new(data, 16, LINE_TIMEOUT);
        assert_eq!(reader.next_line().await.unwrap(), Some(b"one".to_vec()));
        assert_eq!(reader.next_line().await.unwrap(), Some(b"two".to_vec()));
        assert_eq!(reader.next_line().await.unwrap(), Some(Vec::new()));
        assert_eq!(reader.next_line().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_line_over_the_cap_is_an_error_with_or_without_its_newline() {
        let long = [b'x'; 17];
        let mut reader = LineReader::new(&long[..], 16, LINE_TIMEOUT);
        assert!(matches!(reader.next_line().await, Err(FrameError::TooLong { max: 16 })));
        let mut with_newline = vec![b'x'; 17];
        with_newline.push(b'\n');
        let mut reader = LineReader::new(&with_newline[..], 16, LINE_TIMEOUT);
        assert!(matches!(reader.next_line().await, Err(FrameError::TooLong { .. })));
        let mut exact = vec![b'x'; 16];
        exact.push(b'\n');
        let mut reader = LineReader::new(&exact[..], 16, LINE_TIMEOUT);
        assert_eq!(reader.next_line().await.unwrap().map(|l| l.len()), Some(16));
    }

    #[tokio::test]
    async fn an_unfinished_line_times_out_but_an_idle_stream_does_not() {
        let (client, server) = tokio::io::duplex(64);
        let timeout = Duration::from_millis(200);
        let mut reader = LineReader::new(server, 1024, timeout);
        let (_client_read, mut client_write) = tokio::io::split(client);
        // Idle for longer than the timeout, then a line: fine.
        let writer = tokio::spawn(async move {
            tokio::time::sleep(timeout * 2).await;
            client_write.write_all(b"ping\n{\"a\"").await.unwrap();
            client_write
        });
        assert_eq!(reader.next_line().await.unwrap(), Some(b"ping".to_vec()));
        let _keep_open = writer.await.unwrap();
        // The rest of the second line never comes.
        let started = std::time::Instant::now();
        assert!(matches!(reader.next_line().await, Err(FrameError::Unfinished { .. })));
        assert!(started.elapsed() < timeout * 2);
    }
}
