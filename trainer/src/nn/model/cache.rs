//! Keys and values kept between decoding steps: one prompt's ([`KvCache`]),
//! and a batch of sequences decoded together ([`KvBatch`], one buffer per
//! layer for all of them, so a step over any number of sequences costs the
//! same few ops per layer).

use candle_core::{Result, Tensor};

/// One sequence's keys and values per layer (`[1, kv_heads, len, d]`
/// each), as a prompt leaves them ([`super::Model::prefill_batch`]), to join
/// a [`KvBatch`].
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
}

impl KvCache {
    pub(super) fn from_layers(layers: Vec<(Tensor, Tensor)>, len: usize) -> Self {
        KvCache { layers, len }
    }
    pub(super) fn layers(&self) -> &[(Tensor, Tensor)] {
        &self.layers
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions `start..start + len`, copied (they own their memory).
    pub fn slice(&self, start: usize, len: usize) -> Result<KvCache> {
        if start + len > self.len {
            candle_core::bail!(
                "positions {start}..{} of a cache of {}",
                start + len,
                self.len
            );
        }
        // `force_contiguous` copies the view alone; `copy` would clone the
        // whole prompt's buffer (and keep it alive) for every block.
        let part = |x: &Tensor| x.narrow(2, start, len)?.force_contiguous();
        let layers = self
            .layers
            .iter()
            .map(|(k, v)| Ok((part(k)?, part(v)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache { layers, len })
    }

    /// `parts` one after the other: the cache of their positions in order.
    pub fn concat(parts: &[&KvCache]) -> Result<KvCache> {
        let Some(first) = parts.first() else {
            candle_core::bail!("no caches to concatenate");
        };
        let mut layers = Vec::with_capacity(first.layers.len());
        for l in 0..first.layers.len() {
            let keys: Vec<&Tensor> = parts.iter().map(|p| &p.layers[l].0).collect();
            let values: Vec<&Tensor> = parts.iter().map(|p| &p.layers[l].1).collect();
            layers.push((Tensor::cat(&keys, 2)?, Tensor::cat(&values, 2)?));
        }
        Ok(KvCache {
            layers,
            len: parts.iter().map(|p| p.len).sum(),
        })
    }

    /// Bytes its keys and values take.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
            .sum()
    }
}

/// The caches of sequences decoded together: row `i` of each layer's keys
/// and values `[rows, kv_heads, capacity, d]` holds sequence `i`'s positions
/// `0..lens[i]`. Rows stay packed (a sequence that leaves is replaced by the
/// last one, as [`Vec::swap_remove`] does, so callers keep their own list in
/// the same order); rows and capacity grow as needed.
#[derive(Default)]
pub struct KvBatch {
    pub(super) layers: Vec<(Tensor, Tensor)>,
    pub(super) lens: Vec<usize>,
}

impl KvBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sequences in the batch.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Positions cached for sequence `row`.
    pub fn positions(&self, row: usize) -> usize {
        self.lens[row]
    }

    fn rows_allocated(&self) -> usize {
        self.layers
            .first()
            .map_or(0, |(k, _)| k.dim(0).unwrap_or(0))
    }

    fn capacity(&self) -> usize {
        self.layers
            .first()
            .map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }

    /// Make room for `rows` sequences of up to `positions` positions.
    pub(super) fn reserve(
        &mut self,
        rows: usize,
        positions: usize,
        like: &[(Tensor, Tensor)],
    ) -> Result<()> {
        let (have_rows, have_positions) = (self.rows_allocated(), self.capacity());
        if rows <= have_rows && positions <= have_positions {
            return Ok(());
        }
        // Doubling keeps the copies rare.
        let rows = rows.max(have_rows).max(1).next_power_of_two();
        let positions = positions.max(have_positions).max(16).next_power_of_two();
        let grow = |old: Option<&Tensor>, like: &Tensor| -> Result<Tensor> {
            let (_, kv_heads, _, d) = like.dims4()?;
            let fresh = Tensor::zeros((rows, kv_heads, positions, d), like.dtype(), like.device())?;
            if let Some(old) = old {
                let old = old.pad_with_zeros(2, 0, positions - old.dim(2)?)?;
                fresh.slice_set(&old, 0, 0)?;
            }
            Ok(fresh)
        };
        let mut layers = Vec::with_capacity(like.len());
        for (l, (k, v)) in like.iter().enumerate() {
            let old = self.layers.get(l);
            layers.push((grow(old.map(|o| &o.0), k)?, grow(old.map(|o| &o.1), v)?));
        }
        self.layers = layers;
        Ok(())
    }

    /// Add a prefilled sequence as the last row.
    pub fn push(&mut self, cache: KvCache) -> Result<()> {
        let layers = cache.layers;
        let row = self.lens.len();
        self.reserve(row + 1, cache.len + 1, &layers)?;
        for ((keys, values), (k, v)) in self.layers.iter().zip(&layers) {
            keys.narrow(0, row, 1)?.slice_set(&k.contiguous()?, 2, 0)?;
            values
                .narrow(0, row, 1)?
                .slice_set(&v.contiguous()?, 2, 0)?;
        }
        self.lens.push(cache.len);
        Ok(())
    }

    /// Remove sequence `row`; the last one takes its place.
    pub fn swap_remove(&mut self, row: usize) -> Result<()> {
        let last = self.lens.len() - 1;
        if row != last {
            for (keys, values) in &self.layers {
                for buffer in [keys, values] {
                    let moved = buffer.narrow(0, last, 1)?.force_contiguous()?;
                    buffer.narrow(0, row, 1)?.slice_set(&moved, 0, 0)?;
                }
            }
        }
        self.lens.swap_remove(row);
        Ok(())
    }
}
