//! Keys and values kept between decoding steps: one sequence's
//! ([`KvCache`], grown a position at a time), or a batch of sequences
//! decoded together ([`KvBatch`], one buffer per layer for all of them, so a
//! step over any number of sequences costs the same few ops per layer).

use super::Model;
use crate::config::ModelConfig;
use crate::ops::accumulation_dtype;
use candle_core::{Result, Tensor};

/// Keys and values of the positions seen so far, per layer.
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    pub fn new(cfg: &ModelConfig) -> Self {
        Self::with_layers(cfg.num_hidden_layers)
    }
    pub fn with_layers(layers: usize) -> Self {
        KvCache {
            layers: vec![None; layers],
            len: 0,
        }
    }
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub(super) fn advance(&mut self, positions: usize) {
        self.len += positions;
    }
}

/// The caches of sequences decoded together: row `i` of each layer's keys
/// and values `[rows, kv_heads, capacity, d]` holds sequence `i`'s positions
/// `0..lens[i]`. Rows stay packed (a sequence that leaves is replaced by the
/// last one, as [`Vec::swap_remove`] does, so callers keep their own list in
/// the same order); rows and capacity grow as needed.
#[derive(Default)]
pub struct KvBatch {
    layers: Vec<(Tensor, Tensor)>,
    lens: Vec<usize>,
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
    fn reserve(&mut self, rows: usize, positions: usize, like: &[(Tensor, Tensor)]) -> Result<()> {
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
        let layers: Vec<(Tensor, Tensor)> = cache
            .layers
            .into_iter()
            .map(|layer| layer.ok_or_else(|| candle_core::Error::Msg("an empty cache".into())))
            .collect::<Result<_>>()?;
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
                    let moved = buffer.narrow(0, last, 1)?.copy()?;
                    buffer.narrow(0, row, 1)?.slice_set(&moved, 0, 0)?;
                }
            }
        }
        self.lens.swap_remove(row);
        Ok(())
    }
}

impl Model {
    /// One decoding step for every sequence of `batch`: `tokens[i]`
    /// continues sequence `i`. Returns the next-token logits `[sequences,
    /// vocab]`. All sequences share each op: the projections and the MLP
    /// read the weights once for all of them, and attention runs over the
    /// batch's buffers, each sequence masked to its own length.
    pub fn decode_batch(&self, tokens: &[u32], batch: &mut KvBatch) -> Result<Tensor> {
        let n = batch.len();
        if tokens.len() != n || n == 0 {
            candle_core::bail!("decode_batch: {} tokens for {n} sequences", tokens.len());
        }
        let longest = batch.lens.iter().max().copied().unwrap_or(0) + 1;
        let like = batch.layers.clone();
        batch.reserve(n, longest, &like)?;
        let device = self.device();
        let (kv_heads, d) = (self.cfg.num_key_value_heads, self.cfg.head_dim());
        // Where each sequence's new key and value go, and which positions it sees.
        let at: Vec<u32> = batch
            .lens
            .iter()
            .flat_map(|&len| std::iter::repeat_n(len as u32, kv_heads * d))
            .collect();
        let at = Tensor::from_vec(at, (n, kv_heads, 1, d), device)?;
        let wide = accumulation_dtype(self.compute);
        let mask: Vec<f32> = batch
            .lens
            .iter()
            .flat_map(|&len| {
                (0..longest).map(move |p| if p <= len { 0.0 } else { f32::NEG_INFINITY })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (n, 1, 1, longest), device)?.to_dtype(wide)?;
        let scale = 1.0 / (d as f64).sqrt();
        let ids = Tensor::new(tokens, device)?.unsqueeze(1)?;
        let starts = batch.lens.clone();
        let layers = &batch.layers;
        let x = self.decoder(&ids, &starts, |l, q, k, v| {
            let (keys, values) = &layers[l];
            let (keys, values) = (keys.narrow(0, 0, n)?, values.narrow(0, 0, n)?);
            keys.scatter_set(&at, &k.contiguous()?, 2)?;
            values.scatter_set(&at, &v.contiguous()?, 2)?;
            let (keys, values) = (keys.narrow(2, 0, longest)?, values.narrow(2, 0, longest)?);
            let heads = q.dim(1)?;
            let grouped = q.reshape((n, kv_heads, heads / kv_heads, d))?;
            let scores = (grouped.matmul(&keys.t()?)? * scale)?
                .to_dtype(wide)?
                .broadcast_add(&mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(q.dtype())?;
            probs.matmul(&values)?.reshape((n, heads, 1, d))
        })?;
        for len in &mut batch.lens {
            *len += 1;
        }
        let x = super::rms_norm(&x.squeeze(1)?, &self.norm, self.cfg.rms_norm_eps)?;
        x.to_dtype(self.compute)?.matmul(&self.lm_head.t()?)
    }

    /// Layer `l`'s attention for one sequence continuing `cache` (a prompt
    /// being prefilled): queries, keys and values `[1, heads, t, d]`
    /// (rotary embeddings applied) at positions `start..start + t`; the
    /// cache then holds their keys and values.
    pub(super) fn attend_cached(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        start: usize,
        cache: &mut KvCache,
        l: usize,
    ) -> Result<Tensor> {
        let (k, v) = match &cache.layers[l] {
            Some((pk, pv)) => (Tensor::cat(&[pk, k], 2)?, Tensor::cat(&[pv, v], 2)?),
            None => (k.clone(), v.clone()),
        };
        cache.layers[l] = Some((k.clone(), v.clone()));
        let scale = 1.0 / (self.cfg.head_dim() as f64).sqrt();
        crate::ops::causal_attention(q, &k, &v, start, scale)
    }
}
