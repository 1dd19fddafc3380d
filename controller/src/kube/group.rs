//! The API group the controller serves its Experiment and Trial kinds under, chosen at run time:
//! Sextant's own `sextant.dev` (the default, beside Katib in the same cluster if need be), or
//! Katib's `kubeflow.org`, so that in a cluster without Katib its Python SDK, its tools and
//! `kubectl get experiments.kubeflow.org` work against Sextant unchanged.
//!
//! Why the resources are `kube::core::Object<Spec, Status>` and not `#[derive(CustomResource)]`
//! types: the derive fixes the group at compile time (its `Resource` impl has `()` as the
//! dynamic type), so serving a second group would take a second pair of types and a reconciler
//! generic over them. `Object` keeps the spec and status typed and takes the group, version,
//! kind and plural from an [`ApiResource`] at run time; the one reconciler and the one engine
//! then serve either group, and the only place the group appears is the `ApiResource` in the
//! controller's context. The definitions themselves are built in [`super::crd`].

use std::fmt;
use std::str::FromStr;

use kube::core::ApiResource;

use sextant_experiment::api::{KATIB_API_VERSION, SEXTANT_API_VERSION};

/// The group of the Experiment and Trial custom resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiGroup {
    /// `sextant.dev/v1beta1`: Sextant's own, the default.
    Sextant,
    /// `kubeflow.org/v1beta1`: Katib's, for a cluster without Katib.
    Katib,
}

/// A group name Sextant does not serve.
#[derive(Debug, thiserror::Error)]
#[error("unknown API group {0:?}; expected sextant.dev or kubeflow.org")]
pub struct UnknownApiGroup(pub String);

impl ApiGroup {
    /// Both groups, Sextant's first.
    pub const ALL: [ApiGroup; 2] = [ApiGroup::Sextant, ApiGroup::Katib];

    /// The group's name, `sextant.dev` or `kubeflow.org`.
    pub fn name(self) -> &'static str {
        match self {
            ApiGroup::Sextant => "sextant.dev",
            ApiGroup::Katib => "kubeflow.org",
        }
    }

    /// `group/v1beta1`.
    pub fn api_version(self) -> &'static str {
        match self {
            ApiGroup::Sextant => SEXTANT_API_VERSION,
            ApiGroup::Katib => KATIB_API_VERSION,
        }
    }

    /// The Experiment kind in this group.
    pub fn experiments(self) -> ApiResource {
        self.resource(
            sextant_experiment::api::experiment::EXPERIMENT_KIND,
            "experiments",
        )
    }

    /// The Trial kind in this group.
    pub fn trials(self) -> ApiResource {
        self.resource(sextant_experiment::api::trial::TRIAL_KIND, "trials")
    }

    fn resource(self, kind: &str, plural: &str) -> ApiResource {
        ApiResource {
            group: self.name().into(),
            version: "v1beta1".into(),
            api_version: self.api_version().into(),
            kind: kind.into(),
            plural: plural.into(),
        }
    }
}

impl FromStr for ApiGroup {
    type Err = UnknownApiGroup;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ApiGroup::ALL
            .into_iter()
            .find(|group| group.name() == text)
            .ok_or_else(|| UnknownApiGroup(text.to_owned()))
    }
}

impl fmt::Display for ApiGroup {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse_from_their_names_and_nothing_else() {
        for group in ApiGroup::ALL {
            assert_eq!(group.name().parse::<ApiGroup>().ok(), Some(group));
            assert_eq!(group.to_string(), group.name());
        }
        let error = "kubeflow.org/v1beta1"
            .parse::<ApiGroup>()
            .expect_err("a version is not a group");
        assert!(error.to_string().contains("sextant.dev or kubeflow.org"));
    }

    #[test]
    fn resources_carry_the_groups_api_version() {
        let trials = ApiGroup::Katib.trials();
        assert_eq!(
            (trials.api_version.as_str(), trials.plural.as_str()),
            ("kubeflow.org/v1beta1", "trials")
        );
        assert_eq!(ApiGroup::Sextant.experiments().group, "sextant.dev");
    }
}
