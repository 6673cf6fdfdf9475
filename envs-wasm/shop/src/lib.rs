//! `shop`: a WebShop-style store, as a leafe environment.
//!
//! A seeded catalog of 10,000 products in five categories (title,
//! description, bullet features, price, attributes, options such as size
//! and colour; each product a pure function of its index). Each task asks,
//! in WebShop's words, for a product with some attributes and options under
//! a price ("i am looking for gluten free snack pack with flavor: bbq, and
//! price lower than 30.00 dollars"). WebShop's pages and actions:
//! `search[query]` (BM25, top 50, pages of 10), `click[next >]`,
//! `click[< prev]`, `click[<item id>]`, an option value, `click[description]`,
//! `click[features]`, `click[reviews]`, `click[back to search]`,
//! `click[buy now]`. Buying ends the episode with WebShop's reward
//! r_type * (attributes hit + options hit + price ok) / (attributes + options
//! + 1); success when it is 1.

mod catalog;
mod search;

use catalog::{PRODUCTS, Product, product};
use leafe_guest::{EnvError, EnvInfo, Environment, Rng, Step, Task};
use serde::{Deserialize, Serialize};

const TEST: u32 = 500;
const DEV: u32 = 1_000;
const TRAIN: u32 = 10_000;
const PER_PAGE: usize = 10;
/// Steps per episode unless the task says otherwise (ReAct's and verl-agent's 15).
const MAX_STEPS: u32 = 15;

const ACTION_HINT: &str = "A web shop (WebShop): buy the product the instruction asks for. \
Answer with one action: search[keywords], or click[x] where x is a button or link on the page \
(back to search, next >, < prev, an item id, an option value, description, features, reviews, \
buy now). Buying ends the episode; the reward is the share of the instruction's attributes, \
options and price that the product meets.";

/// What the instruction asks for.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Goal {
    product: u32,
    attributes: Vec<String>,
    /// Option name and wanted value.
    options: Vec<(String, String)>,
    price_upper: f64,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Page {
    Search,
    Results { page: usize },
    Item { product: u32 },
    Detail { product: u32, what: String },
    Done,
}

/// The episode.
#[derive(Serialize, Deserialize)]
pub struct Shop {
    goal: Goal,
    page: Page,
    query: String,
    results: Vec<u32>,
    /// Options chosen on the item page (cleared on the results page).
    chosen: Vec<(String, String)>,
}

fn goal_for(task: &Task) -> Result<Goal, EnvError> {
    let offset = match task.split.as_str() {
        "test" => 0,
        "dev" => TEST,
        "train" => TEST + DEV,
        other => return Err(EnvError::BadTask(format!("unknown split {other}"))),
    };
    let mut rng = Rng::from_parts("shop-goal", &[u64::from(offset + task.index), task.seed]);
    let index = rng.below(u64::from(PRODUCTS)) as u32;
    let p = product(index);
    let mut attributes: Vec<String> = p.attributes.iter().map(|a| a.to_string()).collect();
    rng.shuffle(&mut attributes);
    attributes.truncate(1 + rng.below(attributes.len() as u64) as usize);
    let mut options: Vec<(String, String)> = p
        .options
        .iter()
        .map(|(n, vs)| {
            (
                n.to_string(),
                vs[rng.below(vs.len() as u64) as usize].to_string(),
            )
        })
        .collect();
    options.truncate(1 + rng.below(options.len() as u64) as usize);
    // WebShop's cap: of the multiples of 10 above the price, the first
    // four; two of them drawn, the larger kept.
    let first = (p.price / 10.0).floor() as u32 + 1;
    let caps: Vec<u32> = (first..first + 4).map(|k| k * 10).collect();
    let (a, b) = (rng.below(4) as usize, rng.below(4) as usize);
    let price_upper = f64::from(caps[a].max(caps[b]));
    let opts: Vec<String> = options.iter().map(|(n, v)| format!("{n}: {v}")).collect();
    let text = format!(
        "i am looking for {} {} with {}, and price lower than {price_upper:.2} dollars",
        attributes.join(" and "),
        p.kind.name,
        opts.join(", and ")
    );
    Ok(Goal {
        product: index,
        attributes,
        options,
        price_upper,
        text,
    })
}

impl Shop {
    fn head(&self) -> String {
        format!("Instruction: [SEP] {} [SEP] Back to Search", self.goal.text)
    }

