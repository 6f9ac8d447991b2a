//! Catalogue import jobs. `POST /v1/products/import` stores the body in the store as it
//! arrives, cut into pieces of whole records ([`pieces`]), and answers `202` with the job;
//! workers ([`run_workers`]) then apply each piece in one transaction with the job's progress
//! and the piece's rejected lines (see [`crate::write`]'s `write_import_piece`), so a job
//! survives a restart and any replica resumes it where the last committed piece left it:
//! - a worker holds a lease on its job (renewed while it runs); a job whose worker died is
//!   taken again once the lease runs out, at its first piece not applied; an upload that
//!   stopped half-way is marked failed, with the reason, never left waiting;
//! - one merchant's jobs run one at a time, and a piece is a short transaction (a few thousand
//!   products), so other merchants' writes and repricing interleave with a large import;
//!   lookups are answered from the cache throughout;
//! - price events go to the chain piece by piece; repricing is asked for once, as one
//!   catalogue sweep requested in the transaction that ends the job (a job that ends after a
//!   restart asks for it then), so a million-product import is one sweep, not a million
//!   requests; an import whose lines change nothing asks for nothing;
//! - `atomic=true` writes every line in one transaction, or none when any is rejected (at most
//!   `imports.atomic_max_lines` lines);
//! - `mode=replace` then deletes the products the file does not name, page by page, but only
//!   when no line was rejected (a refused line's product is not deleted for being refused);
//!   each deleted product is kept with the job as an import line, so
//!   `GET /v1/jobs/{id}/deleted` is a file that, imported again, undoes the deletions;
//! - `DELETE /v1/jobs/{id}` stops a job after its current piece: what was applied stays
//!   applied, every piece's price events are whole in the chain.

pub mod pieces;
mod runner;

pub use runner::{parse_piece, run_workers};
