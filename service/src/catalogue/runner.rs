//! The import workers: claim a job, apply its pieces in order, end it.

use std::time::Duration;

use chrono::Utc;

use crate::config::ImportSettings;
use crate::domain::product_file::{self, CsvHeader, LineError};
use crate::domain::{ProductDraft, Sku};
use crate::store::jobs::{ImportMode, Job, JobFormat, JobState, Piece, Rejection};
use crate::store::{Store, StoreError};
use crate::write::{ParsedPiece, Prices};

/// Products a replace import deletes per transaction.
const DELETE_PAGE: u32 = 1_000;

fn rejection(line: i64, e: LineError) -> Rejection {
    Rejection { line, code: e.code.to_owned(), message: e.message, details: e.details.to_string() }
}

/// A piece's records as products, each line checked like a `PUT` body.
pub fn parse_piece(format: JobFormat, header: Option<&CsvHeader>, piece: &Piece, replace: bool) -> ParsedPiece {
    let mut parsed = ParsedPiece {
        drafts: Vec::new(),
        rejections: Vec::new(),
        lines: 0,
        bytes: piece.body.len() as i64,
        pieces: 1,
        named: Vec::new(),
    };
    let mut take = |line: i64, result: Result<ProductDraft, (Option<Sku>, LineError)>| {
        parsed.lines += 1;
        if replace && let Some(sku) = product_file::named_sku(&result) {
            parsed.named.push(sku.to_string());
        }
        match result {
            Ok(draft) => parsed.drafts.push((line, draft)),
            Err((_, e)) => parsed.rejections.push(rejection(line, e)),
        }
    };
    match (format, header) {
        (JobFormat::Ndjson, _) => {
            for (i, line) in piece.body.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                take(piece.first_line + i as i64, product_file::ndjson_product(line));
            }
        }
        (JobFormat::Csv, Some(header)) => {
            let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&piece.body[..]);
            let mut record = csv::ByteRecord::new();
            // Lines are counted here from the records' byte offsets: the reader counts a CRLF's
            // line only when it reads the next record.
            let mut lines = LineCounter { body: &piece.body, offset: 0, line: piece.first_line };
            loop {
                let next = reader.position().byte() as usize;
                match reader.read_byte_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {
                        let start = record.position().map_or(next, |p| p.byte() as usize);
                        take(lines.at(start), header.product(&record))
                    }
                    Err(e) => {
                        take(lines.at(next), Err((None, LineError::csv(format!("the record is not valid CSV: {e}")))));
                        break;
                    }
                }
            }
        }
        (JobFormat::Csv, None) => {}
    }
    parsed
}

/// The physical line of byte offsets in a piece, read forward.
struct LineCounter<'a> {
    body: &'a [u8],
    offset: usize,
    line: i64,
}

impl LineCounter<'_> {
    /// The line a record starting at `start` (or at the line end just before it) is on.
    fn at(&mut self, start: usize) -> i64 {
        let mut start = start.min(self.body.len());
        while start < self.body.len() && matches!(self.body[start], b'\r' | b'\n') {
            start += 1;
        }
        if start > self.offset {
            self.line += self.body[self.offset..start].iter().filter(|b| **b == b'\n').count() as i64;
            self.offset = start;
        }
        self.line
    }
}

/// Runs `settings.workers` import workers until the store closes.
pub fn run_workers(prices: Prices, settings: ImportSettings, owner: String) -> Vec<tokio::task::JoinHandle<()>> {
    (0..settings.workers.max(1))
        .map(|_| {
            let (prices, settings, owner) = (prices.clone(), settings.clone(), owner.clone());
            tokio::spawn(async move {
                let poll = Duration::from_millis(settings.poll_ms.max(10));
                loop {
                    if prices.store().is_closed() {
                        return;
                    }
                    match claim(&prices, &settings, &owner).await {
                        Ok(Some(job)) => {
                            let id = job.id;
                            let worker = Worker { prices: &prices, settings: &settings, owner: &owner };
                            if let Err(e) = worker.run(job).await {
                                // The job stays as its last committed piece left it; its lease
                                // runs out and it is taken again.
                                tracing::warn!(job = %id, error = %e, "an import stopped; it will be resumed");
                                tokio::time::sleep(poll * 5).await;
                            }
                        }
                        Ok(None) => tokio::time::sleep(poll).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "looking for import jobs failed");
                            tokio::time::sleep(poll * 5).await;
                        }
                    }
                }
            })
        })
        .collect()
}

