//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): HMAC-SHA-1, 6 digits,
//! 30-second steps — what every authenticator app speaks — and recovery codes.
//!
//! A code is accepted for the current step and one step either side (clock drift), and
//! only for a step later than the last one accepted for the user, so a code seen once
//! (shoulder-surfed, phished, replayed) cannot be used again.

use aws_lc_rs::hmac;

use crate::secret::SecretBytes;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of the current one.
pub const WINDOW: i64 = 1;
/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Longest code accepted as input (a TOTP code or a recovery code, with separators).
pub const MAX_CODE_LEN: usize = 64;

/// A one-time code as presented — a TOTP code or a recovery code. Secret until spent
/// (a recovery code stays secret for good): redacted in `Debug`, never `Display`ed,
/// zeroised on drop, bounded in length when parsed.
#[derive(Clone)]
pub struct OneTimeCode(crate::secret::SecretString);

impl OneTimeCode {
    /// A code of at most [`MAX_CODE_LEN`] characters without control characters.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        if text.chars().count() > MAX_CODE_LEN || text.chars().any(char::is_control) {
            return Err(CodeError);
        }
        Ok(Self(crate::secret::SecretString::new(text.to_owned())))
    }

    /// The code, for checking it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl std::fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneTimeCode(..)")
    }
}

impl<'de> serde::Deserialize<'de> for OneTimeCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = crate::secret::SecretString::deserialize(d)?;
        Self::parse(text.expose()).map_err(serde::de::Error::custom)
    }
}

/// A presented code is too long or has control characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("codes are at most {MAX_CODE_LEN} characters without control characters")]
pub struct CodeError;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (authenticator apps' secret format).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The HOTP value of `counter` (RFC 4226 §5.3), `DIGITS` digits.
pub fn hotp(secret: &[u8], counter: u64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let code = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    code % 10u32.pow(DIGITS)
}

/// The step of a Unix time.
pub fn step_at(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECS)
}

/// The step `code` is valid for at `unix` (within the window), if any, and only if it
/// is later than `last_used`. Comparison is constant-time per candidate.
pub fn verify(secret: &SecretBytes, code: &str, unix: i64, last_used: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix);
    let mut found = None;
    for step in (now - WINDOW)..=(now + WINDOW) {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        let expected = format!(
            "{:0width$}",
            hotp(secret.expose(), counter),
            width = DIGITS as usize
        );
        let same = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes());
        if bool::from(same) && step > last_used {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://` URI an authenticator app scans (as a QR code) to enrol.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent(issuer),
        percent(account),
        base32(secret),
        percent(issuer)
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors() {
        // RFC 6238 Appendix B, SHA-1 seed, truncated to 6 digits.
        let seed = b"12345678901234567890";
        for (t, code) in [
            (59i64, 287_082u32),
            (1_111_111_109, 81_804),
            (1_111_111_111, 50_471),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
            (20_000_000_000, 353_130),
        ] {
            assert_eq!(
                hotp(seed, u64::try_from(step_at(t)).unwrap()),
                code,
                "T={t}"
            );
        }
    }

    #[test]
    fn window_and_replay() {
        let secret = SecretBytes::new(b"12345678901234567890".to_vec());
        let t = 1_111_111_111;
        let code = format!(
            "{:06}",
            hotp(secret.expose(), u64::try_from(step_at(t)).unwrap())
        );
        let step = verify(&secret, &code, t, 0).unwrap();
        assert_eq!(
            verify(&secret, &code, t + 30, 0),
            Some(step),
            "one step late is fine"
        );
        assert_eq!(
            verify(&secret, &code, t + 90, 0),
            None,
            "three steps late is not"
        );
        assert_eq!(
            verify(&secret, &code, t, step),
            None,
            "a used code is refused"
        );
        assert_eq!(verify(&secret, "12345", t, 0), None);
        assert_eq!(verify(&secret, "abcdef", t, 0), None);
    }

    #[test]
    fn base32_and_uri() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        let uri = otpauth_uri(
            "Strongroom acme",
            "ann@acme.example",
            b"12345678901234567890",
        );
        assert!(uri.starts_with("otpauth://totp/Strongroom%20acme:ann%40acme.example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"), "{uri}");
    }
}
