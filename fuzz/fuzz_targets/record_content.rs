#![no_main]
//! Record content and record-type definitions (see `strongroom_fuzz::record_content`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| strongroom_fuzz::record_content(data));
