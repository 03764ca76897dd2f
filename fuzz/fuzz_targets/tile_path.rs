#![no_main]
//! tlog-tiles paths (`TileRef::parse`) and entry bundles (`read_bundle`); see
//! `strongroom_fuzz::tile_path`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strongroom_fuzz::tile_path(data));
