//! Katib's `algorithmSettings`: name/value string pairs, parsed once into a typed settings
//! struct per algorithm.
//!
//! Each algorithm reads its settings through a [`SettingsReader`], which converts values,
//! checks their rules and, at the end, rejects any setting the algorithm does not know, so a
//! typo never silently falls back to a default.

use std::str::FromStr;

/// One `algorithmSettings` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The setting's name, e.g. `random_state`.
    pub name: String,
    /// Its value as written.
    pub value: String,
}

impl Setting {
    /// A setting from a name and value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Setting {
        Setting {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Settings that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// No algorithm of that name exists.
    #[error("unknown algorithm {name:?}; known algorithms: {}", known.join(", "))]
    UnknownAlgorithm {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: Vec<String>,
    },
    /// A Katib algorithm that Sextant does not implement.
    #[error("algorithm {name} is not supported: {reason}")]
    UnsupportedAlgorithm {
        /// The name asked for.
        name: String,
        /// What it is, and what to use instead.
        reason: String,
    },
    /// The algorithm has no setting of that name.
    #[error("unknown setting {setting:?} for algorithm {algorithm}; known settings: {}", known.join(", "))]
    UnknownSetting {
        /// The algorithm.
        algorithm: String,
        /// The setting name given.
        setting: String,
        /// The settings it does have.
        known: Vec<String>,
    },
    /// Settings the algorithm cannot run without are absent.
    #[error("algorithm {algorithm} requires the settings {}; missing: {}", required.join(", "), missing.join(", "))]
    MissingSettings {
        /// The algorithm.
        algorithm: String,
        /// Every setting it requires.
        required: Vec<String>,
        /// The ones not given.
        missing: Vec<String>,
    },
    /// A setting's value breaks its rule.
    #[error("setting {setting}: value {value:?} {rule}")]
    InvalidValue {
        /// The setting.
        setting: String,
        /// The value given.
        value: String,
        /// The rule, e.g. `must be an integer >= 0`.
        rule: String,
    },
    /// The algorithm cannot search this space.
    #[error("algorithm {algorithm} cannot search this space: {reason}")]
    UnsupportedSpace {
        /// The algorithm.
        algorithm: String,
        /// Why, naming the parameter when one is at fault.
        reason: String,
    },
    /// The algorithm optimizes one objective and the experiment has several.
    #[error(
        "algorithm {algorithm} optimizes a single objective and this experiment has {objectives}; algorithms for several objectives: {}",
        capable.join(", ")
    )]
    SingleObjectiveOnly {
        /// The algorithm.
        algorithm: String,
        /// How many objectives the experiment has.
        objectives: usize,
        /// The algorithms that can optimize several.
        capable: Vec<String>,
    },
}

/// Reads typed settings for one algorithm and rejects the ones it never asked for.
#[derive(Debug)]
pub struct SettingsReader<'a> {
    algorithm: &'a str,
    settings: &'a [Setting],
    known: Vec<&'static str>,
}

impl<'a> SettingsReader<'a> {
    /// A reader over `settings` for `algorithm`.
    pub fn new(algorithm: &'a str, settings: &'a [Setting]) -> SettingsReader<'a> {
        SettingsReader {
            algorithm,
            settings,
            known: Vec::new(),
        }
    }

    /// The raw value of `name`, remembering that the algorithm knows it. A later duplicate
    /// entry overrides an earlier one, as Katib merges settings that way.
    pub fn raw(&mut self, name: &'static str) -> Option<&'a str> {
        self.known.push(name);
        self.settings
            .iter()
            .rev()
            .find(|setting| setting.name == name)
            .map(|setting| setting.value.as_str())
    }

    /// Parses `name` as `T` and checks `rule` (described by `rule_text`), or `None` when absent.
    pub fn parse<T: FromStr>(
        &mut self,
        name: &'static str,
        rule_text: &str,
        rule: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, SettingsError> {
        let Some(text) = self.raw(name) else {
            return Ok(None);
        };
        match text.trim().parse::<T>() {
            Ok(value) if rule(&value) => Ok(Some(value)),
            _ => Err(SettingsError::InvalidValue {
                setting: name.into(),
                value: text.into(),
                rule: rule_text.into(),
            }),
        }
    }

    /// `random_state`: an integer `>= 0`, as Katib requires.
    pub fn random_state(&mut self) -> Result<Option<u64>, SettingsError> {
        self.parse::<u64>("random_state", "must be an integer >= 0", |_| true)
    }

    /// Rejects any setting not read so far.
    pub fn finish(self) -> Result<(), SettingsError> {
        for setting in self.settings {
            if !self.known.contains(&setting.name.as_str()) {
                return Err(SettingsError::UnknownSetting {
                    algorithm: self.algorithm.into(),
                    setting: setting.name.clone(),
                    known: self.known.iter().map(|name| name.to_string()).collect(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_invalid_settings_are_named() {
        let settings = [Setting::new("random_state", "-1")];
        let mut reader = SettingsReader::new("random", &settings);
        let error = reader.random_state().expect_err("negative seed");
        assert_eq!(
            error.to_string(),
            r#"setting random_state: value "-1" must be an integer >= 0"#
        );

        let settings = [Setting::new("random_stat", "1")];
        let mut reader = SettingsReader::new("random", &settings);
        assert_eq!(reader.random_state(), Ok(None));
        let error = reader.finish().expect_err("typo");
        assert!(
            error
                .to_string()
                .contains("unknown setting \"random_stat\"")
        );
        assert!(error.to_string().contains("random_state"));
    }
}
