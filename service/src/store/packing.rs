//! How a decision's record is kept on disk: what the chain hashes is the canonical JSON
//! (`pricing::record`), byte for byte, and that is what every reader gets back; the store
//! keeps it packed, in the `packed` column, with `record` left empty.
//!
//! A packed record is one format byte and a zstd frame. Format 1:
//! - the values the row's own columns already hold (the rule's SHA-256, the merchant id, the
//!   SKU and the record's time as JSON writes it) are replaced in the text by the bytes 0x01 to
//!   0x04, which canonical JSON never contains (serde escapes every control character), so
//!   putting them back is exact;
//! - the result is compressed with zstd against [`DICTIONARY_V1`], a record-shaped text that
//!   holds the field names and the usual runs between them, so a record pays for its values
//!   and little else.
//!
//! The format is checked as it is written: a record whose packed form does not unpack to the
//! same bytes is stored as plain text instead (nothing here can change what the chain covers).
//! Rows written before packing existed have `packed` NULL and their JSON in `record`, and read
//! as they always did. [`DICTIONARY_V1`] and the substitutions are part of the stored format:
//! they never change; a better dictionary is a new format byte beside this one.

use std::cell::RefCell;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use zstd_safe::{CCtx, CDict, CParameter, DCtx, DDict};

const FORMAT_V1: u8 = 1;
const LEVEL: i32 = 6;
/// Largest record unpacked (a record is a few kilobytes; a corrupt size must not allocate).
const MAX_RECORD: u64 = 16 << 20;

/// Record-shaped text for zstd to find matches in: the fields of a rule's decision, of a
/// catalogue event, of a hold and of a failure, in the order serde writes them, with the
/// substituted values as their placeholder bytes.
pub const DICTIONARY_V1: &str = concat!(
    r#"{"seq":1,"merchant_id":""#,
    "\u{2}",
    r#"","sku":""#,
    "\u{3}",
    r#"","trigger":"product_created","outcome":"changed","currency":"EUR","old_price_minor":null,"new_price_minor":1999,"rule_version":null,"rule_sha256":null,"inputs":null,"params":{},"rule_price_minor":null,"explanation":"the product was created at its base price","tags":[],"log":"","clips":[],"error":null,"error_message":null,"fuel_used":0,"guardrails":null,"price_effective_at":null,"created_at":""#,
    "\u{4}",
    r#""}"#,
    r#"{"seq":2,"merchant_id":""#,
    "\u{2}",
    r#"","sku":""#,
    "\u{3}",
    r#"","trigger":"competitor_prices","outcome":"kept","currency":"USD","old_price_minor":1899,"new_price_minor":1899,"rule_version":1,"rule_sha256":""#,
    "\u{1}",
    r#"","inputs":{"sku":""#,
    "\u{3}",
    r#"","currency":"USD","cost_minor":1200,"current_price_minor":1899,"base_price_minor":1999,"competitors":[{"competitor":"a","price_minor":1850,"currency":"USD","in_stock":true,"age_seconds":600,"stale":false},{"competitor":"b","price_minor":1799,"currency":"USD","in_stock":false,"age_seconds":1805,"stale":true}],"demand":{"views_1d":0,"views_7d":0,"add_to_carts_1d":0,"add_to_carts_7d":0,"units_sold_1d":0,"units_sold_7d":0,"units_sold_30d":0,"inventory":null},"attributes":{"brand":"acme"},"now":"2026-12-01T22:30:28.662Z"},"params":{"min_margin_bps":1000,"undercut_minor":5},"rule_price_minor":null,"explanation":"kept: no competitor in stock","tags":["competitor-match"],"log":"","clips":[],"error":null,"error_message":null,"fuel_used":9321,"guardrails":{"floor_minor":null,"ceiling_minor":null,"max_step_bps":null,"rounding":{"mode":"none"}},"price_effective_at":"2026-12-01T22:30:23.596425Z","created_at":""#,
    "\u{4}",
    r#""}"#,
    r#"{"seq":3,"merchant_id":""#,
    "\u{2}",
    r#"","sku":""#,
    "\u{3}",
    r#"","trigger":"rule_activated","outcome":"changed","currency":"EUR","old_price_minor":1899,"new_price_minor":1799,"rule_version":2,"rule_sha256":""#,
    "\u{1}",
    r#"","inputs":{"sku":""#,
    "\u{3}",
    r#"","currency":"EUR","cost_minor":1400,"current_price_minor":1899,"base_price_minor":1999,"competitors":[{"competitor":"rival","price_minor":1850,"currency":"EUR","in_stock":true,"age_seconds":1800,"stale":false}],"demand":{"views_1d":40,"views_7d":40,"add_to_carts_1d":6,"add_to_carts_7d":6,"units_sold_1d":3,"units_sold_7d":3,"units_sold_30d":3,"inventory":120},"attributes":{},"now":"2026-12-01T22:30:28.662Z"},"params":{"margin_bps":2000},"rule_price_minor":1845,"explanation":"5 under a (1850)","tags":[],"log":"cheapest: a at 1850","clips":["floor","ceiling","max_step","rounding"],"error":"trap","error_message":"out of fuel","fuel_used":10000000,"guardrails":{"floor_minor":1300,"ceiling_minor":2999,"max_step_bps":1000,"rounding":{"mode":"ending","ending_minor":99}},"price_effective_at":"2026-12-01T22:30:17.575919Z","created_at":""#,
    "\u{4}",
    r#"","hold":{"reason":"approval","price_minor":1799,"tripped":{"window_minutes":60}}}"#,
);

