//! The catalog: 10,000 products, each a pure function of its index (so
//! nothing of it is stored in a snapshot), across five categories.

use leafe_guest::Rng;

pub const PRODUCTS: u32 = 10_000;

/// A kind of product: its words, attributes, option groups, price range.
#[derive(Debug, PartialEq)]
pub struct Kind {
    pub category: &'static str,
    pub name: &'static str,
    pub attributes: &'static [&'static str],
    pub options: &'static [(&'static str, &'static [&'static str])],
    pub price: (f64, f64),
}

const SIZES: &[&str] = &["small", "medium", "large", "x-large"];
const COLORS: &[&str] = &["black", "navy", "grey", "white", "red", "green"];
const FL_OZ: &[&str] = &["2 fl oz", "6.7 fl oz", "16 fl oz"];

pub const KINDS: &[Kind] = &[
    Kind {
        category: "grocery",
        name: "snack pack",
        attributes: &[
            "gluten free",
            "low sugar",
            "non gmo",
            "keto friendly",
            "vegan",
        ],
        options: &[
            ("flavor", &["sea salt", "cheddar", "bbq", "sour cream"]),
            ("size", &["pack of 6", "pack of 12", "pack of 24"]),
        ],
        price: (5.0, 40.0),
    },
    Kind {
        category: "grocery",
        name: "ground coffee",
        attributes: &["organic", "fair trade", "dark roast", "low acid", "decaf"],
        options: &[("size", &["12 ounce", "24 ounce", "2 pound"])],
        price: (8.0, 35.0),
    },
    Kind {
        category: "grocery",
        name: "protein bar",
        attributes: &["gluten free", "high protein", "low sugar", "plant based"],
        options: &[
            (
                "flavor",
                &["chocolate", "peanut butter", "vanilla", "berry"],
            ),
            ("size", &["pack of 12", "pack of 24"]),
        ],
        price: (12.0, 45.0),
    },
    Kind {
        category: "beauty",
        name: "shampoo",
        attributes: &[
            "paraben free",
            "sulfate free",
            "cruelty free",
            "for dry hair",
            "natural ingredients",
        ],
        options: &[
            ("size", FL_OZ),
            ("scent", &["lavender", "coconut", "unscented"]),
        ],
        price: (6.0, 30.0),
    },
    Kind {
        category: "beauty",
        name: "face moisturizer",
        attributes: &[
            "for sensitive skin",
            "fragrance free",
            "spf 30",
            "long lasting",
            "cruelty free",
        ],
        options: &[("size", &["1.7 ounce", "3.4 ounce"])],
        price: (9.0, 60.0),
    },
    Kind {
        category: "beauty",
        name: "deodorant",
        attributes: &[
            "aluminum free",
            "for sensitive skin",
            "long lasting",
            "natural ingredients",
        ],
        options: &[
            ("scent", &["bright citrus", "cedar", "unscented"]),
            ("size", &["2.5 ounce", "3 ounce"]),
        ],
        price: (5.0, 20.0),
    },
    Kind {
        category: "clothing",
        name: "t-shirt",
        attributes: &[
            "machine wash",
            "cotton",
            "slim fit",
            "short sleeve",
            "breathable",
        ],
        options: &[("size", SIZES), ("color", COLORS)],
        price: (8.0, 35.0),
    },
    Kind {
        category: "clothing",
        name: "hoodie",
        attributes: &["machine wash", "fleece lined", "relaxed fit", "long sleeve"],
        options: &[("size", SIZES), ("color", COLORS)],
        price: (20.0, 70.0),
    },
    Kind {
        category: "clothing",
        name: "running shoes",
        attributes: &["non slip", "breathable", "lightweight", "arch support"],
        options: &[("size", &["7", "8", "9", "10", "11"]), ("color", COLORS)],
        price: (30.0, 120.0),
    },
    Kind {
        category: "electronics",
        name: "usb c cable",
        attributes: &["fast charging", "high speed", "braided", "durable"],
        options: &[
            ("length", &["3 ft", "6 ft", "10 ft"]),
            ("color", &["black", "white", "red"]),
        ],
        price: (5.0, 25.0),
    },
    Kind {
        category: "electronics",
        name: "wireless earbuds",
        attributes: &[
            "noise cancelling",
            "water resistant",
            "long battery life",
            "bluetooth 5.3",
        ],
        options: &[("color", &["black", "white", "blue"])],
        price: (20.0, 150.0),
    },
    Kind {
        category: "electronics",
        name: "power bank",
        attributes: &["fast charging", "compact", "high capacity", "usb c"],
        options: &[("capacity", &["10000mah", "20000mah", "26800mah"])],
        price: (15.0, 80.0),
    },
    Kind {
        category: "home",
        name: "throw pillow",
        attributes: &["machine washable", "soft", "decorative", "hypoallergenic"],
        options: &[
            ("color", COLORS),
            ("size", &["18 x 18 inch", "20 x 20 inch"]),
        ],
        price: (10.0, 45.0),
    },
    Kind {
        category: "home",
        name: "bath towel",
        attributes: &[
            "quick dry",
            "cotton",
            "highly absorbent",
            "machine washable",
        ],
        options: &[
            ("color", COLORS),
            ("size", &["pack of 2", "pack of 4", "pack of 6"]),
        ],
        price: (12.0, 60.0),
    },
    Kind {
        category: "home",
        name: "shower curtain",
        attributes: &[
            "waterproof",
            "mildew resistant",
            "machine washable",
            "eco friendly",
        ],
        options: &[("color", COLORS)],
        price: (10.0, 40.0),
    },
];

