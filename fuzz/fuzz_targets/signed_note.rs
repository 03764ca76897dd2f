#![no_main]
//! Verifier keys, signed notes and checkpoints (`Verifier::parse`, `Verifier::open`,
//! `Checkpoint::parse`); see `strongroom_fuzz::signed_note`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strongroom_fuzz::signed_note(data));
