//! The audit read side: checking a merchant's chain ([`verify`]), signed checkpoints
//! ([`checkpoint`]) and their keys ([`keys`]), and replaying a recorded decision ([`replay`]). It reads the history and
//! never writes a price.

pub mod checkpoint;
pub mod keys;
pub mod replay;
pub mod verify;