const BRANDS: &[&str] = &[
    "acme",
    "northwind",
    "bluepeak",
    "sunvale",
    "everly",
    "orchard",
    "greystone",
    "lumen",
    "tidal",
    "maple lane",
    "crest",
    "nova",
    "harbor",
    "willow",
    "summit",
    "zephyr",
];

/// One product, made from its index.
#[derive(Clone, Debug, PartialEq)]
pub struct Product {
    pub index: u32,
    pub asin: String,
    pub kind: &'static Kind,
    pub title: String,
    pub attributes: Vec<&'static str>,
    /// Option group name and the values this product offers.
    pub options: Vec<(&'static str, Vec<&'static str>)>,
    pub price: f64,
    pub description: String,
    pub features: Vec<String>,
}

fn pick<'a>(rng: &mut Rng, pool: &[&'a str], lo: usize, hi: usize) -> Vec<&'a str> {
    let mut all = pool.to_vec();
    rng.shuffle(&mut all);
    let n = (lo + rng.below((hi - lo + 1) as u64) as usize).min(all.len());
    let mut chosen = all[..n].to_vec();
    chosen.sort_by_key(|c| pool.iter().position(|p| p == c));
    chosen
}

/// Product `index` of the catalog.
pub fn product(index: u32) -> Product {
    let mut rng = Rng::from_parts("shop-catalog", &[u64::from(index)]);
    let kind = &KINDS[rng.below(KINDS.len() as u64) as usize];
    let brand = BRANDS[rng.below(BRANDS.len() as u64) as usize];
    let attributes = pick(&mut rng, kind.attributes, 1, 3);
    let options = kind
        .options
        .iter()
        .map(|(name, values)| (*name, pick(&mut rng, values, 2, values.len())))
        .collect();
    let cents = (kind.price.0 + rng.unit() * (kind.price.1 - kind.price.0)) * 100.0;
    let price = cents.round() / 100.0;
    let title = format!("{brand} {} {}", attributes.join(" "), kind.name);
    let asin = format!(
        "b0{:08x}",
        (u64::from(index) * 0x9e37_79b9 + 0x5bd1) & 0xffff_ffff
    );
    Product {
        index,
        asin,
        kind,
        description: format!(
            "The {brand} {} for everyday use, from our {} range.",
            kind.name, kind.category
        ),
        features: attributes.iter().map(|a| format!("{a}: yes")).collect(),
        title,
        attributes,
        options,
        price,
    }
}

/// The words a product is found by (WebShop indexes title, description,
/// the first bullet and the options).
pub fn words(p: &Product) -> Vec<String> {
    let mut text = format!("{} {}", p.title, p.description);
    if let Some(first) = p.features.first() {
        text.push(' ');
        text.push_str(first);
    }
    for (name, values) in &p.options {
        text.push_str(&format!(" {name} {}", values.join(" ")));
    }
    tokens(&text)
}

/// Lowercased alphanumeric tokens.
pub fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}
