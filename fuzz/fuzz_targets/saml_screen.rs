#![no_main]
//! SAML responses before any XML parser (`screen_response`, `screen_signatures`,
//! `start_tags`); see `strongroom_fuzz::saml_screen`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strongroom_fuzz::saml_screen(data));
