//! Decoding with the caches: prompts run into their caches together
//! ([`Model::prefill_batch`]), then a batch of sequences one token each
//! ([`Model::decode_batch`]).

use super::Model;
use super::cache::{KvBatch, KvCache};
use crate::nn::ops::accumulation_dtype;
use crate::nn::ops::attention::causal_attention;
use crate::nn::ops::rms_norm::rms_norm;
use candle_core::{Result, Tensor};

impl Model {
    /// Run several prompts through the model together: the next-token
    /// logits `[prompts, vocab]` after each, and each prompt's cache. The
    /// prompts are padded at the end to the longest; causal attention keeps
    /// the padding out of every real position.
    pub fn prefill_batch(&self, prompts: &[&[u32]]) -> Result<(Tensor, Vec<KvCache>)> {
        let longest = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
        if prompts.is_empty() || prompts.iter().any(|p| p.is_empty()) {
            candle_core::bail!("prefill_batch: no prompts, or an empty one");
        }
        let n = prompts.len();
        let padded: Vec<u32> = prompts
            .iter()
            .flat_map(|p| {
                p.iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, longest - p.len()))
            })
            .collect();
        let ids = Tensor::from_vec(padded, (n, longest), self.device())?;
        let scale = 1.0 / (self.cfg.head_dim() as f64).sqrt();
        let mut layers: Vec<(Tensor, Tensor)> = Vec::with_capacity(self.cfg.num_hidden_layers);
        let x = self.decoder(&ids, &[0], |_, q, k, v| {
            layers.push((k.clone(), v.clone()));
            causal_attention(q, k, v, 0, scale)
        })?;
        let last: Vec<u32> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| (i * longest + p.len() - 1) as u32)
            .collect();
        let x = x
            .flatten_to(1)?
            .index_select(&Tensor::new(last, self.device())?, 0)?;
        let x = rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)?;
        let logits = self.project(&x)?;
        let mut caches = Vec::with_capacity(n);
        for (i, prompt) in prompts.iter().enumerate() {
            let row = |x: &Tensor| x.narrow(0, i, 1)?.narrow(2, 0, prompt.len())?.contiguous();
            let kept = layers
                .iter()
                .map(|(k, v)| Ok((row(k)?, row(v)?)))
                .collect::<Result<Vec<_>>>()?;
            caches.push(KvCache::from_layers(kept, prompt.len()));
        }
        Ok((logits, caches))
    }

    /// Prefill `rest`, the tokens that follow the positions `prefix` holds
    /// (a prompt whose start was computed before): the next-token logits
    /// `[1, vocab]` after its last token, and the cache of the whole
    /// prompt. The logits equal a whole prefill's to float rounding.
    pub fn prefill_after(&self, prefix: &KvCache, rest: &[u32]) -> Result<(Tensor, KvCache)> {
        if rest.is_empty() {
            candle_core::bail!("prefill_after: nothing after the prefix");
        }
        let start = prefix.len();
        let ids = Tensor::new(rest, self.device())?.unsqueeze(0)?;
        let scale = 1.0 / (self.cfg.head_dim() as f64).sqrt();
        let mut layers: Vec<(Tensor, Tensor)> = Vec::with_capacity(self.cfg.num_hidden_layers);
        let x = self.decoder(&ids, &[start], |l, q, k, v| {
            let (pk, pv) = &prefix.layers()[l];
            let keys = Tensor::cat(&[pk, &k.contiguous()?], 2)?;
            let values = Tensor::cat(&[pv, &v.contiguous()?], 2)?;
            let y = causal_attention(q, &keys, &values, start, scale)?;
            layers.push((keys, values));
            Ok(y)
        })?;
        let x = x.narrow(1, rest.len() - 1, 1)?.squeeze(1)?;
        let x = rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)?;
        let logits = self.project(&x)?;
        Ok((logits, KvCache::from_layers(layers, start + rest.len())))
    }

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
        let x = rms_norm(&x.squeeze(1)?, &self.norm, self.cfg.rms_norm_eps)?;
        self.project(&x)
    }
}
