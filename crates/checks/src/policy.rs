//! The verdict policy: for each stage, what each result leads to.
//!
//! Defaults lean to accepting: a result the policy does not name is only
//! tagged; HELO `softfail` is tagged (a large sender whose HELO host is not
//! covered by its own `v=spf1 a ~all` is the classic false positive); DNS
//! trouble (`temperror`) is never a 5xx.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::{Outcome, Stage};

/// What to do with a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Refuse with a 5xx reply.
    Reject,
    /// Refuse with a 4xx reply; the sender retries later.
    Tempfail,
    /// Refuse a new client/sender/recipient triplet with a 4xx reply and
    /// accept its retry after the greylisting delay (RFC 6647); decided at
    /// RCPT, where the triplet is known. Not a refusal of its own: later
    /// stages still run, and a later reject wins.
    Greylist,
    /// Accept; record the result in headers and the log.
    Tag,
}

impl Action {
    /// `reject`, `tempfail`, `greylist` or `tag`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Reject => "reject",
            Action::Tempfail => "tempfail",
            Action::Greylist => "greylist",
            Action::Tag => "tag",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reject" => Ok(Action::Reject),
            "tempfail" => Ok(Action::Tempfail),
            "greylist" => Ok(Action::Greylist),
            "tag" => Ok(Action::Tag),
            other => Err(format!(
                "unknown action {other:?} (expected reject, tempfail, greylist or tag)"
            )),
        }
    }
}

/// One stage's policy: off, or an action for each result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StagePolicy {
    /// The stage does not run.
    Off,
    /// The stage runs; results not listed are tagged.
    Actions(BTreeMap<Outcome, Action>),
}

/// A policy entry that does not make sense.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A result the stage never produces.
    #[error("stage {stage} has no result {result:?} (it has: {valid})")]
    NoSuchResult {
        /// The stage.
        stage: Stage,
        /// The result named.
        result: String,
        /// The results it has.
        valid: String,
    },
    /// The skip stage has no policy.
    #[error("stage skip has no policy: it never rejects")]
    Skip,
    /// DNS trouble may not be rejected with a 5xx, nor greylisted (where
    /// reject is not allowed, greylist is not either).
    #[error(
        "{stage} temperror cannot be {action}: DNS trouble is never a 5xx (use tempfail or tag)"
    )]
    TempErrorReject {
        /// The stage.
        stage: Stage,
        /// The action asked for.
        action: Action,
    },
}

/// The results each stage can produce.
pub fn results_of(stage: Stage) -> &'static [Outcome] {
    use Outcome::*;
    match stage {
        Stage::Skip => &[Skipped, None],
        Stage::HeloSyntax => &[Pass, Fail, None],
        Stage::Dnsbl => &[Pass, Listed, Allowed, TempError],
        Stage::Fcrdns => &[Pass, Fail, PermError, TempError],
        Stage::RdnsName => &[Pass, Generic, None],
        Stage::SenderDomain => &[Pass, Fail, NullMx, Unroutable, TempError],
        Stage::HeloDns => &[Pass, Mismatch, Fail, None, TempError],
        Stage::SpfHelo | Stage::SpfMailfrom => {
            &[Pass, Fail, SoftFail, Neutral, None, PermError, TempError]
        }
    }
}

/// The whole policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    stages: BTreeMap<Stage, StagePolicy>,
}

impl Default for Policy {
    fn default() -> Self {
        use Action::*;
        use Outcome::{Fail, Listed, NullMx, PermError, SoftFail, TempError, Unroutable};
        let table: [(Stage, &[(Outcome, Action)]); 8] = [
            (Stage::HeloSyntax, &[(Fail, Reject)]),
            (Stage::Dnsbl, &[(Listed, Reject), (TempError, Tag)]),
            (Stage::RdnsName, &[]),
            (
                Stage::SenderDomain,
                &[
                    (Fail, Reject),
                    (NullMx, Reject),
                    (Unroutable, Reject),
                    (TempError, Tempfail),
                ],
            ),
            (
                Stage::Fcrdns,
                &[(Fail, Reject), (PermError, Reject), (TempError, Tempfail)],
            ),
            (Stage::HeloDns, &[(TempError, Tempfail)]),
            (
                Stage::SpfHelo,
                &[(Fail, Reject), (SoftFail, Tag), (TempError, Tempfail)],
            ),
            (
                Stage::SpfMailfrom,
                &[
                    (Fail, Reject),
                    (SoftFail, Tag),
                    (PermError, Reject),
                    (TempError, Tempfail),
                ],
            ),
        ];
        let stages = table
            .into_iter()
            .map(|(stage, actions)| {
                (
                    stage,
                    StagePolicy::Actions(actions.iter().copied().collect()),
                )
            })
            .collect();
        Policy { stages }
    }
}