fn lease(settings: &ImportSettings) -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(settings.lease_secs.max(1) as i64)
}

async fn claim(prices: &Prices, settings: &ImportSettings, owner: &str) -> Result<Option<Job>, StoreError> {
    prices.store().claim_job(owner, lease(settings)).await
}

struct Worker<'a> {
    prices: &'a Prices,
    settings: &'a ImportSettings,
    owner: &'a str,
}

/// How a job ended.
struct Ending {
    state: JobState,
    note: Option<String>,
    error: Option<String>,
}

impl Ending {
    fn completed(note: Option<String>) -> Self {
        Ending { state: JobState::Completed, note, error: None }
    }

    fn failed(error: impl Into<String>) -> Self {
        Ending { state: JobState::Failed, note: None, error: Some(error.into()) }
    }
}

impl Worker<'_> {
    fn store(&self) -> &Store {
        self.prices.store()
    }

    async fn run(&self, job: Job) -> Result<(), StoreError> {
        let header = match (job.format, &job.header) {
            (JobFormat::Csv, Some(text)) => {
                let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
                let mut record = csv::ByteRecord::new();
                match reader.read_byte_record(&mut record).ok().and_then(|_| CsvHeader::parse(&record).ok()) {
                    Some(header) => Some(header),
                    None => return self.end(&job, Ending::failed("the stored CSV header is not valid")).await,
                }
            }
            _ => None,
        };
        let ending = if job.atomic {
            self.run_atomic(&job, header.as_ref()).await?
        } else {
            self.run_pieces(&job, header.as_ref()).await?
        };
        let ending = match ending {
            Some(ending) => ending,
            None if job.mode == ImportMode::Replace => self.replace(&job).await?,
            None => Ending::completed(None),
        };
        self.end(&job, ending).await
    }

    /// Applies the pieces not applied yet, in order; `Some` when the job ends early
    /// (cancelled, failed). Piece n+1 is read and parsed while piece n is written: the writes
    /// wait on the database and the parsing on this process's CPU, so on two cores the two
    /// overlap instead of taking turns.
    async fn run_pieces(&self, job: &Job, header: Option<&CsvHeader>) -> Result<Option<Ending>, StoreError> {
        let mut next = match job.pieces_done < job.pieces {
            true => Some(self.read_parsed(job, header, job.pieces_done).await?),
            false => None,
        };
        for n in job.pieces_done..job.pieces {
            if let Some(ending) = self.check(job).await? {
                return Ok(Some(ending));
            }
            let parsed = match next.take() {
                Some(Ok(parsed)) => parsed,
                Some(Err(ending)) => return Ok(Some(ending)),
                None => unreachable!("piece {n} was read before its turn"),
            };
            let write = self.prices.write_import_piece(job.id, job.merchant, parsed, false);
            let read = async {
                match n + 1 < job.pieces {
                    true => Some(self.read_parsed(job, header, n + 1).await),
                    false => None,
                }
            };
            let (written, read) = tokio::join!(write, read);
            written?;
            next = read.transpose()?;
            // Let other merchants' work in between two pieces.
            tokio::task::yield_now().await;
        }
        Ok(None)
    }

    /// Piece `n`, read and parsed (off the async threads: a piece is some thousands of lines);
    /// `Err` ends the job when the piece is missing.
    async fn read_parsed(
        &self,
        job: &Job,
        header: Option<&CsvHeader>,
        n: i64,
    ) -> Result<Result<ParsedPiece, Ending>, StoreError> {
        let Some(piece) = self.store().job_piece(job.id, n).await? else {
            return Ok(Err(Ending::failed(format!("piece {n} of the body is missing"))));
        };
        let (format, header, replace) = (job.format, header.cloned(), job.mode == ImportMode::Replace);
        let parsed = tokio::task::spawn_blocking(move || parse_piece(format, header.as_ref(), &piece, replace))
            .await
            .expect("parsing a piece does not panic");
        Ok(Ok(parsed))
    }

    /// An atomic import: every piece parsed, then all written in one transaction or none.
    async fn run_atomic(&self, job: &Job, header: Option<&CsvHeader>) -> Result<Option<Ending>, StoreError> {
        if job.pieces_done == job.pieces && job.pieces > 0 {
            return Ok(None);
        }
        let replace = job.mode == ImportMode::Replace;
        let mut whole = ParsedPiece {
            drafts: Vec::new(),
            rejections: Vec::new(),
            lines: 0,
            bytes: 0,
            pieces: 0,
            named: Vec::new(),
        };
        for n in 0..job.pieces {
            let Some(piece) = self.store().job_piece(job.id, n).await? else {
                return Ok(Some(Ending::failed(format!("piece {n} of the body is missing"))));
            };
            let parsed = parse_piece(job.format, header, &piece, replace);
            whole.drafts.extend(parsed.drafts);
            whole.rejections.extend(parsed.rejections);
            whole.named.extend(parsed.named);
            whole.lines += parsed.lines;
            whole.bytes += parsed.bytes;
            whole.pieces += 1;
        }
        let result = self.prices.write_import_piece(job.id, job.merchant, whole, true).await?;
        if !result.written {
            let n = result.counts.rejected;
            return Ok(Some(Ending::failed(format!("{n} lines were rejected; an atomic import writes nothing then"))));
        }
        Ok(None)
    }

    /// A replace import's deletions, once every line is in (none when a line was rejected).
    async fn replace(&self, job: &Job) -> Result<Ending, StoreError> {
        let rejected = self.store().job_for_worker(job.id).await?.map_or(0, |j| j.rejected);
        if rejected > 0 {
            return Ok(Ending::completed(Some(format!("no product was deleted: {rejected} lines were rejected"))));
        }
        let mut after = String::new();
        loop {
            if let Some(ending) = self.check(job).await? {
                return Ok(ending);
            }
            match self.prices.delete_absent_page(job.id, job.merchant, after.clone(), DELETE_PAGE).await? {
                Some(last) => after = last.to_string(),
                None => return Ok(Ending::completed(None)),
            }
        }
    }

    /// Renews the lease and looks for a cancellation; `Some` when the job must stop.
    async fn check(&self, job: &Job) -> Result<Option<Ending>, StoreError> {
        if !self.store().renew_job_lease(job.id, self.owner, lease(self.settings)).await? {
            return Err(StoreError::Contended("the import's lease was lost".into()));
        }
        let cancelled = self.store().job_for_worker(job.id).await?.is_some_and(|j| j.cancel_requested);
        Ok(cancelled.then(|| Ending {
            state: JobState::Cancelled,
            note: Some("cancelled: what was applied before stays applied".into()),
            error: None,
        }))
    }

    async fn end(&self, job: &Job, ending: Ending) -> Result<(), StoreError> {
        let current = self.store().job_for_worker(job.id).await?;
        let changed = current.as_ref().is_some_and(|j| j.changed > 0 || j.deleted > 0);
        self.prices.finish_import(job.id, job.merchant, changed, ending.state, ending.note, ending.error).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_are_numbered_from_the_piece_start() {
        let header =
            CsvHeader::parse(&csv::ByteRecord::from(vec!["sku", "currency", "cost_minor", "base_price_minor"]))
                .unwrap();
        let piece =
            Piece { first_line: 2, body: b"a,EUR,1,2\r\nb,EUR,x,2\r\n\"c\nd\",EUR,1,2\r\ne,EUR,y,2\r\n".to_vec() };
        let parsed = parse_piece(JobFormat::Csv, Some(&header), &piece, false);
        let lines: Vec<i64> = parsed.rejections.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 6]);
        assert_eq!(parsed.drafts.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [2]);
    }
}
