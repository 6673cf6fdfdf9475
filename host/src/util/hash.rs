//! Content addresses.

/// Hex SHA-256 of `bytes`: the content address of components, observations
/// and snapshots.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
