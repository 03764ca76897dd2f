#![no_main]
//! Bearer tokens: `TokenService::verify_any`, with raw tokens and with claims signed by
//! the service's own key (see `strongroom_fuzz::jwt`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| strongroom_fuzz::jwt(data));