    fn page_count(&self) -> usize {
        self.results.len().div_ceil(PER_PAGE)
    }

    fn observation(&self) -> String {
        match &self.page {
            Page::Search => format!(
                "WebShop [SEP] Instruction: [SEP] {} [SEP] Search",
                self.goal.text
            ),
            Page::Results { page } => {
                let mut parts = vec![
                    self.head(),
                    format!("Page {} (Total results: {})", page + 1, self.results.len()),
                ];
                if *page > 0 {
                    parts.push("< Prev".into());
                }
                if page + 1 < self.page_count() {
                    parts.push("Next >".into());
                }
                for &i in self.results.iter().skip(page * PER_PAGE).take(PER_PAGE) {
                    let p = product(i);
                    parts.push(format!(
                        "{} [SEP] {} [SEP] ${:.2}",
                        p.asin.to_uppercase(),
                        p.title,
                        p.price
                    ));
                }
                parts.join(" [SEP] ")
            }
            Page::Item { product: i } => {
                let p = product(*i);
                let mut parts = vec![self.head(), "< Prev".into()];
                for (name, values) in &p.options {
                    parts.push(name.to_string());
                    parts.extend(values.iter().map(|v| v.to_string()));
                }
                parts.push(p.title.clone());
                parts.push(format!("Price: ${:.2}", p.price));
                parts.push("Rating: N.A.".into());
                parts.extend(["Description", "Features", "Reviews", "Buy Now"].map(String::from));
                parts.join(" [SEP] ")
            }
            Page::Detail { product: i, what } => {
                let p = product(*i);
                let body = match what.as_str() {
                    "description" => p.description.clone(),
                    "features" => p.features.join(" [SEP] "),
                    _ => String::new(),
                };
                format!("{} [SEP] < Prev [SEP] {body}", self.head())
            }
            Page::Done => "Thank you for shopping with us!".into(),
        }
    }

    /// The `click[...]` targets of the page.
    fn clickables(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.page {
            Page::Search | Page::Done => {}
            Page::Results { page } => {
                out.push("back to search".into());
                if *page > 0 {
                    out.push("< prev".into());
                }
                if page + 1 < self.page_count() {
                    out.push("next >".into());
                }
                for &i in self.results.iter().skip(page * PER_PAGE).take(PER_PAGE) {
                    out.push(product(i).asin);
                }
            }
            Page::Item { product: i } => {
                out.extend(["back to search", "< prev"].map(String::from));
                for (_, values) in &product(*i).options {
                    out.extend(values.iter().map(|v| v.to_string()));
                }
                out.extend(["description", "features", "reviews", "buy now"].map(String::from));
            }
            Page::Detail { .. } => out.extend(["back to search", "< prev"].map(String::from)),
        }
        out
    }

    /// WebShop's reward for buying product `p` with the chosen options.
    fn reward(&self, p: &Product) -> f64 {
        let r_type = if p.kind.name == product(self.goal.product).kind.name {
            1.0
        } else if p.kind.category == product(self.goal.product).kind.category {
            0.5
        } else {
            0.1
        };
        let text = format!("{} {} {}", p.title, p.description, p.features.join(" "));
        let attrs = self
            .goal
            .attributes
            .iter()
            .filter(|a| p.attributes.contains(&a.as_str()) || text.contains(a.as_str()))
            .count();
        let opts = self
            .goal
            .options
            .iter()
            .filter(|(_, v)| self.chosen.iter().any(|(_, c)| c == v))
            .count();
        let price = usize::from(p.price <= self.goal.price_upper);
        let total = self.goal.attributes.len() + self.goal.options.len() + 1;
        r_type * (attrs + opts + price) as f64 / total as f64
    }

    /// Where the goal product is in the results, if it is there.
    fn goal_rank(&self) -> Option<usize> {
        self.results.iter().position(|i| *i == self.goal.product)
    }
}

impl Environment for Shop {
    fn info() -> EnvInfo {
        EnvInfo::new("shop", "0.1.0", ACTION_HINT)
            .split("train", TRAIN)
            .split("dev", DEV)
            .split("test", TEST)
            .max_steps(MAX_STEPS)
    }

    fn reset(task: &Task) -> Result<(Self, String), EnvError> {
        let shop = Shop {
            goal: goal_for(task)?,
            page: Page::Search,
            query: String::new(),
            results: Vec::new(),
            chosen: Vec::new(),
        };
        let first = shop.observation();
        Ok((shop, first))
    }

