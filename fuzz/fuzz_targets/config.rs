#![no_main]
//! `Config::load` from a TOML file and `STRONGROOM_*` variables; see
//! `strongroom_fuzz::config`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strongroom_fuzz::config(data));
