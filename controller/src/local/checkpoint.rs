//! Trial checkpoint directories for population-based training (`pbt`), Katib's contract on
//! this machine.
//!
//! In a cluster, Katib's suggestion service copies the parent trial's directory
//! `<experiment>/<parent>` to `<experiment>/<trial>` on its volume, and Katib's webhook mounts
//! that directory at the path of the algorithm setting `suggestion_trial_dir` in the trial's
//! primary container; the trial reads its parent's checkpoint there and writes its own.
//! Locally there is no mount, so the driver does both halves:
//!
//! - each trial's checkpoint directory is `<trial dir>/checkpoint`, i.e.
//!   `.sextant/<experiment>/<trial>/checkpoint/`; before the trial starts (and again when a
//!   resumed run re-runs it) it is emptied and filled with a copy of its parent's checkpoint
//!   directory (the trial named by the label `pbt.suggestion.katib.kubeflow.org/parent`), or
//!   left empty in generation 0;
//! - the trial's argv items and environment values that name `suggestion_trial_dir`, or a path
//!   under it, name the trial's checkpoint directory instead (`--checkpoint=/var/log/katib/
//!   checkpoints/` in Katib's simple-pbt example becomes `--checkpoint=<trial dir>/checkpoint/`);
//! - the environment also has `SEXTANT_CHECKPOINT_DIR` (the trial's directory) and, from
//!   generation 1 on, `SEXTANT_PARENT_CHECKPOINT_DIR` (the parent's, to read and not write).
//!
//! Pipeline trials get the environment variables only.

use std::path::{Path, PathBuf};

use sextant_algorithms::pbt::{CHECKPOINT_DIR_SETTING, PARENT_LABEL};
use sextant_experiment::api::experiment::Experiment;

use crate::local::launch::Launch;

/// The name of the checkpoint directory inside a trial's scratch directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";

/// Where a trial's checkpoint lives and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialCheckpoint {
    /// `suggestion_trial_dir`: the path the trial's template uses for its checkpoint directory.
    pub mount_path: String,
    /// The trial's own checkpoint directory.
    pub dir: PathBuf,
    /// The parent trial's checkpoint directory, from generation 1 on.
    pub parent_dir: Option<PathBuf>,
}

impl TrialCheckpoint {
    /// The checkpoint of `trial_name` when the experiment's algorithm settings name a
    /// `suggestion_trial_dir` (Katib mounts the volume on that condition alone); `None`
    /// otherwise.
    pub fn of_trial(
        experiment: &Experiment,
        trials_dir: &Path,
        trial_name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Option<TrialCheckpoint> {
        let mount_path = experiment
            .spec
            .algorithm
            .as_ref()?
            .algorithm_settings
            .iter()
            .rev()
            .find(|setting| setting.name == CHECKPOINT_DIR_SETTING)
            .map(|setting| setting.value.clone())
            .filter(|value| !value.is_empty())?;
        Some(TrialCheckpoint {
            mount_path,
            dir: trials_dir.join(trial_name).join(CHECKPOINT_DIR),
            parent_dir: labels
                .get(PARENT_LABEL)
                .map(|parent| trials_dir.join(parent).join(CHECKPOINT_DIR)),
        })
    }

    /// Empties the trial's checkpoint directory and copies the parent's into it (a parent
    /// without a checkpoint directory leaves it empty).
    pub fn prepare(&self) -> std::io::Result<()> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)?;
        }
        match &self.parent_dir {
            Some(parent) if parent.is_dir() => copy_dir(parent, &self.dir),
            _ => std::fs::create_dir_all(&self.dir),
        }
    }

    /// The environment variables naming the directories.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "SEXTANT_CHECKPOINT_DIR".to_string(),
            self.dir.display().to_string(),
        )];
        if let Some(parent) = &self.parent_dir {
            env.push((
                "SEXTANT_PARENT_CHECKPOINT_DIR".to_string(),
                parent.display().to_string(),
            ));
        }
        env
    }

    /// Points the argv items and environment values that name `suggestion_trial_dir` (or a
    /// path under it) at the trial's checkpoint directory.
    pub fn mount(&self, launch: &mut Launch) {
        let local = self.dir.display().to_string();
        for item in launch.argv.iter_mut() {
            *item = remount(item, &self.mount_path, &local);
        }
        for (_, value) in launch.env.iter_mut() {
            *value = remount(value, &self.mount_path, &local);
        }
    }
}

