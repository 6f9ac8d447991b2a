//! `pricing import FILE`: an operator's import through a running service's API. The file is
//! streamed to `POST /v1/products/import` (never read whole), then the job is followed until
//! it ends, with a progress bar on a terminal (plain lines otherwise), and summed up: counts,
//! the first rejected lines, and why it failed when it did.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio::io::AsyncReadExt;

/// What to import and where.
pub struct ImportRequest<'a> {
    pub file: &'a Path,
    /// The service, e.g. `http://127.0.0.1:8080`.
    pub url: &'a str,
    /// A `merchant` key of the merchant whose catalogue it is.
    pub key: &'a str,
    /// `csv` or `ndjson`; by default the file's extension says.
    pub format: Option<&'a str>,
    pub mode: &'a str,
    pub atomic: bool,
}

/// Rejected lines printed in the summary.
const SHOWN_REJECTIONS: usize = 20;

/// Runs the import; the finished job (its `state` says how it ended).
pub async fn import(request: ImportRequest<'_>) -> Result<Value, Box<dyn std::error::Error>> {
    let format = match request.format {
        Some(format) => format.to_owned(),
        None => match request.file.extension().and_then(|e| e.to_str()) {
            Some("csv") => "csv".to_owned(),
            Some("ndjson" | "jsonl") => "ndjson".to_owned(),
            _ => return Err("give --format csv or --format ndjson (the file's extension does not say)".into()),
        },
    };
    let size = tokio::fs::metadata(request.file).await?.len();
    let file = tokio::fs::File::open(request.file).await?;
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")?.progress_chars("=> "),
    );
    bar.set_message("uploading");
    let counted = bar.clone();
    let body = futures_util::stream::unfold(file, |mut file| async move {
        let mut chunk = vec![0u8; 256 * 1024];
        match file.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((Ok::<_, std::io::Error>(chunk), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
    .inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            counted.inc(chunk.len() as u64);
        }
    });
    let client = reqwest::Client::new();
    let base = request.url.trim_end_matches('/');
    let response = client
        .post(format!("{base}/v1/products/import?format={format}&mode={}&atomic={}", request.mode, request.atomic))
        .bearer_auth(request.key)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if status != reqwest::StatusCode::ACCEPTED {
        bar.abandon();
        return Err(format!("the service refused the import ({status}): {answer}").into());
    }
    let id = answer["id"].as_str().ok_or("the service's answer has no job id")?.to_owned();
    bar.set_message("applying");
    bar.set_position(0);
    loop {
        let job: Value = client
            .get(format!("{base}/v1/jobs/{id}"))
            .bearer_auth(request.key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        bar.set_length(job["lines_total"].as_u64().unwrap_or(0).max(1));
        bar.set_position(job["lines_read"].as_u64().unwrap_or(0));
        if matches!(job["state"].as_str(), Some("completed" | "failed" | "cancelled")) {
            bar.finish_and_clear();
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The job summed up for a person.
pub fn summary(job: &Value) -> String {
    let count = |field: &str| job[field].as_i64().unwrap_or(0);
    let mut text = format!(
        "import {} {}: {} lines read, {} applied ({} changed), {} rejected, {} deleted, {} lines/s",
        job["id"].as_str().unwrap_or("?"),
        job["state"].as_str().unwrap_or("?"),
        count("lines_read"),
        count("applied"),
        count("changed"),
        count("rejected"),
        count("deleted"),
        job["lines_per_second"].as_f64().unwrap_or(0.0),
    );
    for field in ["note", "error"] {
        if let Some(said) = job[field].as_str() {
            text.push_str(&format!("\n{field}: {said}"));
        }
    }
    for line in job["rejected_lines"].as_array().into_iter().flatten().take(SHOWN_REJECTIONS) {
        text.push_str(&format!(
            "\nline {}: {} {} {}",
            line["line"],
            line["code"].as_str().unwrap_or("?"),
            line["message"].as_str().unwrap_or(""),
            if line["details"].as_object().is_some_and(|d| !d.is_empty()) {
                line["details"].to_string()
            } else {
                String::new()
            }
        ));
    }
    if count("rejected") > SHOWN_REJECTIONS as i64 {
        text.push_str(&format!(
            "\n... and more: GET /v1/jobs/{} lists the first 1000",
            job["id"].as_str().unwrap_or("?")
        ));
    }
    text
}
