//! An import body cut, as it arrives, into pieces of whole records: NDJSON records end at
//! every newline (JSON strings escape theirs); CSV records at a newline outside quotes, which
//! a count of quote characters tells (RFC 4180 doubles a quote inside a quoted field, so the
//! count's parity is whether the scan is inside one). A CSV body's first record is its header,
//! kept apart. Only the part of the body after the last whole record is held between chunks.

use crate::store::jobs::JobFormat;

/// A piece of whole records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The physical line (from 1) it starts at.
    pub first_line: i64,
    pub body: Vec<u8>,
    /// Records (non-blank lines) it holds.
    pub records: i64,
}

pub struct Splitter {
    format: JobFormat,
    piece_bytes: usize,
    buffer: Vec<u8>,
    /// Bytes of `buffer` scanned so far.
    scanned: usize,
    in_quotes: bool,
    /// Just after the last record boundary in `buffer`, and the records up to it.
    boundary: usize,
    records: i64,
    /// Whether the current record has anything but blanks so far.
    record_started: bool,
    /// The line the buffer starts at.
    next_line: i64,
    /// CSV: the header record, once it is whole.
    header: Option<Vec<u8>>,
}

impl Splitter {
    pub fn new(format: JobFormat, piece_bytes: usize) -> Self {
        Self {
            format,
            piece_bytes: piece_bytes.max(1),
            buffer: Vec::new(),
            scanned: 0,
            in_quotes: false,
            boundary: 0,
            records: 0,
            record_started: false,
            next_line: 1,
            header: None,
        }
    }

    /// The CSV header record (without its line end), once read.
    pub fn header(&self) -> Option<&[u8]> {
        self.header.as_deref()
    }

    /// Takes the next chunk of the body; returns the pieces it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Cut> {
        self.buffer.extend_from_slice(chunk);
        let mut cuts = Vec::new();
        while self.scanned < self.buffer.len() {
            let byte = self.buffer[self.scanned];
            self.scanned += 1;
            match byte {
                b'"' if self.format == JobFormat::Csv => {
                    self.in_quotes = !self.in_quotes;
                    self.record_started = true;
                }
                b'\n' => {
                    if self.in_quotes {
                        continue;
                    }
                    if self.format == JobFormat::Csv && self.header.is_none() {
                        let header = self.buffer.drain(..self.scanned).collect::<Vec<u8>>();
                        self.next_line += bytecount(&header);
                        self.header = Some(trim_line_end(&header).to_vec());
                        self.reset_after_cut();
                        continue;
                    }
                    if self.record_started {
                        self.records += 1;
                    }
                    self.record_started = false;
                    self.boundary = self.scanned;
                    if self.boundary >= self.piece_bytes {
                        cuts.push(self.cut());
                    }
                }
                b' ' | b'\t' | b'\r' => {}
                _ => self.record_started = true,
            }
        }
        cuts
    }

    /// The body ended: the rest, as a last piece (`None` when nothing is left). A CSV body
    /// without a line end after its header has its header then.
    pub fn finish(mut self) -> (Option<Vec<u8>>, Option<Cut>) {
        if self.format == JobFormat::Csv && self.header.is_none() {
            let header = std::mem::take(&mut self.buffer);
            return (Some(trim_line_end(&header).to_vec()), None);
        }
        if self.record_started {
            self.records += 1;
        }
        self.boundary = self.buffer.len();
        let cut = (self.records > 0).then(|| self.cut());
        (self.header, cut)
    }

    fn cut(&mut self) -> Cut {
        let body: Vec<u8> = self.buffer.drain(..self.boundary).collect();
        let lines_in_cut = bytecount(&body);
        let cut = Cut { first_line: self.next_line, body, records: self.records };
        self.next_line += lines_in_cut;
        self.reset_after_cut();
        cut
    }

    /// The buffer now starts at a record boundary, not scanned yet (every cut is made at the
    /// byte scanned last).
    fn reset_after_cut(&mut self) {
        self.scanned = 0;
        self.boundary = 0;
        self.records = 0;
        self.record_started = false;
        self.in_quotes = false;
    }
}

fn bytecount(body: &[u8]) -> i64 {
    body.iter().filter(|b| **b == b'\n').count() as i64
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(format: JobFormat, body: &[u8], piece: usize, chunk: usize) -> (Option<Vec<u8>>, Vec<Cut>) {
        let mut splitter = Splitter::new(format, piece);
        let mut cuts = Vec::new();
        for part in body.chunks(chunk) {
            cuts.extend(splitter.push(part));
        }
        let (header, last) = splitter.finish();
        cuts.extend(last);
        (header, cuts)
    }

    #[test]
    fn pieces_hold_whole_records_and_know_their_first_line() {
        let body = b"{\"a\":1}\n\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}";
        for chunk in [1, 3, 100] {
            let (header, cuts) = split(JobFormat::Ndjson, body, 10, chunk);
            assert_eq!(header, None);
            let joined: Vec<u8> = cuts.iter().flat_map(|c| c.body.clone()).collect();
            assert_eq!(joined, body.to_vec(), "chunks of {chunk}");
            assert_eq!(cuts.iter().map(|c| c.records).sum::<i64>(), 4);
            assert_eq!(cuts[0].first_line, 1);
            assert_eq!(cuts[1].first_line, 4, "chunks of {chunk}: {cuts:?}");
        }
    }

    #[test]
    fn a_csv_newline_inside_quotes_does_not_end_a_record() {
        let body = b"sku,note\r\na,\"two\nlines\"\nb,\"say \"\"hi\"\"\"\nc,x\n";
        for chunk in [1, 2, 7, 100] {
            let (header, cuts) = split(JobFormat::Csv, body, 4, chunk);
            assert_eq!(header.as_deref(), Some(&b"sku,note"[..]));
            let bodies: Vec<&[u8]> = cuts.iter().map(|c| c.body.as_slice()).collect();
            assert_eq!(bodies, [&b"a,\"two\nlines\"\n"[..], b"b,\"say \"\"hi\"\"\"\n", b"c,x\n"], "chunks of {chunk}");
            let firsts: Vec<i64> = cuts.iter().map(|c| c.first_line).collect();
            assert_eq!(firsts, [2, 4, 5]);
        }
    }

    #[test]
    fn a_csv_body_of_only_a_header_has_no_piece() {
        let (header, cuts) = split(JobFormat::Csv, b"sku,currency", 10, 3);
        assert_eq!(header.as_deref(), Some(&b"sku,currency"[..]));
        assert!(cuts.is_empty());
    }
}
