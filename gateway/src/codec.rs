//! Kafka framing: 4-byte big-endian length, then the message. Framing only; nothing
//! here looks inside a frame.
//!
//! Two passes, as in mini-redis: a cheap check whether a whole frame is buffered,
//! then a split that hands the frame out as `Bytes` without copying. The length is
//! checked against the limit before any memory is reserved for the frame, and the
//! buffer grows only as bytes actually arrive, so a client that *claims* a large
//! frame costs nothing until it sends it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// How much the buffer grows per read before a frame's length is known.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {0} is negative")]
    NegativeLength(i32),
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    TruncatedAtEof { buffered: usize },
    #[error("no request within {0:?} (idle)")]
    Idle(Duration),
    #[error("frame not completed within {0:?} of its first byte")]
    Slow(Duration),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A whole frame, length prefix included, so it can be forwarded untouched.
#[derive(Debug, Clone)]
pub struct Frame(pub Bytes);

impl Frame {
    /// The message after the length prefix.
    pub fn payload(&self) -> &[u8] {
        &self.0[4..]
    }
}

/// Limits for reading frames from one peer.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    pub max_frame: usize,
    /// Longest silence between frames before the connection is closed.
    pub idle: Duration,
    /// Longest time one frame may take from its first to its last byte (slow-loris guard).
    pub frame: Duration,
    /// Most memory reserved ahead of the bytes that have arrived. Reserving a whole
    /// frame at once saves the copies of a growing buffer; bounding it keeps a client
    /// that only *claims* a large frame cheap.
    pub reserve_ahead: usize,
}

/// The total size (prefix included) of the first frame in `buf` if it is complete;
/// an error as soon as the length prefix is unacceptable.
pub fn complete_frame_len(buf: &[u8], max_frame: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 {
        return Err(FrameError::NegativeLength(len));
    }
    let len = len as usize;
    if len > max_frame {
        return Err(FrameError::TooLarge { len, max: max_frame });
    }
    Ok((buf.len() >= 4 + len).then_some(4 + len))
}

/// Splits the first complete frame off `buf` without copying.
pub fn split_frame(buf: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, FrameError> {
    Ok(complete_frame_len(buf, max_frame)?.map(|total| Frame(buf.split_to(total).freeze())))
}

pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, buf: BytesMut::with_capacity(8 * 1024) }
    }

    /// Whether the next frame is already buffered, i.e. `read_frame` will not wait on I/O.
    /// Writers use this to decide when to flush.
    pub fn has_buffered_frame(&self, max_frame: usize) -> bool {
        matches!(self.check(max_frame), Ok(Some(_)))
    }

    fn check(&self, max_frame: usize) -> Result<Option<usize>, FrameError> {
        complete_frame_len(&self.buf, max_frame)
    }

    /// Reads the next frame. `Ok(None)` is a clean close between frames.
    pub async fn read_frame(&mut self, limits: ReadLimits) -> Result<Option<Frame>, FrameError> {
        let mut frame_deadline = (!self.buf.is_empty()).then(|| Instant::now() + limits.frame);
        loop {
            if let Some(frame) = split_frame(&mut self.buf, limits.max_frame)? {
                return Ok(Some(frame));
            }
            let (deadline, on_timeout) = match frame_deadline {
                Some(d) => (d, FrameError::Slow(limits.frame)),
                None => (Instant::now() + limits.idle, FrameError::Idle(limits.idle)),
            };
            // Grow toward the announced length, at most one chunk at a time.
            let wanted = match self.buf.len() {
                n if n >= 4 => {
                    let len = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
                    (4 + len - n).min(limits.reserve_ahead)
                }
                _ => READ_CHUNK,
            };
            self.buf.reserve(wanted);
            let read = tokio::time::timeout_at(deadline, self.inner.read_buf(&mut self.buf)).await;
            match read {
                Err(_) => return Err(on_timeout),
                // TLS peers that hang up without close_notify look like this; between
                // frames it is an ordinary close.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof && self.buf.is_empty() => return Ok(None),
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(0)) => {
                    return if self.buf.is_empty() {
                        Ok(None)
                    } else {
                        Err(FrameError::TruncatedAtEof { buffered: self.buf.len() })
                    };
                }
                Ok(Ok(_)) => {
                    if frame_deadline.is_none() {
                        frame_deadline = Some(Instant::now() + limits.frame);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReadLimits = ReadLimits {
        max_frame: 1024,
        idle: Duration::from_secs(5),
        frame: Duration::from_secs(1),
        reserve_ahead: 64,
    };

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            out.extend((p.len() as i32).to_be_bytes());
            out.extend(*p);
        }
        out
    }

    #[tokio::test]
    async fn splits_pipelined_frames_in_order() {
        let data = framed(&[b"one", b"", b"three"]);
        let mut reader = FrameReader::new(&data[..]);
        assert_eq!(reader.read_frame(LIMITS).await.unwrap().unwrap().payload(), b"one");
        assert!(reader.has_buffered_frame(1024));
        assert_eq!(reader.read_frame(LIMITS).await.unwrap().unwrap().payload(), b"");
        assert_eq!(reader.read_frame(LIMITS).await.unwrap().unwrap().payload(), b"three");
        assert!(reader.read_frame(LIMITS).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rejects_negative_and_oversize_lengths_before_reading_them() {
        let neg = (-5i32).to_be_bytes();
        let err = FrameReader::new(&neg[..]).read_frame(LIMITS).await.unwrap_err();
        assert!(matches!(err, FrameError::NegativeLength(-5)));
        let huge = (i32::MAX).to_be_bytes();
        let mut reader = FrameReader::new(&huge[..]);
        let err = reader.read_frame(LIMITS).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
        assert!(reader.buf.capacity() < 1 << 20, "no allocation for the claimed size");
    }

    #[tokio::test]
    async fn truncated_frame_at_eof_is_an_error() {
        let mut data = framed(&[b"abcdef"]);
        data.truncate(7);
        let err = FrameReader::new(&data[..]).read_frame(LIMITS).await.unwrap_err();
        assert!(matches!(err, FrameError::TruncatedAtEof { buffered: 7 }));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_loris_frame_times_out() {
        let (client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server);
        let mut client = client;
        tokio::io::AsyncWriteExt::write_all(&mut client, &[0, 0, 0, 10, 1]).await.unwrap();
        let err = reader.read_frame(LIMITS).await.unwrap_err();
        assert!(matches!(err, FrameError::Slow(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connection_times_out() {
        let (_client, server) = tokio::io::duplex(64);
        let err = FrameReader::new(server).read_frame(LIMITS).await.unwrap_err();
        assert!(matches!(err, FrameError::Idle(_)));
    }
}
