//! Differential tests: our RFC 8785 serialisation, tlog-tiles encoding and C2SP signed
//! notes checked byte for byte against independent implementations
//! (`serde_json_canonicalizer`, Cloudflare's `tlog_tiles` and `signed_note`). These
//! crates are dev-dependencies only: they check our code, they do not replace it.

use crate::audit::entry::{Action, Actor, NewEntry, SealedPersonal, Target};
use crate::audit::merkle::{leaf_hash, node_hash, root_of};
use crate::audit::note::{Checkpoint, NoteSigner, Verifier};
use crate::audit::tiles::TileRef;
use crate::tenant::TenantId;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, controls and quotes included: what escaping gets wrong.
    proptest::collection::vec(any::<char>(), 0..40).prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn entries_serialise_as_rfc8785_says(
        reason in proptest::option::of(text()),
        id in text(),
        kind in text(),
        session in proptest::option::of(text()),
        seq in 0u64..(1 << 53),
        version in proptest::option::of(0u64..(1 << 53)),
        sealed in proptest::option::of(text()),
        micros in 0i64..4_000_000_000_000_000,
    ) {
        let entry = NewEntry {
            action: Action::TenantSecretSet,
            actor: Actor { id: Some(id.clone()), kind: "user" },
            target: Target { id, kind, version },
            reason,
            session,
            before: Some([0xab; 32]),
            after: None,
            personal: sealed.map(|s| SealedPersonal { sealed: s, subject: "k".into() }),
        }
        .at(
            TenantId::generate(),
            seq,
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap(),
        );
        let ours = entry.canonical();
        let value: serde_json::Value = serde_json::from_slice(&ours).unwrap();
        let theirs = serde_json_canonicalizer::to_vec(&value).unwrap();
        prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
    }

    /// `tlog_tiles` writes the Go sumdb layout, which names the tile height
    /// (`tile/8/…`, `tile/8/data/…`); C2SP tlog-tiles fixes the height at 8 and drops it
    /// (`tile/…`, `tile/entries/…`). Everything after that — level, the `x001/234`
    /// index encoding, `.p/<width>` — must be identical.
    #[test]
    fn tile_paths_encode_and_parse_like_tlog_tiles(level in 0u8..4, index in 0u64..u64::MAX / 4, width in 1u16..=256) {
        let ours = TileRef { level: Some(level), index, width };
        let theirs = tlog_tiles::Tile::new(8, level, index, u32::from(width), false);
        let go = |p: &str| p.replacen("tile/", "tile/8/", 1).replacen("tile/8/entries/", "tile/8/data/", 1);
        prop_assert_eq!(go(&ours.path()), theirs.path());
        let back = tlog_tiles::Tile::from_path(&go(&ours.path())).unwrap();
        prop_assert_eq!((back.level(), back.level_index(), back.width()), (level, index, u32::from(width)));
        let c2sp = theirs.path().replacen("tile/8/", "tile/", 1);
        prop_assert_eq!(TileRef::parse(&c2sp).unwrap(), ours);
        let bundle = TileRef { level: None, index, width };
        let data = tlog_tiles::Tile::new(8, 0, index, u32::from(width), true);
        prop_assert_eq!(go(&bundle.path()), data.path());
    }

    #[test]
    fn leaf_node_and_tree_hashes_match_tlog_tiles(entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..40)) {
        let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
        for (e, l) in entries.iter().zip(&leaves) {
            prop_assert_eq!(tlog_tiles::record_hash(e).0, *l);
        }
        let (a, b) = (leaves[0], *leaves.last().unwrap());
        prop_assert_eq!(node_hash(&a, &b), tlog_tiles::node_hash(tlog_tiles::Hash(a), tlog_tiles::Hash(b)).0);
        // The whole tree, from tlog_tiles' stored hashes.
        let mut stored: Vec<tlog_tiles::Hash> = Vec::new();
        for (n, e) in entries.iter().enumerate() {
            let reader = Stored(&stored);
            let new = tlog_tiles::stored_hashes(n as u64, e, &reader).unwrap();
            stored.extend(new);
        }
        let theirs = tlog_tiles::tree_hash(entries.len() as u64, &Stored(&stored)).unwrap();
        prop_assert_eq!(theirs.0, root_of(&leaves));
    }
}

/// tlog_tiles' in-memory hash storage, indexed as it stores them.
struct Stored<'a>(&'a [tlog_tiles::Hash]);

impl tlog_tiles::HashReader for Stored<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        Ok(indexes
            .iter()
            .map(|&i| self.0[usize::try_from(i).unwrap()])
            .collect())
    }
}

#[test]
fn our_signed_checkpoints_verify_with_signed_note_and_parse_with_tlog_tiles() {
    let seed = NoteSigner::generate_seed().unwrap();
    let signer = NoteSigner::from_seed("example.com/t/acme/audit", &seed).unwrap();
    let cp = Checkpoint {
        origin: "example.com/t/acme/audit".into(),
        size: 300,
        root: [7; 32],
        extensions: vec![],
    };
    let note = signer.sign(&cp.text()).unwrap();
    let verifier = signed_note::StandardVerifier::new(&signer.vkey()).unwrap();
    let parsed = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
    let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    let (verified, _) = parsed.verify(&list).unwrap();
    assert_eq!(verified.len(), 1);
    let theirs = tlog_tiles::Checkpoint::from_bytes(parsed.text()).unwrap();
    assert_eq!(
        (theirs.origin(), theirs.size(), theirs.hash().0),
        ("example.com/t/acme/audit", 300, [7; 32])
    );
    assert_eq!(
        theirs.to_bytes(),
        cp.text().as_bytes(),
        "the same checkpoint body byte for byte"
    );
}

#[test]
fn notes_signed_by_signed_note_open_with_our_verifier_and_tampering_does_not() {
    let (skey, vkey) = signed_note::generate_key(&mut SystemRng, "independent.example/log");
    let signer = signed_note::StandardSigner::new(&skey).unwrap();
    let mut note = signed_note::Note::new(b"independent.example/log\n5\nAAAA\n", &[]).unwrap();
    note.add_sigs(&[&signer]).unwrap();
    let text = String::from_utf8(note.to_bytes()).unwrap();
    let ours = Verifier::parse(&vkey).unwrap();
    assert_eq!(
        ours.open(&text).unwrap(),
        "independent.example/log\n5\nAAAA\n"
    );
    let tampered = text.replacen("\n5\n", "\n6\n", 1);
    assert!(ours.open(&tampered).is_err());
}

/// The system RNG (aws-lc-rs) as the `rand_core` 0.6 RNG signed_note asks for.
struct SystemRng;

impl rand_core::RngCore for SystemRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        aws_lc_rs::rand::fill(dest).unwrap();
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for SystemRng {}
