#![no_main]
//! Stored audit entries decoded for review (`audit::review::decode`, `to_csv`); see
//! `strongroom_fuzz::audit_entry`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strongroom_fuzz::audit_entry(data));
