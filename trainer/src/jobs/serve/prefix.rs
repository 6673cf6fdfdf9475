//! The prefix cache: the keys and values of prompt prefixes, kept between
//! requests, so that a prompt which repeats the start of an earlier one
//! (the next step of an agent's episode, a revised action after a
//! backtrack, the `n` choices of one request) computes only what is new.
//!
//! As in vLLM's automatic prefix caching, prompts are cut into blocks of
//! [`BLOCK`] tokens, and a block is known by a hash of its tokens and of
//! every block before it (a chain), so a lookup walks a prompt block by
//! block and stops at the first one not kept; a block's tokens are compared
//! too, so a hash collision cannot hand out another prompt's keys. Blocks
//! are evicted least recently used first once they hold more than the cap;
//! among blocks used last at the same time the deepest goes first, so a
//! prefix loses its end before its start.

use crate::nn::model::KvCache;
use anyhow::Result;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Tokens per block: the granularity of reuse.
pub const BLOCK: usize = 32;

struct Block {
    tokens: Vec<u32>,
    parent: Option<u64>,
    /// Blocks before it.
    depth: usize,
    kv: KvCache,
    bytes: usize,
    last_used: u64,
}

/// Blocks of keys and values by their chain hash, within a byte cap.
pub struct PrefixCache {
    cap_bytes: usize,
    used_bytes: usize,
    clock: u64,
    blocks: HashMap<u64, Block>,
}

/// The chain hash of `tokens` after the block hashed `parent`.
fn chain(parent: Option<u64>, tokens: &[u32]) -> u64 {
    // SipHash with fixed keys: the same hash in every process.
    let mut h = DefaultHasher::new();
    parent.hash(&mut h);
    tokens.hash(&mut h);
    h.finish()
}

impl PrefixCache {
    /// A cache that holds at most `cap_bytes` of keys and values (0: none).
    pub fn new(cap_bytes: usize) -> PrefixCache {
        PrefixCache {
            cap_bytes,
            used_bytes: 0,
            clock: 0,
            blocks: HashMap::new(),
        }
    }

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> usize {
        self.used_bytes
    }

    /// Blocks held.
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The keys and values of the longest kept prefix of `prompt` that
    /// leaves at least one token to compute (the last one's logits start
    /// the answer), in whole blocks; `None` when not even its first block
    /// is kept.
    pub fn lookup(&mut self, prompt: &[u32]) -> Result<Option<KvCache>> {
        self.clock += 1;
        let usable = prompt.len().saturating_sub(1) / BLOCK;
        let mut parent = None;
        let mut found = Vec::new();
        for tokens in prompt.chunks_exact(BLOCK).take(usable) {
            let key = chain(parent, tokens);
            match self.blocks.get_mut(&key) {
                Some(block) if block.tokens == tokens && block.parent == parent => {
                    block.last_used = self.clock;
                    found.push(key);
                    parent = Some(key);
                }
                _ => break,
            }
        }
        if found.is_empty() {
            return Ok(None);
        }
        let parts: Vec<&KvCache> = found.iter().map(|k| &self.blocks[k].kv).collect();
        Ok(Some(KvCache::concat(&parts)?))
    }

    /// Keep the whole blocks of `prompt` not kept yet, from `kv`, the keys
    /// and values of (at least) its first `kv.len()` tokens; then evict down
    /// to the cap.
    pub fn insert(&mut self, prompt: &[u32], kv: &KvCache) -> Result<()> {
        if self.cap_bytes == 0 {
            return Ok(());
        }
        self.clock += 1;
        let whole = prompt.len().min(kv.len()) / BLOCK;
        let mut parent = None;
        for (i, tokens) in prompt.chunks_exact(BLOCK).take(whole).enumerate() {
            let key = chain(parent, tokens);
            match self.blocks.get_mut(&key) {
                Some(block) if block.tokens == tokens && block.parent == parent => {
                    block.last_used = self.clock;
                }
                // A collision with another prefix: keep the one there.
                Some(_) => return self.evict(),
                None => {
                    let part = kv.slice(i * BLOCK, BLOCK)?;
                    let bytes = part.bytes();
                    self.used_bytes += bytes;
                    self.blocks.insert(
                        key,
                        Block {
                            tokens: tokens.to_vec(),
                            parent,
                            depth: i,
                            kv: part,
                            bytes,
                            last_used: self.clock,
                        },
                    );
                }
            }
            parent = Some(key);
        }
        self.evict()
    }

    /// Drop blocks, least recently used (deepest among equals) first,
    /// until the cap holds.
    fn evict(&mut self) -> Result<()> {
        if self.used_bytes <= self.cap_bytes {
            return Ok(());
        }
        let mut order: Vec<(u64, std::cmp::Reverse<usize>, u64)> = self
            .blocks
            .iter()
            .map(|(k, b)| (b.last_used, std::cmp::Reverse(b.depth), *k))
            .collect();
        order.sort_unstable();
        for (_, _, key) in order {
            if self.used_bytes <= self.cap_bytes {
                break;
            }
            if let Some(block) = self.blocks.remove(&key) {
                self.used_bytes -= block.bytes;
            }
        }
        Ok(())
    }
}