/// The values of a decision's row that its record repeats.
pub struct Known<'a> {
    pub rule_sha256: Option<&'a str>,
    pub merchant_id: &'a str,
    pub sku: &'a str,
    pub created_at: DateTime<Utc>,
}

impl Known<'_> {
    /// (placeholder, value) in the order they are substituted; put back in reverse.
    fn substitutions(&self) -> [(char, String); 4] {
        let created_at = serde_json::to_string(&self.created_at).unwrap_or_default();
        // Without its quotes, as it sits in the text.
        let created_at = created_at.trim_matches('"').to_owned();
        [
            ('\u{1}', self.rule_sha256.unwrap_or_default().to_owned()),
            ('\u{2}', self.merchant_id.to_owned()),
            ('\u{3}', self.sku.to_owned()),
            ('\u{4}', created_at),
        ]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("unknown packing format {0}")]
    Format(u8),
    #[error("empty packed record")]
    Empty,
    #[error("zstd: {0}")]
    Zstd(String),
    #[error("not UTF-8 once unpacked")]
    Text,
}

fn dictionaries() -> &'static (CDict<'static>, DDict<'static>) {
    static DICTIONARIES: OnceLock<(CDict<'static>, DDict<'static>)> = OnceLock::new();
    DICTIONARIES
        .get_or_init(|| (CDict::create(DICTIONARY_V1.as_bytes(), LEVEL), DDict::create(DICTIONARY_V1.as_bytes())))
}

thread_local! {
    static COMPRESSOR: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

fn zstd_error(code: usize) -> UnpackError {
    UnpackError::Zstd(zstd_safe::get_error_name(code).to_owned())
}

fn compress(text: &[u8]) -> Result<Vec<u8>, UnpackError> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let cctx = match cell.as_mut() {
            Some(cctx) => cctx,
            None => {
                let mut cctx = CCtx::create();
                cctx.ref_cdict(&dictionaries().0).map_err(zstd_error)?;
                // Neither a checksum (the chain's hash covers the record) nor a dictionary id.
                cctx.set_parameter(CParameter::ChecksumFlag(false)).map_err(zstd_error)?;
                cctx.set_parameter(CParameter::DictIdFlag(false)).map_err(zstd_error)?;
                cell.insert(cctx)
            }
        };
        let mut out = vec![0u8; 1 + zstd_safe::compress_bound(text.len())];
        out[0] = FORMAT_V1;
        let written = cctx.compress2(&mut out[1..], text).map_err(zstd_error)?;
        out.truncate(1 + written);
        Ok(out)
    })
}

fn decompress(frame: &[u8]) -> Result<Vec<u8>, UnpackError> {
    let size = match zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= MAX_RECORD => size as usize,
        _ => return Err(UnpackError::Zstd("no usable content size".into())),
    };
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let dctx = match cell.as_mut() {
            Some(dctx) => dctx,
            None => {
                let mut dctx = DCtx::create();
                dctx.ref_ddict(&dictionaries().1).map_err(zstd_error)?;
                cell.insert(dctx)
            }
        };
        let mut out = Vec::with_capacity(size);
        dctx.decompress(&mut out, frame).map_err(zstd_error)?;
        Ok(out)
    })
}

