//! What a home may hold: room kinds, their receptacles, the objects found in
//! them, which receptacles accept which objects, and the objects' properties
//! (ALFWorld's type names and property sets, a smaller choice of them).

/// A kind of room and what it is furnished with.
pub struct RoomKind {
    pub name: &'static str,
    /// (receptacle type, least, most) instances.
    pub receptacles: &'static [(&'static str, u32, u32)],
    /// Object types found here.
    pub objects: &'static [&'static str],
}

pub const ROOMS: &[RoomKind] = &[
    RoomKind {
        name: "kitchen",
        receptacles: &[
            ("cabinet", 3, 6),
            ("countertop", 1, 3),
            ("drawer", 2, 4),
            ("fridge", 1, 1),
            ("microwave", 1, 1),
            ("sinkbasin", 1, 1),
            ("stoveburner", 2, 4),
            ("diningtable", 0, 1),
            ("shelf", 0, 2),
            ("coffeemachine", 1, 1),
            ("toaster", 1, 1),
            ("garbagecan", 1, 1),
        ],
        objects: &[
            "apple",
            "bread",
            "egg",
            "lettuce",
            "potato",
            "tomato",
            "mug",
            "cup",
            "bowl",
            "plate",
            "pan",
            "pot",
            "fork",
            "knife",
            "spoon",
            "spatula",
            "ladle",
            "kettle",
            "saltshaker",
            "peppershaker",
            "dishsponge",
            "winebottle",
            "soapbottle",
        ],
    },
    RoomKind {
        name: "living room",
        receptacles: &[
            ("sofa", 1, 1),
            ("armchair", 0, 2),
            ("coffeetable", 1, 1),
            ("sidetable", 1, 2),
            ("shelf", 1, 3),
            ("drawer", 1, 3),
            ("cabinet", 1, 3),
            ("tvstand", 1, 1),
            ("dresser", 0, 1),
            ("garbagecan", 1, 1),
        ],
        objects: &[
            "book",
            "cellphone",
            "creditcard",
            "keychain",
            "remotecontrol",
            "newspaper",
            "statue",
            "vase",
            "watch",
            "tissuebox",
            "box",
            "pillow",
            "laptop",
            "desklamp",
        ],
    },
    RoomKind {
        name: "bedroom",
        receptacles: &[
            ("bed", 1, 1),
            ("desk", 1, 1),
            ("drawer", 2, 5),
            ("dresser", 1, 1),
            ("shelf", 1, 3),
            ("sidetable", 1, 2),
            ("safe", 0, 1),
            ("laundryhamper", 0, 1),
            ("garbagecan", 1, 1),
        ],
        objects: &[
            "alarmclock",
            "book",
            "cd",
            "cellphone",
            "creditcard",
            "keychain",
            "laptop",
            "pen",
            "pencil",
            "pillow",
            "mug",
            "bowl",
            "desklamp",
            "cloth",
        ],
    },
    RoomKind {
        name: "bathroom",
        receptacles: &[
            ("cabinet", 2, 4),
            ("countertop", 1, 1),
            ("sinkbasin", 1, 2),
            ("toilet", 1, 1),
            ("towelholder", 1, 1),
            ("handtowelholder", 1, 1),
            ("toiletpaperhanger", 1, 1),
            ("drawer", 0, 3),
            ("shelf", 0, 2),
            ("garbagecan", 1, 1),
        ],
        objects: &[
            "soapbar",
            "soapbottle",
            "spraybottle",
            "toiletpaper",
            "towel",
            "handtowel",
            "candle",
            "cloth",
            "plunger",
            "scrubbrush",
            "tissuebox",
        ],
    },
];

/// Receptacles that open and close (closed at the start).
pub fn openable(recep: &str) -> bool {
    matches!(
        recep,
        "cabinet" | "drawer" | "fridge" | "microwave" | "safe"
    )
}

pub fn heatable(obj: &str) -> bool {
    matches!(
        obj,
        "apple" | "bread" | "cup" | "egg" | "mug" | "plate" | "potato" | "tomato"
    )
}

