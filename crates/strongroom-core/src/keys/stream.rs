//! Streaming encryption for large objects: fixed-size chunks, each its own AES-256-GCM
//! box, in the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015): the
//! nonce of chunk *i* is `prefix || i || last`, so reordering, dropping, duplicating or
//! truncating chunks is detected. A per-stream subkey (HKDF-SHA256 of the data key with
//! a random salt) keeps nonces unique across any number of streams. Memory use is one
//! chunk, whatever the object's size.
//!
//! ```text
//! header (30 bytes):
//! 0   1   format version = 0x01
//! 1   1   kind = 0x02 (stream)
//! 2   4   data-key version, u32 BE
//! 6   1   log2(chunk size), 12..=24 (Strongroom writes 16: 64 KiB)
//! 7   16  salt
//! 23  7   nonce prefix
//! then chunks: ciphertext (chunk size, or 0..=chunk size for the last) || tag (16)
//! nonce(i) = prefix (7) || i (u32 BE) || 0x01 if last else 0x00
//! subkey   = HKDF-SHA256(ikm = data key, salt, info = "strongroom/stream/v1\0")
//! AAD      = "strongroom/stream/v1\0" || object binding || header
//! ```
//!
//! The last chunk is always present (empty when the plaintext length is a multiple of
//! the chunk size), so a stream cut at a chunk boundary is detected.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{DataKey, KeyError, ObjectRef};

/// Kind byte of a stream.
pub const KIND_STREAM: u8 = 0x02;
/// Header length.
pub const HEADER_LEN: usize = 30;
/// Tag bytes per chunk.
pub const TAG_LEN: usize = 16;
/// log2 of the chunk size Strongroom writes (64 KiB).
pub const CHUNK_LOG2: u8 = 16;
const DOMAIN: &[u8] = b"strongroom/stream/v1\0";

/// Encrypts one stream, chunk by chunk.
pub struct Sealer {
    cipher: LessSafeKey,
    prefix: [u8; 7],
    aad: Vec<u8>,
    counter: u32,
    chunk: usize,
    finished: bool,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Starts a stream for `object`; returns the sealer and the header to write first.
    pub fn new(key: &DataKey, object: &ObjectRef<'_>) -> Result<(Self, Vec<u8>), KeyError> {
        Self::with_chunk_log2(key, object, CHUNK_LOG2)
    }

    /// As [`Sealer::new`] with another chunk size (tests use small chunks).
    pub fn with_chunk_log2(
        key: &DataKey,
        object: &ObjectRef<'_>,
        log2: u8,
    ) -> Result<(Self, Vec<u8>), KeyError> {
        if !(12..=24).contains(&log2) {
            return Err(KeyError::Malformed("chunk size out of range"));
        }
        let mut random = [0u8; 23];
        aws_lc_rs::rand::fill(&mut random)
            .map_err(|_| KeyError::Unavailable("system RNG failed".into()))?;
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(&[super::sealed::FORMAT, KIND_STREAM]);
        header.extend_from_slice(&key.version.to_be_bytes());
        header.push(log2);
        header.extend_from_slice(&random);
        let (cipher, prefix) = subkey(key, &header)?;
        let sealer = Self {
            cipher,
            prefix,
            aad: object.aad(DOMAIN, &header),
            counter: 0,
            chunk: 1 << log2,
            finished: false,
        };
        Ok((sealer, header))
    }

    /// Plaintext bytes per chunk.
    pub fn chunk_size(&self) -> usize {
        self.chunk
    }

    /// Encrypts one chunk in place, appending its tag. Every chunk but the last must be
    /// exactly [`Sealer::chunk_size`] bytes.
    pub fn seal_chunk(&mut self, buf: &mut Vec<u8>, last: bool) -> Result<(), KeyError> {
        if self.finished || buf.len() > self.chunk || (!last && buf.len() != self.chunk) {
            return Err(KeyError::Malformed(
                "chunk out of sequence or of the wrong size",
            ));
        }
        let nonce = nonce(&self.prefix, self.counter, last);
        let tag = self
            .cipher
            .seal_in_place_separate_tag(nonce, Aad::from(&self.aad), buf)
            .map_err(|_| KeyError::Unavailable("AES-GCM seal failed".into()))?;
        buf.extend_from_slice(tag.as_ref());
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or(KeyError::Malformed("stream too long"))?;
        self.finished = last;
        Ok(())
    }
}