/// `text` with each occurrence of the path `mount` that stands as a whole path (or the start
/// of one) replaced by `local`: it starts `text` or follows `=`, `:`, `,`, a quote or a space,
/// and ends `text`, continues with `/` or is followed by one of those separators.
pub fn remount(text: &str, mount: &str, local: &str) -> String {
    let mount = mount.trim_end_matches('/');
    if mount.is_empty() {
        return text.to_string();
    }
    let separator = |c: char| matches!(c, '=' | ':' | ',' | '"' | '\'') || c.is_whitespace();
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find(mount) {
        result.push_str(&rest[..found]);
        let starts = result.chars().last().is_none_or(separator);
        let ends = rest[found + mount.len()..]
            .chars()
            .next()
            .is_none_or(|c| c == '/' || separator(c));
        result.push_str(if starts && ends { local } else { mount });
        rest = &rest[found + mount.len()..];
    }
    result.push_str(rest);
    result
}

/// Copies the directory `from` to `to` (created), files and subdirectories; symbolic links are
/// copied as links.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_paths_are_remounted() {
        let local = "/tmp/exp/trial-1/checkpoint";
        let mount = "/var/log/katib/checkpoints/";
        assert_eq!(
            remount("--checkpoint=/var/log/katib/checkpoints/", mount, local),
            "--checkpoint=/tmp/exp/trial-1/checkpoint/"
        );
        assert_eq!(
            remount("/var/log/katib/checkpoints/model.pt", mount, local),
            "/tmp/exp/trial-1/checkpoint/model.pt"
        );
        assert_eq!(
            remount("/var/log/katib/checkpoints", mount, local),
            "/tmp/exp/trial-1/checkpoint"
        );
        assert_eq!(
            remount(
                "a=/var/log/katib/checkpoints,b=/var/log/katib/checkpoints",
                mount,
                local
            ),
            "a=/tmp/exp/trial-1/checkpoint,b=/tmp/exp/trial-1/checkpoint"
        );
        // A longer name, or the path under another directory, is another path.
        assert_eq!(
            remount("/var/log/katib/checkpoints-old", mount, local),
            "/var/log/katib/checkpoints-old"
        );
        assert_eq!(
            remount("/data/var/log/katib/checkpoints", mount, local),
            "/data/var/log/katib/checkpoints"
        );
    }

    #[test]
    fn a_trial_starts_from_a_copy_of_its_parents_checkpoint() -> std::io::Result<()> {
        let scratch = tempfile::tempdir()?;
        let parent = scratch.path().join("parent").join(CHECKPOINT_DIR);
        std::fs::create_dir_all(parent.join("nested"))?;
        std::fs::write(parent.join("training.ckpt"), "step=20")?;
        std::fs::write(parent.join("nested/state"), "x")?;
        let checkpoint = TrialCheckpoint {
            mount_path: "/ckpt".into(),
            dir: scratch.path().join("child").join(CHECKPOINT_DIR),
            parent_dir: Some(parent.clone()),
        };
        std::fs::create_dir_all(&checkpoint.dir)?;
        std::fs::write(checkpoint.dir.join("stale"), "from a killed run")?;
        checkpoint.prepare()?;
        assert_eq!(
            std::fs::read_to_string(checkpoint.dir.join("training.ckpt"))?,
            "step=20"
        );
        assert_eq!(
            std::fs::read_to_string(checkpoint.dir.join("nested/state"))?,
            "x"
        );
        assert!(!checkpoint.dir.join("stale").exists());
        // The parent's own checkpoint is left as it was.
        assert!(parent.join("training.ckpt").exists());
        Ok(())
    }
}
