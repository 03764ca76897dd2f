//! Passwords nobody should be allowed to choose (NIST SP 800-63B §3.1.1.2): common
//! passwords and the words they are built from, repetitive or sequential characters,
//! and context-specific words (the user's own address, the tenant's name, the product).
//!
//! With a 12-character minimum, breached-password lists of exact strings catch little:
//! what remains guessable is a common base word padded or repeated to length
//! (`password1234`, `Welcome2024!!`, `qwertyqwerty`, `P@ssw0rd2025`). So a candidate is
//! reduced — lower-cased, common character substitutions undone, digits and symbols
//! removed — and refused if what is left is nothing, a common base word, a repetition
//! or pair of them, or a context word. The base words are a curated list shipped in the
//! binary.

/// Base words of the most common passwords (lower case, letters only).
const BASE_WORDS: &[&str] = &[
    "password",
    "passwort",
    "passw",
    "pass",
    "qwerty",
    "qwertz",
    "azerty",
    "asdf",
    "asdfgh",
    "asdfghjkl",
    "zxcvbn",
    "zxcvbnm",
    "qazwsx",
    "qwertyuiop",
    "abc",
    "abcd",
    "abcdef",
    "abcdefgh",
    "letmein",
    "welcome",
    "admin",
    "administrator",
    "root",
    "login",
    "master",
    "secret",
    "iloveyou",
    "loveyou",
    "love",
    "monkey",
    "dragon",
    "football",
    "baseball",
    "soccer",
    "hockey",
    "basketball",
    "sunshine",
    "princess",
    "trustno",
    "shadow",
    "superman",
    "batman",
    "starwars",
    "pokemon",
    "michael",
    "jennifer",
    "jordan",
    "hunter",
    "ranger",
    "buster",
    "thomas",
    "tigger",
    "robert",
    "charlie",
    "andrew",
    "michelle",
    "jessica",
    "pepper",
    "daniel",
    "access",
    "joshua",
    "maggie",
    "silver",
    "william",
    "dallas",
    "yankees",
    "ashley",
    "hello",
    "amanda",
    "orange",
    "freedom",
    "computer",
    "thunder",
    "nicole",
    "ginger",
    "heather",
    "hammer",
    "summer",
    "winter",
    "spring",
    "autumn",
    "taylor",
    "austin",
    "merlin",
    "matthew",
    "cheese",
    "martin",
    "chelsea",
    "patrick",
    "richard",
    "diamond",
    "yellow",
    "purple",
    "cookie",
    "peanut",
    "justin",
    "money",
    "samantha",
    "whatever",
    "chicken",
    "internet",
    "changeme",
    "default",
    "guest",
    "test",
    "tester",
    "testing",
    "user",
    "temp",
    "temporary",
    "system",
    "server",
    "database",
    "oracle",
    "mysql",
    "postgres",
    "company",
    "office",
    "monday",
    "friday",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "god",
    "jesus",
    "angel",
    "flower",
    "forever",
    "lovely",
    "family",
    "baby",
    "qwe",
    "asd",
    "zxc",
    "one",
    "two",
    "three",
    "onetwothree",
    "myspace",
    "facebook",
    "google",
    "microsoft",
    "apple",
    "samsung",
    "linkedin",
    "dropbox",
    "adobe",
    "blink",
    "matrix",
    "ninja",
    "mustang",
    "ferrari",
    "porsche",
    "corvette",
    "harley",
    "killer",
    "golfer",
    "tennis",
    "player",
    "gamer",
    "lucky",
    "happy",
    "smile",
    "pharma",
    "clinic",
    "hospital",
    "laboratory",
    "lab",
    "vault",
    "secure",
    "security",
];

/// Keyboard rows, for walks such as `qwertyuiop` or `asdfghjkl;`.
const ROWS: &[&str] = &[
    "1234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "qwertzuiop",
    "azertyuiop",
];

/// Undoes common substitutions (`p@ssw0rd` → `password`).
fn unleet(c: char) -> char {
    match c {
        '0' => 'o',
        '1' | '!' | '|' => 'i',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        '8' => 'b',
        '9' => 'g',
        other => other,
    }
}

