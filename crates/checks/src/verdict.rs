//! What the stages found, taken together: an [`Evaluation`] holds the
//! stage reports in the order the stages ran, and its [`Verdict`] is what
//! the milter does with the message (the first stage that refuses, else
//! the first that greylists, else accept; a skip accepts).

use crate::policy::Action;
use crate::reply::Reply;
use crate::skip::SkipReason;
use crate::stage::{Stage, StageReport};

/// The reports of the stages that ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// The reports, in the order the stages ran.
    pub stages: Vec<StageReport>,
}

/// What the milter does with the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Reject, tempfail, greylist, or tag (accept with headers).
    pub action: Action,
    /// The stage that decided; `None` when no stage refused (or `skip` when skipped).
    pub stage: Option<Stage>,
    /// The reply for reject and tempfail; for greylist, what a first
    /// attempt is told.
    pub reply: Option<Reply>,
}

impl Verdict {
    /// `reject`, `tempfail`, `greylist` or `accept`.
    pub fn action_str(&self) -> &'static str {
        match self.action {
            Action::Reject => "reject",
            Action::Tempfail => "tempfail",
            Action::Greylist => "greylist",
            Action::Tag => "accept",
        }
    }
}

impl Evaluation {
    /// The first report whose action is reject or tempfail.
    pub fn decisive(&self) -> Option<&StageReport> {
        self.stages.iter().find(|r| r.is_decisive())
    }

    /// The skip reason, if a skip exempts the whole message.
    pub fn skipped(&self) -> Option<&SkipReason> {
        self.skips().find(|reason| !reason.is_partial())
    }

    /// Every skip that matched, whole or partial (a trusted forwarder).
    pub fn skips(&self) -> impl Iterator<Item = &SkipReason> {
        self.stages.iter().filter_map(|r| r.skip.as_ref())
    }

    /// The report of a stage, if it ran.
    pub fn report(&self, stage: Stage) -> Option<&StageReport> {
        self.stages.iter().find(|r| r.stage == stage)
    }

    /// The first report whose action is greylist.
    pub fn greylist(&self) -> Option<&StageReport> {
        self.stages.iter().find(|r| r.is_greylist())
    }

    /// The verdict: accept when skipped, else the first decisive stage,
    /// else the first greylisting stage, else accept.
    pub fn verdict(&self) -> Verdict {
        if self.skipped().is_some() {
            return Verdict {
                action: Action::Tag,
                stage: Some(Stage::Skip),
                reply: None,
            };
        }
        if let Some(report) = self.decisive().or_else(|| self.greylist()) {
            return Verdict {
                action: report.action,
                stage: Some(report.stage),
                reply: report.reply.clone(),
            };
        }
        Verdict {
            action: Action::Tag,
            stage: None,
            reply: None,
        }
    }

    /// DNS queries made by all stages.
    pub fn dns_queries(&self) -> u32 {
        self.stages.iter().map(|r| r.dns_queries).sum()
    }
}
