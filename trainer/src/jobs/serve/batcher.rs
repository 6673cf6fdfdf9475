//! Continuous batching: one thread decodes every running generation
//! together, one token per sequence per step, so that concurrent requests
//! share each pass over the weights (decoding one token reads all of them:
//! alone, a request pays that for itself). Requests that arrived since the
//! last step are prefilled together (prompts of similar lengths, padded to
//! the longest), then join the next step; a finished one leaves it.
//! Requests that started on other weights (before a reload) step in their
//! own batch.
//!
//! A prompt whose start is in the prefix cache ([`super::prefix`]) is
//! prefilled on its own after the cached positions; the others together.
//! Every prompt's whole blocks then go into the cache.
//!
//! Batched logits equal a lone request's to float rounding (the matmuls'
//! summation differs with the batch size), so a greedy reply under load may
//! differ from the same request alone where two tokens tie to ~1e-7.

use super::weights::ServedModel;
use crate::jobs::generate::{Decoding, GenerateConfig, Generated};
use crate::nn::model::{KvBatch, KvCache};
use anyhow::{Result, anyhow};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

/// What a generation sends back to its request.
enum Event {
    /// Text that became final.
    Text(String),
    Done(Result<Generated>),
}

struct Work {
    weights: Arc<ServedModel>,
    prompt: Vec<u32>,
    config: GenerateConfig,
    events: Sender<Event>,
}

/// Prompt tokens so far: received, computed, and taken from the prefix
/// cache instead (received = computed + reused).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PromptCounts {
    pub received: u64,
    pub computed: u64,
    pub reused: u64,
}

#[derive(Default)]
struct Counters {
    computed: AtomicU64,
    reused: AtomicU64,
}

impl Counters {
    fn add(&self, computed: usize, reused: usize) {
        self.computed.fetch_add(computed as u64, Ordering::Relaxed);
        self.reused.fetch_add(reused as u64, Ordering::Relaxed);
    }
}

/// The handle requests submit generations through; the batching thread
/// ends when it is dropped.
pub struct Batcher {
    work: Sender<Work>,
    /// The most generations decoded in one step so far.
    largest_batch: Arc<AtomicUsize>,
    counters: Arc<Counters>,
}

impl Batcher {
    /// Start the batching thread.
    pub fn start() -> Result<Batcher> {
        let (work, queue) = channel();
        let largest_batch = Arc::new(AtomicUsize::new(0));
        let counters = Arc::new(Counters::default());
        let (largest, counted) = (largest_batch.clone(), counters.clone());
        std::thread::Builder::new()
            .name("batcher".into())
            .spawn(move || run(queue, &largest, &counted))
            .map_err(|e| anyhow!("cannot start the batching thread: {e}"))?;
        Ok(Batcher {
            work,
            largest_batch,
            counters,
        })
    }

    /// Prompt tokens computed and reused so far.
    pub fn prompt_counts(&self) -> PromptCounts {
        let computed = self.counters.computed.load(Ordering::Relaxed);
        let reused = self.counters.reused.load(Ordering::Relaxed);
        PromptCounts {
            received: computed + reused,
            computed,
            reused,
        }
    }

    /// The most generations decoded together in one step so far.
    pub fn largest_batch(&self) -> usize {
        self.largest_batch.load(Ordering::Relaxed)
    }

    /// Generate a reply to `prompt` with `weights`, handing text to `on_text`
    /// as it becomes final (false: stop, the receiver went away). Blocks
    /// until done: call it from a blocking thread.
    pub fn generate(
        &self,
        weights: Arc<ServedModel>,
        prompt: Vec<u32>,
        config: GenerateConfig,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generated> {
        let (events, received) = channel();
        self.work
            .send(Work {
                weights,
                prompt,
                config,
                events,
            })
            .map_err(|_| anyhow!("the batching thread has stopped"))?;
        for event in received {
            match event {
                Event::Text(piece) => {
                    if !on_text(&piece) {
                        // Dropping the receiver tells the batcher to stop.
                        return Err(anyhow!("the receiver of the reply went away"));
                    }
                }
                Event::Done(result) => return result,
            }
        }
        Err(anyhow!(
            "the generation failed in the batching thread (an internal error; the server goes on)"
        ))
    }
}

/// A generation in the batch.
struct Running {
    sequence: Decoding,
    events: Sender<Event>,
    /// An error was sent as its reply.
    failed: bool,
}

impl Running {
    /// Hand `logits` (`[vocab]`) to the sequence.
    fn accept(&mut self, logits: &candle_core::Tensor, weights: &ServedModel) {
        let events = &self.events;
        let mut on_text = |piece: &str| events.send(Event::Text(piece.to_string())).is_ok();
        let accepted = self
            .sequence
            .accept(logits, &weights.tokenizer, &mut on_text);
        if let Err(e) = accepted {
            self.fail(e);
        }
    }

