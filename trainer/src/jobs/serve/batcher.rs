//! Continuous batching: one thread decodes every running generation
//! together, one token per sequence per step, so that concurrent requests
//! share each pass over the weights (decoding one token reads all of them:
//! alone, a request pays that for itself). Requests that arrived since the
//! last step are prefilled together (prompts of similar lengths, padded to
//! the longest), then join the next step; a finished one leaves it.
//! Requests that started on other weights (before a reload) step in their
//! own batch.
//!
//! Batched logits equal a lone request's to float rounding (the matmuls'
//! summation differs with the batch size), so a greedy reply under load may
//! differ from the same request alone where two tokens tie to ~1e-7.

use super::weights::ServedModel;
use crate::jobs::generate::{Decoding, GenerateConfig, Generated};
use crate::nn::model::KvBatch;
use anyhow::{Result, anyhow};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// The handle requests submit generations through; the batching thread
/// ends when it is dropped.
pub struct Batcher {
    work: Sender<Work>,
    /// The most generations decoded in one step so far.
    largest_batch: Arc<AtomicUsize>,
}

impl Batcher {
    /// Start the batching thread.
    pub fn start() -> Result<Batcher> {
        let (work, queue) = channel();
        let largest_batch = Arc::new(AtomicUsize::new(0));
        let largest = largest_batch.clone();
        std::thread::Builder::new()
            .name("batcher".into())
            .spawn(move || run(queue, &largest))
            .map_err(|e| anyhow!("cannot start the batching thread: {e}"))?;
        Ok(Batcher {
            work,
            largest_batch,
        })
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

fn run(queue: Receiver<Work>, largest_batch: &AtomicUsize) {
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
            if catch_unwind(AssertUnwindSafe(|| start(arrived, &mut groups))).is_err() {
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

/// Start the generations that arrived: prompts on the same weights and of
/// similar lengths prefilled together, each first token taken; those that
/// go on join the group of their weights.
fn start(arrived: Vec<Work>, groups: &mut Vec<Group>) {
    let mut new: Vec<(Arc<ServedModel>, Running)> = Vec::new();
    for work in arrived {
        match Decoding::new(
            &work.weights.model,
            &work.prompt,
            &work.weights.eos,
            &work.config,
        ) {
            Ok(sequence) => {
                let running = Running {
                    sequence,
                    events: work.events,
                    failed: false,
                };
                if running.goes_on() {
                    new.push((work.weights, running));
                } else {
                    running.finish(); // asked for no tokens
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
        prefill(batch, groups);
    }
}

/// Prefill prompts on the same weights together and take each first token.
fn prefill(mut batch: Vec<(Arc<ServedModel>, Running)>, groups: &mut Vec<Group>) {
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
    let index = match groups
        .iter()
        .position(|g| Arc::ptr_eq(&g.weights, &weights))
    {
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
    let group = &mut groups[index];
    for (row, ((_, mut running), cache)) in batch.drain(..).zip(caches).enumerate() {
        match logits.get(row) {
            Ok(row_logits) => running.accept(&row_logits, &weights),
            Err(e) => running.fail(e.into()),
        }
        if !running.goes_on() {
            running.finish();
            continue;
        }
        match group.caches.push(cache) {
            Ok(()) => group.running.push(running),
            Err(e) => running.fail(anyhow!("cannot join the batch: {e}")),
        }
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