/// Decrypts one stream, chunk by chunk, refusing anything out of order or cut short.
pub struct Opener {
    cipher: LessSafeKey,
    prefix: [u8; 7],
    aad: Vec<u8>,
    counter: u32,
    chunk: usize,
    finished: bool,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// The data-key version a stream needs, from its header.
pub fn key_version(header: &[u8]) -> Result<u32, KeyError> {
    if header.len() < HEADER_LEN || header[0] != super::sealed::FORMAT || header[1] != KIND_STREAM {
        return Err(KeyError::Malformed("not a version-1 stream header"));
    }
    Ok(u32::from_be_bytes([
        header[2], header[3], header[4], header[5],
    ]))
}

impl Opener {
    /// Reads the header of a stream for `object`, sealed under `key`.
    pub fn new(key: &DataKey, object: &ObjectRef<'_>, header: &[u8]) -> Result<Self, KeyError> {
        if key_version(header)? != key.version {
            return Err(KeyError::Malformed(
                "stream sealed under another data-key version",
            ));
        }
        let log2 = header[6];
        if !(12..=24).contains(&log2) {
            return Err(KeyError::Malformed("chunk size out of range"));
        }
        let header = &header[..HEADER_LEN];
        let (cipher, prefix) = subkey(key, header)?;
        Ok(Self {
            cipher,
            prefix,
            aad: object.aad(DOMAIN, header),
            counter: 0,
            chunk: 1 << log2,
            finished: false,
        })
    }

    /// Starts at chunk `index` instead of 0, for reading a stream from the middle (a
    /// range): the chunk's nonce carries its index, so a chunk from elsewhere fails.
    /// Only before the first chunk is opened.
    pub fn start_at(&mut self, index: u32) -> Result<(), KeyError> {
        if self.counter != 0 || self.finished {
            return Err(KeyError::Integrity);
        }
        self.counter = index;
        Ok(())
    }

    /// Plaintext bytes of a full chunk.
    pub fn chunk_size(&self) -> usize {
        self.chunk
    }

    /// Ciphertext bytes of a full chunk.
    pub fn sealed_chunk_size(&self) -> usize {
        self.chunk + TAG_LEN
    }

    /// Decrypts one chunk in place (dropping its tag).
    pub fn open_chunk(&mut self, buf: &mut Vec<u8>, last: bool) -> Result<(), KeyError> {
        if self.finished || buf.len() < TAG_LEN || buf.len() > self.sealed_chunk_size() {
            return Err(KeyError::Integrity);
        }
        if !last && buf.len() != self.sealed_chunk_size() {
            return Err(KeyError::Integrity);
        }
        let nonce = nonce(&self.prefix, self.counter, last);
        let n = self
            .cipher
            .open_in_place(nonce, Aad::from(&self.aad), buf)
            .map_err(|_| KeyError::Integrity)?
            .len();
        buf.truncate(n);
        self.counter = self.counter.checked_add(1).ok_or(KeyError::Integrity)?;
        self.finished = last;
        Ok(())
    }

