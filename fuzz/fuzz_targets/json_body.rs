#![no_main]
//! Request bodies through `ApiJson` behind the body limit, in an axum router
//! (see `strongroom_fuzz::json_body`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| strongroom_fuzz::json_body(data));