impl Policy {
    /// The action for a stage's result.
    pub fn action(&self, stage: Stage, outcome: Outcome) -> Action {
        match self.stages.get(&stage) {
            Some(StagePolicy::Actions(map)) => map.get(&outcome).copied().unwrap_or(Action::Tag),
            _ => Action::Tag,
        }
    }

    /// Whether the stage runs at all.
    pub fn enabled(&self, stage: Stage) -> bool {
        !matches!(self.stages.get(&stage), Some(StagePolicy::Off))
    }

    /// Turns a stage off.
    pub fn disable(&mut self, stage: Stage) -> Result<(), PolicyError> {
        if stage == Stage::Skip {
            return Err(PolicyError::Skip);
        }
        self.stages.insert(stage, StagePolicy::Off);
        Ok(())
    }

    /// Sets the action for one result of a stage (turning the stage on).
    pub fn set(&mut self, stage: Stage, result: &str, action: Action) -> Result<(), PolicyError> {
        if stage == Stage::Skip {
            return Err(PolicyError::Skip);
        }
        let Some(&outcome) = results_of(stage).iter().find(|o| o.as_str() == result) else {
            return Err(PolicyError::NoSuchResult {
                stage,
                result: result.to_owned(),
                valid: results_of(stage)
                    .iter()
                    .map(|o| o.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if outcome == Outcome::TempError && matches!(action, Action::Reject | Action::Greylist) {
            return Err(PolicyError::TempErrorReject { stage, action });
        }
        let entry = self
            .stages
            .entry(stage)
            .or_insert_with(|| StagePolicy::Actions(BTreeMap::new()));
        if let StagePolicy::Off = entry {
            *entry = StagePolicy::Actions(BTreeMap::new());
        }
        if let StagePolicy::Actions(map) = entry {
            map.insert(outcome, action);
        }
        Ok(())
    }

    /// The policy of one stage.
    pub fn stage(&self, stage: Stage) -> Option<&StagePolicy> {
        self.stages.get(&stage)
    }

    /// Whether some result of a stage that runs leads to greylist (then
    /// the milter opens a greylisting store).
    pub fn uses_greylist(&self) -> bool {
        self.stages.values().any(|p| match p {
            StagePolicy::Actions(map) => map.values().any(|a| *a == Action::Greylist),
            StagePolicy::Off => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helo_softfail_is_tagged_by_default() {
        let p = Policy::default();
        assert_eq!(p.action(Stage::SpfHelo, Outcome::SoftFail), Action::Tag);
        assert_eq!(p.action(Stage::SpfMailfrom, Outcome::Fail), Action::Reject);
    }

    #[test]
    fn dns_trouble_is_never_a_reject_by_default() {
        let p = Policy::default();
        for stage in [
            Stage::Fcrdns,
            Stage::HeloDns,
            Stage::SpfHelo,
            Stage::SpfMailfrom,
        ] {
            assert_eq!(
                p.action(stage, Outcome::TempError),
                Action::Tempfail,
                "{stage}"
            );
        }
    }

    #[test]
    fn unknown_results_are_refused() {
        let mut p = Policy::default();
        let err = p
            .set(Stage::SpfHelo, "mismatch", Action::Reject)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("spf-helo has no result \"mismatch\"")
        );
        p.set(Stage::SpfHelo, "softfail", Action::Reject).unwrap();
        assert!(matches!(
            p.set(Stage::Fcrdns, "temperror", Action::Reject),
            Err(PolicyError::TempErrorReject { .. })
        ));
        assert_eq!(p.action(Stage::SpfHelo, Outcome::SoftFail), Action::Reject);
    }

    #[test]
    fn greylist_is_allowed_where_reject_is() {
        let mut p = Policy::default();
        assert!(!p.uses_greylist());
        p.set(Stage::Fcrdns, "fail", "greylist".parse().unwrap())
            .unwrap();
        p.set(Stage::SpfMailfrom, "none", Action::Greylist).unwrap();
        assert!(p.uses_greylist());
        assert_eq!(p.action(Stage::Fcrdns, Outcome::Fail), Action::Greylist);
        let err = p
            .set(Stage::SpfHelo, "temperror", Action::Greylist)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spf-helo temperror cannot be greylist: DNS trouble is never a 5xx (use tempfail or tag)"
        );
        p.disable(Stage::Fcrdns).unwrap();
        p.disable(Stage::SpfMailfrom).unwrap();
        assert!(!p.uses_greylist(), "a stage that is off greylists nothing");
    }

    #[test]
    fn a_stage_can_be_turned_off_and_on_again() {
        let mut p = Policy::default();
        p.disable(Stage::Fcrdns).unwrap();
        assert!(!p.enabled(Stage::Fcrdns));
        assert_eq!(p.action(Stage::Fcrdns, Outcome::Fail), Action::Tag);
        p.set(Stage::Fcrdns, "fail", Action::Reject).unwrap();
        assert!(p.enabled(Stage::Fcrdns));
    }
}
