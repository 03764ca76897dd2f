#![no_main]
//! `audit::verify::verify` over an export directory made of the input: what
//! `strongroom audit verify` reads from an untrusted copy of a log
//! (see `strongroom_fuzz::audit_verify`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| strongroom_fuzz::audit_verify(data));
