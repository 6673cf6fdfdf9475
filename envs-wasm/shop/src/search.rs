//! BM25 over the catalog (Lucene's formula, pyserini's defaults k1 = 0.9,
//! b = 0.4), the top 50 kept as WebShop keeps them. The index is built from
//! the catalog on first use in an instance and never stored in a snapshot.

use crate::catalog::{self, PRODUCTS};
use std::collections::HashMap;

pub const TOP: usize = 50;
const K1: f64 = 0.9;
const B: f64 = 0.4;

struct Index {
    /// Term -> (product, term frequency) postings.
    postings: HashMap<String, Vec<(u32, u32)>>,
    lengths: Vec<u32>,
    mean_length: f64,
}

thread_local! {
    static INDEX: std::cell::OnceCell<Index> = const { std::cell::OnceCell::new() };
}

fn build() -> Index {
    let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
    let mut lengths = Vec::with_capacity(PRODUCTS as usize);
    for i in 0..PRODUCTS {
        let words = catalog::words(&catalog::product(i));
        lengths.push(words.len() as u32);
        let mut counts: HashMap<String, u32> = HashMap::new();
        for w in words {
            *counts.entry(w).or_default() += 1;
        }
        for (w, n) in counts {
            postings.entry(w).or_default().push((i, n));
        }
    }
    let mean_length = lengths.iter().map(|l| f64::from(*l)).sum::<f64>() / f64::from(PRODUCTS);
    Index {
        postings,
        lengths,
        mean_length,
    }
}

/// The products that best match `query`, best first (ties by index).
pub fn search(query: &str) -> Vec<u32> {
    INDEX.with(|cell| {
        let index = cell.get_or_init(build);
        let mut scores: HashMap<u32, f64> = HashMap::new();
        let n = f64::from(PRODUCTS);
        for term in catalog::tokens(query) {
            let Some(list) = index.postings.get(&term) else {
                continue;
            };
            let df = list.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(doc, tf) in list {
                let tf = f64::from(tf);
                let norm =
                    K1 * (1.0 - B + B * f64::from(index.lengths[doc as usize]) / index.mean_length);
                *scores.entry(doc).or_default() += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        let mut ranked: Vec<(u32, f64)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.into_iter().take(TOP).map(|(d, _)| d).collect()
    })
}
