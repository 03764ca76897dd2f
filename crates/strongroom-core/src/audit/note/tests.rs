use super::*;
use crate::audit::merkle::tests::vectors;

const TESSERA_VKEY: &str =
    "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";

#[test]
fn tessera_checkpoints_verify_with_the_published_vkey() {
    let v = Verifier::parse(TESSERA_VKEY).unwrap();
    let dir = vectors().join("tessera/testdata/log");
    for n in 0..=15u64 {
        let note = std::fs::read_to_string(dir.join(format!("checkpoint.{n}"))).unwrap();
        let text = v.open(&note).unwrap();
        let cp = Checkpoint::parse(text).unwrap();
        assert_eq!(
            (cp.origin.as_str(), cp.size),
            ("example.com/log/testdata", n)
        );
        assert_eq!(cp.text(), text, "re-serialises byte for byte");
        // One changed byte anywhere in the text breaks the signature.
        let tampered = note.replacen(&format!("\n{n}\n"), &format!("\n{}\n", n + 1), 1);
        assert!(
            matches!(v.open(&tampered), Err(NoteError::Unverified(_))),
            "size {n}"
        );
    }
}

#[test]
fn signed_notes_round_trip_and_foreign_keys_do_not_verify() {
    let seed = NoteSigner::generate_seed().unwrap();
    let s = NoteSigner::from_seed("strongroom.test/t/acme/audit", &seed).unwrap();
    let v = Verifier::parse(&s.vkey()).unwrap();
    let cp = Checkpoint {
        origin: "strongroom.test/t/acme/audit".into(),
        size: 7,
        root: [7; 32],
        extensions: vec![],
    };
    let note = s.sign(&cp.text()).unwrap();
    assert_eq!(Checkpoint::parse(v.open(&note).unwrap()).unwrap(), cp);
    let other = NoteSigner::from_seed(
        "strongroom.test/t/acme/audit",
        &NoteSigner::generate_seed().unwrap(),
    )
    .unwrap();
    assert!(
        Verifier::parse(&other.vkey()).unwrap().open(&note).is_err(),
        "same name, other key"
    );
    assert!(Verifier::parse(TESSERA_VKEY).unwrap().open(&note).is_err());
    // A vkey whose id does not match its key is refused.
    let vk = s.vkey();
    let mut parts: Vec<&str> = vk.split('+').collect();
    parts[1] = "00000000";
    assert!(Verifier::parse(&parts.join("+")).is_err());
}

#[test]
fn malformed_checkpoints_are_refused() {
    for bad in [
        "",
        "origin\n",
        "origin\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "origin\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "origin\n1\nAAAA\n",
        "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    ] {
        assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
    }
}
