//! A setting out of its range. The error names the library's field (e.g.
//! `budget`, `reh_fraction`), so that each front end can name its own
//! flag or argument for it: the command line says `--reh-fraction`.

use std::fmt::Display;

/// `field` is the setting's name in its config struct, `problem` what is
/// wrong with its value.
#[derive(Debug, thiserror::Error)]
#[error("{field} {problem}")]
pub struct BadSetting {
    pub field: &'static str,
    pub problem: String,
}

impl BadSetting {
    pub fn new(field: &'static str, problem: impl Into<String>) -> BadSetting {
        BadSetting {
            field,
            problem: problem.into(),
        }
    }
}

/// `Err(BadSetting)` unless `holds`.
pub fn check(holds: bool, field: &'static str, problem: &str) -> Result<(), BadSetting> {
    match holds {
        true => Ok(()),
        false => Err(BadSetting::new(field, problem)),
    }
}

/// `value` of `field` within `min..=max`, or an error that names the bounds.
/// A NaN is out of every range.
pub fn check_range<T: PartialOrd + Display>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), BadSetting> {
    match min <= value && value <= max {
        true => Ok(()),
        false => Err(BadSetting::new(
            field,
            format!("must be between {min} and {max}, got {value}"),
        )),
    }
}