    /// Succeeds only if the last chunk was seen: a stream cut short is an error.
    pub fn finish(&self) -> Result<(), KeyError> {
        if self.finished {
            Ok(())
        } else {
            Err(KeyError::Integrity)
        }
    }
}

fn subkey(key: &DataKey, header: &[u8]) -> Result<(LessSafeKey, [u8; 7]), KeyError> {
    let salt = Salt::new(HKDF_SHA256, &header[7..23]);
    let prk = salt.extract(key.key.expose());
    let okm = prk
        .expand(&[DOMAIN], &AES_256_GCM)
        .map_err(|_| KeyError::Unavailable("HKDF failed".into()))?;
    let cipher = LessSafeKey::new(UnboundKey::from(okm));
    let mut prefix = [0u8; 7];
    prefix.copy_from_slice(&header[23..30]);
    Ok((cipher, prefix))
}

fn nonce(prefix: &[u8; 7], counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Encrypts everything `reader` yields into `writer` (header, then chunks); returns the
/// plaintext length. Memory: one chunk.
pub async fn seal_to<R, W>(
    key: &DataKey,
    object: &ObjectRef<'_>,
    reader: &mut R,
    writer: &mut W,
) -> Result<u64, StreamError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let (mut sealer, header) = Sealer::new(key, object)?;
    writer.write_all(&header).await?;
    let chunk = sealer.chunk_size();
    let mut total = 0u64;
    // Two buffers, swapped rather than copied: one being sealed, one read ahead (a
    // chunk is the last one if it is short or nothing follows it).
    let mut cur = Vec::with_capacity(chunk + TAG_LEN);
    cur.resize(chunk, 0);
    let mut next = Vec::with_capacity(chunk + TAG_LEN);
    next.resize(chunk, 0);
    let mut filled = read_full(reader, &mut cur).await?;
    loop {
        let mut ahead = 0;
        let last = filled < chunk || {
            ahead = read_full(reader, &mut next).await?;
            ahead == 0
        };
        cur.truncate(filled);
        total += filled as u64;
        sealer.seal_chunk(&mut cur, last)?;
        writer.write_all(&cur).await?;
        if last {
            break;
        }
        std::mem::swap(&mut cur, &mut next);
        next.resize(chunk, 0);
        filled = ahead;
    }
    writer.flush().await?;
    Ok(total)
}

/// Reads a sealed stream's header from `reader` and returns the data-key version needed
/// to open it.
pub async fn read_header<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
) -> Result<[u8; HEADER_LEN], StreamError> {
    let mut header = [0u8; HEADER_LEN];
    if read_full(reader, &mut header).await? != HEADER_LEN {
        return Err(KeyError::Malformed("stream shorter than its header").into());
    }
    key_version(&header)?;
    Ok(header)
}

/// Decrypts the chunks that follow `header` in `reader` into `writer`; returns the
/// plaintext length. Fails on any tampering, reordering or truncation — possibly after
/// some verified plaintext was written, never with unverified plaintext.
pub async fn open_to<R, W>(
    key: &DataKey,
    object: &ObjectRef<'_>,
    header: &[u8],
    reader: &mut R,
    writer: &mut W,
) -> Result<u64, StreamError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    open_from(Opener::new(key, object, header)?, reader, writer).await
}

/// Where chunk `index` of a stream sealed with chunks of 2^`chunk_log2` bytes starts in
/// its file.
pub fn chunk_offset(chunk_log2: u8, index: u64) -> u64 {
    HEADER_LEN as u64 + index * ((1u64 << chunk_log2) + TAG_LEN as u64)
}

/// The chunk-size exponent a stream header declares.
pub fn chunk_log2(header: &[u8]) -> Result<u8, KeyError> {
    key_version(header)?;
    let log2 = header[6];
    if !(12..=24).contains(&log2) {
        return Err(KeyError::Malformed("chunk size out of range"));
    }
    Ok(log2)
}

/// Decrypts chunks from `reader` (positioned at the opener's starting chunk) into
/// `writer` until the last chunk; the same checks as [`open_to`].
pub async fn open_from<R, W>(
    mut opener: Opener,
    reader: &mut R,
    writer: &mut W,
) -> Result<u64, StreamError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let size = opener.sealed_chunk_size();
    let mut cur = vec![0u8; size];
    let mut next = vec![0u8; size];
    let mut filled = read_full(reader, &mut cur).await?;
    let mut total = 0u64;
    loop {
        let mut ahead = 0;
        let last = filled < size || {
            ahead = read_full(reader, &mut next).await?;
            ahead == 0
        };
        cur.truncate(filled);
        opener.open_chunk(&mut cur, last)?;
        total += cur.len() as u64;
        writer.write_all(&cur).await?;
        if last {
            break;
        }
        std::mem::swap(&mut cur, &mut next);
        next.resize(size, 0);
        filled = ahead;
    }
    opener.finish()?;
    writer.flush().await?;
    Ok(total)
}

async fn read_full<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// A stream could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The cryptography refused (tampered, truncated, wrong key) or was unavailable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Reading or writing failed.
    #[error("stream i/o: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests;
