//! RFC 6455 §5.1: a server must fail a connection whose client sends an unmasked frame.
//! fastwebsockets unmasks what it reads but does not say whether a frame was masked, so this
//! reader sits under it, follows the frame headers in the bytes as they arrive, and fails the
//! read when a header has no mask.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where the reader is in the stream of frames.
#[derive(Debug, Clone, Copy)]
enum Position {
    /// In a header: `have` of its bytes seen, `need` in all (known once the first two are).
    Header { have: usize, need: usize },
    /// In a payload: this many bytes still to skip.
    Payload(u64),
}

pub struct MaskChecked<S> {
    inner: S,
    position: Position,
    header: [u8; 14],
    /// Set when an unmasked frame arrived; the connection reads it to choose its close code.
    pub unmasked: Arc<AtomicBool>,
}

impl<S> MaskChecked<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            position: Position::Header { have: 0, need: 2 },
            header: [0; 14],
            unmasked: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Follows `bytes`; false when a frame header without a mask was completed.
    fn scan(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            match self.position {
                Position::Payload(remaining) => {
                    let skip = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    bytes = &bytes[skip..];
                    let left = remaining - skip as u64;
                    self.position = if left == 0 {
                        Position::Header { have: 0, need: 2 }
                    } else {
                        Position::Payload(left)
                    };
                }
                Position::Header { have, need } => {
                    let take = (need - have).min(bytes.len());
                    self.header[have..have + take].copy_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    let have = have + take;
                    if have < need {
                        self.position = Position::Header { have, need };
                        continue;
                    }
                    let masked = self.header[1] & 0x80 != 0;
                    if !masked {
                        return false;
                    }
                    let extended = match self.header[1] & 0x7f {
                        126 => 2,
                        127 => 8,
                        _ => 0,
                    };
                    let full = 2 + extended + 4;
                    if need < full {
                        self.position = Position::Header { have, need: full };
                        continue;
                    }
                    let length = match extended {
                        0 => u64::from(self.header[1] & 0x7f),
                        2 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                        _ => u64::from_be_bytes(self.header[2..10].try_into().unwrap_or([0xff; 8])),
                    };
                    self.position = if length == 0 {
                        Position::Header { have: 0, need: 2 }
                    } else {
                        Position::Payload(length)
                    };
                }
            }
        }
        true
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for MaskChecked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let fresh = buf.filled()[before..].to_vec();
            if !self.scan(&fresh) {
                self.unmasked.store(true, Ordering::Relaxed);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "unmasked frame from the client",
                )));
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MaskChecked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(masked: bool, payload: usize) -> Vec<u8> {
        let mut out = vec![0x81];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload {
            0..=125 => out.push(mask_bit | payload as u8),
            126..=65535 => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(payload as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(payload as u64).to_be_bytes());
            }
        }
        if masked {
            out.extend_from_slice(&[1, 2, 3, 4]);
        }
        out.extend(std::iter::repeat_n(b'x', payload));
        out
    }

    #[test]
    fn masked_frames_pass_in_any_split() {
        let mut stream = Vec::new();
        for size in [0, 5, 125, 126, 300, 70_000] {
            stream.extend(frame(true, size));
        }
        for chunk in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let mut checker = MaskChecked::new(());
            for piece in stream.chunks(chunk) {
                assert!(checker.scan(piece), "chunk {chunk}");
            }
            assert!(matches!(checker.position, Position::Header { have: 0, .. }));
        }
    }

    #[test]
    fn an_unmasked_frame_is_caught_after_masked_ones() {
        let mut stream = frame(true, 200);
        stream.extend(frame(false, 3));
        for chunk in [1, 5, stream.len()] {
            let mut checker = MaskChecked::new(());
            let ok = stream.chunks(chunk).all(|piece| checker.scan(piece));
            assert!(!ok, "chunk {chunk}");
        }
    }
}