    fn fail(&mut self, error: anyhow::Error) {
        let _ = self.events.send(Event::Done(Err(error)));
        self.failed = true;
    }

    fn goes_on(&self) -> bool {
        !self.failed && self.sequence.wants_more()
    }

    /// Send the reply (unless an error was sent already).
    fn finish(self) {
        if self.failed {
            return;
        }
        let events = self.events;
        let mut on_text = |piece: &str| events.send(Event::Text(piece.to_string())).is_ok();
        let generated = self.sequence.finish(&mut on_text);
        let _ = events.send(Event::Done(Ok(generated)));
    }
}

/// The generations on one set of weights: `running[i]` is row `i` of `caches`.
struct Group {
    weights: Arc<ServedModel>,
    caches: KvBatch,
    running: Vec<Running>,
}

impl Group {
    /// One token for every generation; the finished ones leave.
    fn step(&mut self) {
        let tokens: Vec<u32> = self
            .running
            .iter()
            .map(|r| r.sequence.last_token())
            .collect();
        match self.weights.model.decode_batch(&tokens, &mut self.caches) {
            Ok(logits) => {
                for (row, running) in self.running.iter_mut().enumerate() {
                    match logits.get(row) {
                        Ok(row_logits) => running.accept(&row_logits, &self.weights),
                        Err(e) => running.fail(e.into()),
                    }
                }
            }
            Err(e) => {
                for running in &mut self.running {
                    running.fail(anyhow!("decoding failed: {e}"));
                }
            }
        }
        for row in (0..self.running.len()).rev() {
            if self.running[row].goes_on() {
                continue;
            }
            let done = self.running.swap_remove(row);
            if let Err(e) = self.caches.swap_remove(row) {
                // The rows no longer match: end every generation of the group.
                for mut running in self.running.drain(..) {
                    running.fail(anyhow!("the batch's caches broke: {e}"));
                }
            }
            done.finish();
        }
    }
}

fn run(queue: Receiver<Work>, largest_batch: &AtomicUsize, counters: &Counters) {
    let mut groups: Vec<Group> = Vec::new();
    loop {
        // Wait for work when idle; otherwise take what has arrived.
        let mut arrived = Vec::new();
        if groups.is_empty() {
            release_memory();
            match queue.recv() {
                Ok(work) => arrived.push(work),
                Err(_) => return,
            }
        }
        loop {
            match queue.try_recv() {
                Ok(work) => arrived.push(work),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) if groups.is_empty() && arrived.is_empty() => {
                    return;
                }
                Err(TryRecvError::Disconnected) => break,
            }
        }
        if !arrived.is_empty() {
            let before = groups.len();
            // A panic ends these new generations (their requests get an error
            // as their channels close), not the server.
            let started = catch_unwind(AssertUnwindSafe(|| start(arrived, &mut groups, counters)));
            if started.is_err() {
                groups.truncate(before);
            }
        }
        groups.retain_mut(|group| {
            largest_batch.fetch_max(group.running.len(), Ordering::Relaxed);
            let stepped = catch_unwind(AssertUnwindSafe(|| group.step()));
            stepped.is_ok() && !group.running.is_empty()
        });
    }
}

/// Prompts whose lengths are within this factor of each other are prefilled
/// together (padded to the longest); more apart, the padding would cost
/// more than prefilling them apart.
const PREFILL_SPREAD: usize = 2;

