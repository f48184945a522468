//! `protocol`: Arakoon's client wire format, byte for byte
//! (`shared/spec/arakoon-protocol.md`), and the update vocabulary that the
//! store applies and the tlog records. Pure encode/decode: no IO, no clock.

pub mod update;

pub use update::Update;