pub fn coolable(obj: &str) -> bool {
    matches!(
        obj,
        "apple"
            | "bowl"
            | "bread"
            | "cup"
            | "egg"
            | "lettuce"
            | "mug"
            | "pan"
            | "plate"
            | "pot"
            | "potato"
            | "tomato"
            | "winebottle"
    )
}

pub fn cleanable(obj: &str) -> bool {
    matches!(
        obj,
        "apple"
            | "bowl"
            | "cloth"
            | "cup"
            | "dishsponge"
            | "egg"
            | "fork"
            | "kettle"
            | "knife"
            | "ladle"
            | "lettuce"
            | "mug"
            | "pan"
            | "plate"
            | "pot"
            | "potato"
            | "soapbar"
            | "spatula"
            | "spoon"
            | "tomato"
    )
}

pub fn toggleable(obj: &str) -> bool {
    obj == "desklamp"
}

const FOOD: &[&str] = &["apple", "bread", "egg", "lettuce", "potato", "tomato"];
const DISHES: &[&str] = &["mug", "cup", "bowl", "plate", "pan", "pot", "kettle"];
const CUTLERY: &[&str] = &["fork", "knife", "spoon", "spatula", "ladle"];
const SMALL: &[&str] = &[
    "cellphone",
    "creditcard",
    "keychain",
    "remotecontrol",
    "watch",
    "pen",
    "pencil",
    "cd",
    "alarmclock",
    "book",
    "newspaper",
    "tissuebox",
    "candle",
    "soapbar",
    "soapbottle",
    "spraybottle",
    "toiletpaper",
    "saltshaker",
    "peppershaker",
    "dishsponge",
    "winebottle",
    "statue",
    "vase",
    "box",
    "cloth",
    "scrubbrush",
    "handtowel",
    "towel",
];

/// Whether a receptacle of type `recep` can hold an object of type `obj`
/// (ALFRED's `canContain`, simplified).
pub fn can_contain(recep: &str, obj: &str) -> bool {
    let any = |set: &[&str]| set.contains(&obj);
    match recep {
        "coffeemachine" => matches!(obj, "mug" | "cup"),
        "toaster" => obj == "bread",
        "stoveburner" => matches!(obj, "pan" | "pot" | "kettle"),
        "towelholder" => obj == "towel",
        "handtowelholder" => obj == "handtowel",
        "toiletpaperhanger" => obj == "toiletpaper",
        "fridge" => any(FOOD) || any(DISHES) || obj == "winebottle",
        "microwave" => any(FOOD) || matches!(obj, "mug" | "cup" | "bowl" | "plate"),
        "sinkbasin" => {
            any(FOOD)
                || any(DISHES)
                || any(CUTLERY)
                || matches!(obj, "soapbar" | "cloth" | "dishsponge")
        }
        "bed" | "sofa" | "armchair" => matches!(
            obj,
            "pillow"
                | "laptop"
                | "book"
                | "cellphone"
                | "remotecontrol"
                | "newspaper"
                | "creditcard"
                | "keychain"
        ),
        "toilet" => matches!(
            obj,
            "soapbottle" | "spraybottle" | "toiletpaper" | "candle" | "soapbar" | "cloth"
        ),
        "garbagecan" => obj != "desklamp" && (any(FOOD) || any(SMALL) || obj == "cloth"),
        "laundryhamper" => matches!(obj, "cloth" | "towel"),
        "safe" => matches!(
            obj,
            "cellphone" | "creditcard" | "keychain" | "watch" | "cd" | "statue" | "vase"
        ),
        // Tables, counters, shelves, cabinets, drawers: anything but a lamp
        // (a lamp stands on a surface).
        "countertop" | "diningtable" | "coffeetable" | "desk" | "dresser" | "sidetable"
        | "tvstand" | "shelf" => true,
        "cabinet" | "drawer" => obj != "desklamp" && obj != "pillow" && obj != "laptop",
        _ => false,
    }
}
