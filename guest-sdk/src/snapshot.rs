//! The snapshot encoding: versioned, checksummed bytes.
//!
//! Layout (all integers little-endian):
//! `b"LEAFESNP"` | format: u16 | name: u16 len + bytes | version: u16 len + bytes
//! | payload: u32 len + postcard bytes | crc32 (IEEE) of everything before it.
//!
//! Decoding checks each part in turn, so a foreign, truncated, corrupt or
//! outdated snapshot gets an error that says which.

use serde::{Serialize, de::DeserializeOwned};

const MAGIC: &[u8; 8] = b"LEAFESNP";
/// Bump when the layout above changes.
pub const FORMAT: u16 = 1;

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3), as zlib computes it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for b in bytes {
        c = CRC_TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Encode `value` as a snapshot of environment `name` at `version`.
pub fn encode<T: Serialize>(name: &str, version: &str, value: &T) -> Result<Vec<u8>, String> {
    let payload = postcard::to_allocvec(value).map_err(|e| format!("cannot encode state: {e}"))?;
    let mut out = Vec::with_capacity(payload.len() + name.len() + version.len() + 24);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    for text in [name, version] {
        let len = u16::try_from(text.len()).map_err(|_| "name or version too long".to_string())?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    let len = u32::try_from(payload.len()).map_err(|_| "state too large".to_string())?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| "truncated snapshot".to_string())?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn text(&mut self) -> Result<&'a str, String> {
        let len = self.u16()? as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| "corrupt snapshot header".to_string())
    }
}

/// Decode a snapshot made by [`encode`] for the same `name` and `version`.
pub fn decode<T: DeserializeOwned>(name: &str, version: &str, bytes: &[u8]) -> Result<T, String> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a leafe snapshot (bad magic bytes)".into());
    }
    if bytes.len() < MAGIC.len() + 6 {
        return Err("truncated snapshot".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let mut r = Reader {
        bytes: body,
        pos: MAGIC.len(),
    };
    let format = r.u16()?;
    if format != FORMAT {
        return Err(format!(
            "snapshot format {format}, this SDK reads format {FORMAT}"
        ));
    }
    let stored = u32::from_le_bytes(crc.try_into().unwrap_or_default());
    if crc32(body) != stored {
        return Err("snapshot checksum mismatch: the bytes are corrupt".into());
    }
    let their_name = r.text()?;
    if their_name != name {
        return Err(format!(
            "snapshot of environment '{their_name}', this is '{name}'"
        ));
    }
    let their_version = r.text()?;
    if their_version != version {
        return Err(format!(
            "snapshot from {name} version {their_version}, this is version {version}"
        ));
    }
    let len = r.u32()? as usize;
    let payload = r.take(len)?;
    if r.pos != body.len() {
        return Err("trailing bytes after snapshot payload".into());
    }
    postcard::from_bytes(payload).map_err(|e| format!("corrupt snapshot payload: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn round_trip() {
        let bytes = encode("demo", "1.0", &(7u32, "x".to_string())).unwrap();
        let back: (u32, String) = decode("demo", "1.0", &bytes).unwrap();
        assert_eq!(back, (7, "x".to_string()));
    }

    #[test]
    fn every_kind_of_damage_is_an_error() {
        let bytes = encode("demo", "1.0", &vec![1u64, 2, 3]).unwrap();
        let check = |b: &[u8], needle: &str| {
            let err = decode::<Vec<u64>>("demo", "1.0", b).unwrap_err();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        };
        check(b"", "magic");
        check(b"garbage bytes here", "magic");
        check(&bytes[..10], "truncated");
        for i in MAGIC.len() + 2..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                decode::<Vec<u64>>("demo", "1.0", &bad).is_err(),
                "flip at {i}"
            );
        }
        let mut bad = bytes.clone();
        bad[8] = 9;
        check(&bad, "format 9");
        check(
            &encode("other", "1.0", &vec![1u64]).unwrap(),
            "environment 'other'",
        );
        check(&encode("demo", "2.0", &vec![1u64]).unwrap(), "version 2.0");
    }
}