    fn step(&mut self, action: &str) -> Step {
        let action = action.trim();
        let parsed = action.split_once('[').and_then(|(verb, rest)| {
            Some((verb.trim(), rest.strip_suffix(']')?.trim().to_lowercase()))
        });
        let same = |s: &Shop| Step::new(s.observation(), 0.0).invalid_action();
        let Some((verb, arg)) = parsed.filter(|(_, a)| !a.is_empty()) else {
            return same(self);
        };
        match verb {
            "search" if self.page != Page::Done => {
                self.query = arg.clone();
                self.results = search::search(&arg);
                self.page = Page::Results { page: 0 };
                self.chosen.clear();
            }
            "click" if self.clickables().contains(&arg) => match (&self.page, arg.as_str()) {
                (_, "back to search") => {
                    self.page = Page::Search;
                    self.chosen.clear();
                }
                (Page::Results { page }, "next >") => self.page = Page::Results { page: page + 1 },
                (Page::Results { page }, "< prev") => self.page = Page::Results { page: page - 1 },
                (Page::Results { .. }, asin) => {
                    let i = self
                        .results
                        .iter()
                        .copied()
                        .find(|i| product(*i).asin == asin);
                    self.page = Page::Item {
                        product: i.unwrap_or(0),
                    };
                }
                (Page::Item { product: i }, "< prev") => {
                    let rank = self.results.iter().position(|r| r == i).unwrap_or(0);
                    self.page = Page::Results {
                        page: rank / PER_PAGE,
                    };
                    self.chosen.clear();
                }
                (Page::Item { product: i }, "buy now") => {
                    let p = product(*i);
                    let reward = self.reward(&p);
                    self.page = Page::Done;
                    let obs = format!(
                        "Thank you for shopping with us! [SEP] Your score (min 0.0, max 1.0) [SEP] {reward:.2}"
                    );
                    return Step::new(obs, reward)
                        .terminated()
                        .success(reward >= 1.0 - 1e-9);
                }
                (Page::Item { product: i }, what @ ("description" | "features" | "reviews")) => {
                    self.page = Page::Detail {
                        product: *i,
                        what: what.into(),
                    };
                }
                (Page::Item { product: i }, value) => {
                    let p = product(*i);
                    if let Some((name, _)) = p.options.iter().find(|(_, vs)| vs.contains(&value)) {
                        self.chosen.retain(|(n, _)| n != name);
                        self.chosen.push((name.to_string(), value.to_string()));
                    }
                }
                (Page::Detail { product: i, .. }, "< prev") => {
                    self.page = Page::Item { product: *i }
                }
                _ => return same(self),
            },
            _ => return same(self),
        }
        Step::new(self.observation(), 0.0)
    }

    fn admissible_actions(&self) -> Option<Vec<String>> {
        if self.page == Page::Done {
            return Some(Vec::new());
        }
        let mut out = vec!["search[<your query>]".to_string()];
        out.extend(self.clickables().into_iter().map(|c| format!("click[{c}]")));
        Some(out)
    }

    /// Search with the instruction's words, open the wanted product (from
    /// its page of results, or search its title), choose its options, buy.
    fn expert_action(&self) -> Option<String> {
        let goal = product(self.goal.product);
        let by_title = format!("search[{}]", goal.title);
        Some(match &self.page {
            Page::Done => return None,
            Page::Search => format!("search[{}]", self.goal.text),
            Page::Results { page } => match self.goal_rank() {
                Some(rank) if rank / PER_PAGE == *page => format!("click[{}]", goal.asin),
                Some(rank) if rank / PER_PAGE > *page => "click[next >]".into(),
                Some(_) => "click[< prev]".into(),
                None => by_title,
            },
            Page::Item { product: i } if *i == self.goal.product => {
                let missing = self
                    .goal
                    .options
                    .iter()
                    .find(|(n, v)| !self.chosen.contains(&(n.clone(), v.clone())));
                match missing {
                    Some((_, v)) => format!("click[{v}]"),
                    None => "click[buy now]".into(),
                }
            }
            Page::Item { .. } | Page::Detail { .. } => "click[< prev]".into(),
        })
    }
}

leafe_guest::export_environment!(Shop);

#[cfg(test)]
mod tests;