/// The packed form of `record`, or `None` when it should be stored as it is (it holds a
/// placeholder byte, or its packed form would not give it back exactly).
pub fn pack(record: &str, known: &Known<'_>) -> Option<Vec<u8>> {
    let substitutions = known.substitutions();
    if record.bytes().any(|b| (1..=4).contains(&b)) {
        return None;
    }
    let mut text = record.to_owned();
    for (placeholder, value) in &substitutions {
        if !value.is_empty() {
            text = text.replace(value.as_str(), placeholder.encode_utf8(&mut [0; 4]));
        }
    }
    let packed = compress(text.as_bytes()).ok()?;
    (unpack(&packed, known).ok()? == record).then_some(packed)
}

/// One record for [`pack_many`]: its text, and the row values it repeats (see [`Known`]).
pub struct ToPack {
    pub record: String,
    pub sku: String,
    pub rule_sha256: Option<String>,
}

/// Records below this count are packed where they are; above it, on every core.
const PACK_ALONE: usize = 256;

/// [`pack`] for many records of one merchant at one time, as hex (rows travel as text), in
/// their order. Packing is most of what appending costs the process (about 6 µs a record at
/// level 6), and it sits inside the writer's transaction, while the database waits: a large
/// batch is cut into one part per core, packed on the blocking pool, so that the wait is
/// shared out instead of paid one record at a time.
pub async fn pack_many(records: Vec<ToPack>, merchant_id: &str, created_at: DateTime<Utc>) -> Vec<Option<String>> {
    fn pack_part(part: &[ToPack], merchant_id: &str, created_at: DateTime<Utc>) -> Vec<Option<String>> {
        part.iter()
            .map(|r| {
                let known = Known { rule_sha256: r.rule_sha256.as_deref(), merchant_id, sku: &r.sku, created_at };
                pack(&r.record, &known).map(hex::encode)
            })
            .collect()
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if records.len() < PACK_ALONE || cores < 2 {
        return pack_part(&records, merchant_id, created_at);
    }
    let records = std::sync::Arc::new(records);
    let size = records.len().div_ceil(cores);
    let parts: Vec<_> = (0..records.len())
        .step_by(size)
        .map(|start| {
            let (records, merchant_id) = (records.clone(), merchant_id.to_owned());
            tokio::task::spawn_blocking(move || {
                pack_part(&records[start..(start + size).min(records.len())], &merchant_id, created_at)
            })
        })
        .collect();
    let mut packed = Vec::with_capacity(records.len());
    for part in parts {
        match part.await {
            Ok(part) => packed.extend(part),
            // A part that could not run leaves its records as plain text (always valid).
            Err(_) => packed.extend(std::iter::repeat_n(None, size.min(records.len() - packed.len()))),
        }
    }
    packed
}

/// The canonical record that [`pack`] packed.
pub fn unpack(packed: &[u8], known: &Known<'_>) -> Result<String, UnpackError> {
    let (&format, frame) = packed.split_first().ok_or(UnpackError::Empty)?;
    if format != FORMAT_V1 {
        return Err(UnpackError::Format(format));
    }
    let mut text = String::from_utf8(decompress(frame)?).map_err(|_| UnpackError::Text)?;
    for (placeholder, value) in known.substitutions().iter().rev() {
        if text.contains(*placeholder) {
            text = text.replace(*placeholder, value);
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known<'a>(sha: Option<&'a str>, sku: &'a str) -> Known<'a> {
        Known {
            rule_sha256: sha,
            merchant_id: "01a233ba-eaa7-7438-b234-0370ff0b712b",
            sku,
            created_at: "2026-12-01T22:30:28.669798Z".parse().unwrap(),
        }
    }

    const RECORD: &str = r#"{"seq":24,"merchant_id":"01a233ba-eaa7-7438-b234-0370ff0b712b","sku":"tee-red-m","trigger":"competitor_prices","outcome":"changed","currency":"EUR","old_price_minor":1899,"new_price_minor":1799,"rule_version":1,"rule_sha256":"96df33c5fcc412b2d8999df782ddf70106fa45471bd4f8408102809b969bb190","inputs":{"sku":"tee-red-m","currency":"EUR","cost_minor":1200,"current_price_minor":1899,"base_price_minor":1999,"competitors":[{"competitor":"a","price_minor":1850,"currency":"EUR","in_stock":true,"age_seconds":600,"stale":false},{"competitor":"b","price_minor":1799,"currency":"EUR","in_stock":false,"age_seconds":1805,"stale":false}],"demand":{"views_1d":40,"views_7d":40,"add_to_carts_1d":6,"add_to_carts_7d":6,"units_sold_1d":3,"units_sold_7d":3,"units_sold_30d":3,"inventory":null},"attributes":{"brand":"acme","organic":true,"season":"ss26"},"now":"2026-12-01T22:30:28.662Z"},"params":{"min_margin_bps":1000,"undercut_minor":5},"rule_price_minor":1845,"explanation":"5 under a (1850)","tags":["competitor-match"],"log":"cheapest: a at 1850","clips":["rounding"],"error":null,"error_message":null,"fuel_used":9321,"guardrails":{"floor_minor":1300,"ceiling_minor":2999,"max_step_bps":1000,"rounding":{"mode":"ending","ending_minor":99}},"price_effective_at":"2026-12-01T22:30:23.596425Z","created_at":"2026-12-01T22:30:28.669798Z"}"#;
    const SHA: &str = "96df33c5fcc412b2d8999df782ddf70106fa45471bd4f8408102809b969bb190";

    #[test]
    fn a_record_packs_small_and_unpacks_to_the_same_bytes() {
        let known = known(Some(SHA), "tee-red-m");
        let packed = pack(RECORD, &known).expect("packs");
        assert!(packed.len() * 5 < RECORD.len(), "{} bytes packed from {}", packed.len(), RECORD.len());
        assert_eq!(unpack(&packed, &known).unwrap(), RECORD);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_records_pack_on_every_core_in_their_order() {
        let at: DateTime<Utc> = "2026-12-01T22:30:28.669798Z".parse().unwrap();
        let merchant = "01a233ba-eaa7-7438-b234-0370ff0b712b";
        for count in [0, 3, PACK_ALONE - 1, PACK_ALONE, 1_001] {
            let records: Vec<ToPack> = (0..count)
                .map(|i| ToPack {
                    record: RECORD.replace("tee-red-m", &format!("sku-{i}")),
                    sku: format!("sku-{i}"),
                    rule_sha256: (i % 2 == 0).then(|| SHA.to_owned()),
                })
                .collect();
            let alone: Vec<Option<String>> = records
                .iter()
                .map(|r| {
                    let known = Known {
                        rule_sha256: r.rule_sha256.as_deref(),
                        merchant_id: merchant,
                        sku: &r.sku,
                        created_at: at,
                    };
                    pack(&r.record, &known).map(hex::encode)
                })
                .collect();
            let many = pack_many(records, merchant, at).await;
            assert_eq!(many, alone, "{count} records");
        }
    }

    #[test]
    fn the_columns_are_needed_to_unpack() {
        let packed = pack(RECORD, &known(Some(SHA), "tee-red-m")).unwrap();
        let other = unpack(&packed, &known(Some(SHA), "tee-blue-m")).unwrap();
        assert_ne!(other, RECORD);
        assert!(other.contains(r#""sku":"tee-blue-m""#));
    }

    #[test]
    fn any_text_comes_back_exactly_or_is_left_plain() {
        let cases = [
            "",
            "{}",
            "tee-red-m tee-red-m",
            // A value inside another (the SKU is part of the merchant id here).
            "01a233ba-eaa7-7438-b234-0370ff0b712b and 7438 and b234",
            "\u{1} a placeholder in the text",
            r#"{"log":"\u0001 escaped, as serde writes it"}"#,
            "ünïcödé ✓ 2026-12-01T22:30:28.669798Z",
        ];
        for sku in ["tee-red-m", "7438", "b234-0370"] {
            let known = known(None, sku);
            for text in cases {
                match pack(text, &known) {
                    Some(packed) => assert_eq!(unpack(&packed, &known).unwrap(), text, "{text:?}"),
                    None => assert!(text.contains('\u{1}'), "{text:?} could not be packed"),
                }
            }
        }
    }

    #[test]
    fn damage_is_an_error_not_a_different_record() {
        let known = known(Some(SHA), "tee-red-m");
        let mut packed = pack(RECORD, &known).unwrap();
        assert!(matches!(unpack(&[9, 1, 2], &known), Err(UnpackError::Format(9))));
        assert!(matches!(unpack(&[], &known), Err(UnpackError::Empty)));
        packed.truncate(packed.len() / 2);
        assert!(unpack(&packed, &known).is_err());
    }
}
