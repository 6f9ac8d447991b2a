//! Reading a streamed body of one JSON value per line (`application/x-ndjson`) as it arrives:
//! never more than one line (at most [`MAX_LINE_BYTES`]) and one network chunk are held. Lines
//! are numbered from 1; blank lines are counted and skipped; a final line needs no newline;
//! `\r\n` endings are taken.

use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt;

use super::ApiError;

/// The longest line read: one signal is a few hundred bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// A line of the body, numbered from 1.
pub struct Line {
    pub number: usize,
    /// The line's bytes without its ending, or `Err` when it was longer than [`MAX_LINE_BYTES`]
    /// (and was skipped, unread).
    pub text: Result<Bytes, TooLong>,
}

#[derive(Debug, Clone, Copy)]
pub struct TooLong;

/// The lines of a streamed body.
pub struct Lines {
    payload: web::Payload,
    buffer: BytesMut,
    /// How much of `buffer` is known to hold no newline.
    scanned: usize,
    /// The current line passed the limit: its bytes are dropped up to its newline.
    skipping: bool,
    numbered: usize,
    ended: bool,
}

impl Lines {
    pub fn new(payload: web::Payload) -> Self {
        Self { payload, buffer: BytesMut::new(), scanned: 0, skipping: false, numbered: 0, ended: false }
    }

    /// The next non-blank line, `None` at the end of the body.
    pub async fn next(&mut self) -> Result<Option<Line>, ApiError> {
        loop {
            if let Some(offset) = self.buffer[self.scanned..].iter().position(|&b| b == b'\n') {
                let mut line = self.buffer.split_to(self.scanned + offset + 1);
                self.scanned = 0;
                self.numbered += 1;
                if std::mem::take(&mut self.skipping) || line.len() > MAX_LINE_BYTES + 1 {
                    return Ok(Some(Line { number: self.numbered, text: Err(TooLong) }));
                }
                line.truncate(line.len() - 1);
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(Line { number: self.numbered, text: Ok(line.freeze()) }));
            }
            self.scanned = self.buffer.len();
            if self.buffer.len() > MAX_LINE_BYTES {
                self.skipping = true;
                self.buffer.clear();
                self.scanned = 0;
            }
            if self.ended {
                return Ok(self.last_line());
            }
            match self.payload.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(ApiError::InvalidJson(format!("the body could not be read: {e}"))),
                None => self.ended = true,
            }
        }
    }

    /// What is left after the last newline, once the body has ended.
    fn last_line(&mut self) -> Option<Line> {
        self.scanned = 0;
        if self.skipping {
            self.skipping = false;
            self.numbered += 1;
            return Some(Line { number: self.numbered, text: Err(TooLong) });
        }
        let rest = std::mem::take(&mut self.buffer);
        if rest.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        self.numbered += 1;
        if rest.len() > MAX_LINE_BYTES {
            return Some(Line { number: self.numbered, text: Err(TooLong) });
        }
        let mut rest = rest;
        if rest.last() == Some(&b'\r') {
            rest.truncate(rest.len() - 1);
        }
        Some(Line { number: self.numbered, text: Ok(rest.freeze()) })
    }
}
