use super::*;
use leafe_guest::Harness;

fn started(split: &str, index: u32) -> (Harness<Shop>, String) {
    let mut h = Harness::new();
    let first = h.reset(&Task::new(split, index, 0)).unwrap();
    (h, first)
}

#[test]
fn the_catalog_is_large_varied_and_fixed() {
    let products: Vec<Product> = (0..PRODUCTS).map(product).collect();
    let asins: std::collections::BTreeSet<&str> =
        products.iter().map(|p| p.asin.as_str()).collect();
    assert_eq!(asins.len(), PRODUCTS as usize, "item ids are unique");
    let categories: std::collections::BTreeSet<&str> =
        products.iter().map(|p| p.kind.category).collect();
    assert_eq!(categories.len(), 5);
    assert!(
        products
            .iter()
            .all(|p| p.price > 0.0 && !p.options.is_empty())
    );
    assert_eq!(product(1234), product(1234));
}

#[test]
fn the_expert_buys_the_right_product_with_reward_one() {
    let mut solved = 0;
    for index in 0..60 {
        let (mut h, first) = started("test", index);
        assert!(first.starts_with("WebShop [SEP] Instruction: [SEP] i am looking for "));
        assert!(first.contains("price lower than") && first.ends_with(" [SEP] Search"));
        let mut last = None;
        while let Some(a) = h.expert_action() {
            last = Some(h.step(&a).unwrap());
            if last.as_ref().unwrap().terminated {
                break;
            }
        }
        if let Some(out) = last.filter(|o| o.terminated && o.info_json()["success"] == true) {
            assert_eq!(out.reward, 1.0);
            solved += 1;
        }
    }
    assert!(solved >= 57, "the expert solved {solved} of 60");
}

#[test]
fn pages_actions_and_reward_follow_webshop() {
    let (mut h, _) = started("train", 3);
    // Nonsense and clicks that are not on the page change nothing.
    let before = h.step("dance").unwrap();
    assert_eq!(before.info_json()["invalid-action"], true);
    assert!(h.step("click[buy now]").unwrap().info_json()["invalid-action"] == true);
    let results = h
        .step("search[usb c cable fast charging]")
        .unwrap()
        .observation;
    assert!(
        results.contains("Page 1 (Total results: 50) [SEP] Next > [SEP] B0"),
        "{results}"
    );
    assert!(
        h.admissible_actions()
            .unwrap()
            .contains(&"click[next >]".to_string())
    );
    let page2 = h.step("click[next >]").unwrap().observation;
    assert!(
        page2.contains("Page 2 (Total results: 50) [SEP] < Prev [SEP] Next >"),
        "{page2}"
    );
    // Open the first item, read its features, go back, buy it as it is.
    let item = h
        .admissible_actions()
        .unwrap()
        .into_iter()
        .find(|a| a.starts_with("click[b0"))
        .unwrap();
    let page = h.step(&item).unwrap().observation;
    assert!(
        page.contains("Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now")
    );
    assert!(
        h.step("click[features]")
            .unwrap()
            .observation
            .contains(": yes")
    );
    h.step("click[< prev]").unwrap();
    let bought = h.step("click[buy now]").unwrap();
    assert!(bought.terminated && bought.reward < 1.0, "{bought:?}");
    assert!(
        bought
            .observation
            .starts_with("Thank you for shopping with us! [SEP] Your score")
    );
    assert!(h.step("search[anything]").is_err(), "the episode is over");
}

#[test]
fn search_ranks_the_words_of_a_title_first() {
    let p = product(42);
    let hits = search::search(&p.title);
    assert_eq!(hits.len(), search::TOP);
    let first = product(hits[0]);
    assert!(
        first.title == p.title || hits.contains(&42),
        "{} / {}",
        first.title,
        p.title
    );
    assert!(search::search("zzzz qqqq").is_empty());
}

#[test]
fn snapshots_round_trip_and_splits_differ() {
    let (mut h, first) = started("dev", 9);
    let (_, again) = started("dev", 9);
    assert_eq!(first, again);
    assert_ne!(first, started("test", 9).1);
    let a = h.expert_action().unwrap();
    let saved = h.snapshot().unwrap();
    let after = h.step(&a).unwrap();
    h.restore(&saved).unwrap();
    assert_eq!(h.step(&a).unwrap(), after);
}