/// Whether every neighbour differs by the same step of -1, 0 or +1 (`aaaaaaa`,
/// `123456789`, `zyxwvu`).
fn monotone(s: &str) -> bool {
    let b: Vec<i32> = s.chars().map(|c| c as i32).collect();
    let Some(step) = b.windows(2).map(|w| w[1] - w[0]).next() else {
        return true;
    };
    (-1..=1).contains(&step) && b.windows(2).all(|w| w[1] - w[0] == step)
}

/// Whether `s` is made only of stretches of keyboard rows, forwards or backwards.
fn keyboard_walk(s: &str) -> bool {
    let mut rest = s;
    while !rest.is_empty() {
        let longest = ROWS
            .iter()
            .flat_map(|row| [row.to_string(), row.chars().rev().collect::<String>()])
            .filter_map(|row| {
                (1..=row.len())
                    .rev()
                    .find(|&n| rest.starts_with(&row[..n]))
                    .filter(|&n| n >= 3)
            })
            .max();
        match longest {
            Some(n) => rest = &rest[n..],
            None => return false,
        }
    }
    true
}

/// Whether `letters` is one base word or context word, or a repetition or pair of them.
fn common(letters: &str, context: &[String]) -> bool {
    let known = |w: &str| BASE_WORDS.contains(&w) || context.iter().any(|c| c == w);
    if letters.is_empty() || known(letters) {
        return true;
    }
    (1..letters.len()).any(|i| {
        let (a, b) = letters.split_at(i);
        known(a) && (known(b) || b.chars().all(|c| a.contains(c)) && a.starts_with(b))
    })
}

/// Why `password` is too guessable, if it is. `context` holds words specific to this
/// account (address, tenant); any part of them of four letters or more counts.
pub fn refuse(password: &str, context: &[&str]) -> Option<&'static str> {
    let lower = password.to_lowercase();
    if monotone(&lower) {
        return Some("repetitive or sequential characters");
    }
    if keyboard_walk(&lower) {
        return Some("a keyboard pattern");
    }
    let mut words: Vec<String> = vec!["strongroom".into()];
    for c in context {
        for part in c
            .to_lowercase()
            .split(|ch: char| !ch.is_ascii_alphabetic())
            .filter(|p| p.len() >= 4)
        {
            words.push(part.to_owned());
        }
    }
    // Substitutions are undone only inside the word: padding digits stay digits
    // (`p@ssw0rd2025` → `password` + `2025`, not `passwordzozs`).
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    for variant in [lower.clone(), core.chars().map(unleet).collect::<String>()] {
        let letters: String = variant.chars().filter(char::is_ascii_alphabetic).collect();
        if common(&letters, &words) {
            return Some("a common password, or a common word padded with digits or symbols");
        }
        if words
            .iter()
            .any(|w| letters.contains(w.as_str()) && w.len() * 2 >= letters.len())
        {
            return Some("built from the account's own name or the service's");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guessable_passwords_are_refused() {
        for p in [
            "password1234",
            "Password2024!",
            "P@ssw0rd2025",
            "passwordpassword",
            "qwertyqwerty",
            "Welcome2024!!",
            "letmein12345",
            "123456789012",
            "aaaaaaaaaaaa",
            "abcdefghijkl",
            "qwertyuiop12",
            "zxcvbnmasdfgh",
            "iloveyou2024",
            "monkeydragon1",
            "strongroom2024",
            "annabelle1984!!",
            "acmepharma2024",
        ] {
            assert!(
                refuse(p, &["annabelle@acme-pharma.example", "acme-pharma"]).is_some(),
                "{p} was accepted"
            );
        }
    }

    #[test]
    fn ordinary_passphrases_pass() {
        for p in [
            "correct horse battery staple",
            "tangerine-otter-58-quilt",
            "Mein Hund frisst gerne Kekse",
            "vN4#pQ9!zR2@wX",
            "the blue kettle sings at dawn",
        ] {
            assert_eq!(
                refuse(p, &["annabelle@acme-pharma.example", "acme-pharma"]),
                None,
                "{p}"
            );
        }
    }
}