/// Start the generations that arrived: a prompt with a cached prefix
/// prefilled after it, the others on the same weights and of similar
/// lengths together; each first token taken; those that go on join the
/// group of their weights.
fn start(arrived: Vec<Work>, groups: &mut Vec<Group>, counters: &Counters) {
    let mut new: Vec<(Arc<ServedModel>, Running)> = Vec::new();
    for work in arrived {
        match Decoding::new(
            &work.weights.model,
            &work.prompt,
            &work.weights.eos,
            &work.config,
        ) {
            Ok(sequence) => {
                let mut running = Running {
                    sequence,
                    events: work.events,
                    failed: false,
                };
                if !running.goes_on() {
                    running.finish(); // asked for no tokens
                    continue;
                }
                let hit = work.weights.prefix_cache().lookup(&work.prompt);
                match hit {
                    Ok(Some(prefix)) => {
                        prefill_after(&work.weights, running, &prefix, groups, counters)
                    }
                    Ok(None) => new.push((work.weights, running)),
                    Err(e) => running.fail(anyhow!("the prefix cache failed: {e}")),
                }
            }
            Err(e) => {
                let _ = work.events.send(Event::Done(Err(e)));
            }
        }
    }
    new.sort_by_key(|(weights, running)| (Arc::as_ptr(weights), running.sequence.tokens().len()));
    while !new.is_empty() {
        let (weights, first) = (&new[0].0, new[0].1.sequence.tokens().len());
        let together = new
            .iter()
            .take_while(|(w, r)| {
                Arc::ptr_eq(w, weights) && r.sequence.tokens().len() <= first * PREFILL_SPREAD
            })
            .count();
        let batch: Vec<(Arc<ServedModel>, Running)> = new.drain(..together).collect();
        prefill(batch, groups, counters);
    }
}

/// The group of `weights` (a new one if there is none).
fn group_of<'a>(groups: &'a mut Vec<Group>, weights: &Arc<ServedModel>) -> &'a mut Group {
    let index = match groups.iter().position(|g| Arc::ptr_eq(&g.weights, weights)) {
        Some(index) => index,
        None => {
            groups.push(Group {
                weights: weights.clone(),
                caches: KvBatch::new(),
                running: Vec::new(),
            });
            groups.len() - 1
        }
    };
    &mut groups[index]
}

/// Hand a prefilled prompt its first logits, keep its blocks in the prefix
/// cache, and let it join its group if it goes on.
fn join(
    weights: &Arc<ServedModel>,
    mut running: Running,
    logits: candle_core::Result<candle_core::Tensor>,
    cache: KvCache,
    groups: &mut Vec<Group>,
) {
    let kept = weights
        .prefix_cache()
        .insert(running.sequence.tokens(), &cache);
    if let Err(e) = kept {
        // The reply does not need the cache: it goes on without.
        eprintln!("warning: the prefix cache could not keep a prompt: {e}");
    }
    match logits {
        Ok(row_logits) => running.accept(&row_logits, weights),
        Err(e) => running.fail(e.into()),
    }
    if !running.goes_on() {
        running.finish();
        return;
    }
    let group = group_of(groups, weights);
    match group.caches.push(cache) {
        Ok(()) => group.running.push(running),
        Err(e) => running.fail(anyhow!("cannot join the batch: {e}")),
    }
}

/// Prefill a prompt after its cached `prefix` and take its first token.
fn prefill_after(
    weights: &Arc<ServedModel>,
    mut running: Running,
    prefix: &KvCache,
    groups: &mut Vec<Group>,
    counters: &Counters,
) {
    let cached = prefix.len();
    let prompt = running.sequence.tokens().to_vec();
    match weights.model.prefill_after(prefix, &prompt[cached..]) {
        Ok((logits, cache)) => {
            counters.add(prompt.len() - cached, cached);
            running.sequence.set_cached_prompt_tokens(cached);
            join(weights, running, logits.get(0), cache, groups);
        }
        Err(e) => running.fail(anyhow!("prefill failed: {e}")),
    }
}

/// Prefill prompts on the same weights together and take each first token.
fn prefill(
    mut batch: Vec<(Arc<ServedModel>, Running)>,
    groups: &mut Vec<Group>,
    counters: &Counters,
) {
    let weights = batch[0].0.clone();
    let prompts: Vec<&[u32]> = batch.iter().map(|(_, r)| r.sequence.tokens()).collect();
    let (logits, caches) = match weights.model.prefill_batch(&prompts) {
        Ok(done) => done,
        Err(e) => {
            for (_, mut running) in batch {
                running.fail(anyhow!("prefill failed: {e}"));
            }
            return;
        }
    };
    counters.add(prompts.iter().map(|p| p.len()).sum(), 0);
    for (row, ((_, running), cache)) in batch.drain(..).zip(caches).enumerate() {
        join(&weights, running, logits.get(row), cache, groups);
    }
}

/// Give the memory freed by generations back to the system, so the
/// server's resident size returns to its baseline between requests.
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
