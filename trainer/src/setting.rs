//! A setting out of its range. The error names the library's field (e.g.
//! `lora.rank`), so that each front end can name its own flag for it: the
//! command line says `--lora-rank`.

/// `field` is the setting's path in its config struct, `problem` what is
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
