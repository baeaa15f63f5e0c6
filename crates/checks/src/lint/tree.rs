//! The include/redirect tree as check_host walks it (RFC 7208 §4.6, §5.2,
//! §6.1), without a client: every term a receiver can reach, in evaluation
//! order, with the DNS-querying terms and void lookups of §4.6.4 counted
//! over the whole tree, the names `a`, `mx` and `exists` point at checked
//! for void answers, and `mx` answers checked against the limit of 10.
//!
//! Each name is queried once (answers are kept), so an include reached
//! twice costs its lookups twice, as at a receiver, but no second query.
//! Loops are cut where a record reappears on its own path; the walk stops
//! after [`MAX_NODES`] records, [`MAX_NAMES`] names or [`MAX_DNS_ERRORS`]
//! failed lookups.

mod targets;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use tollgate_dns::{CharacterStrings, Lookup, LookupError, TextType, TxtStrings};
use tollgate_spf::{Mechanism, Record};

use self::targets::{Target, void_words};
use super::fetch::{self, Selected};
use super::terms::{self, Role};
use super::{
    Code, Findings, LOOKUP_LIMIT, MAX_DNS_ERRORS, MAX_NAMES, MAX_NODES, TreeNode, VOID_LIMIT,
};

/// The totals of a walk.
#[derive(Clone, Debug, Default)]
pub(crate) struct Totals {
    pub lookups: u32,
    pub voids: u32,
    /// A reachable `ptr` or `%{p}`: PTR answers of the clients matter.
    pub uses_ptr: bool,
}

type TxtAnswer = Result<Vec<CharacterStrings>, LookupError>;

/// The walk's state.
pub(crate) struct Walker<'a, L> {
    lookup: &'a L,
    root: String,
    out: &'a mut Findings,
    totals: Totals,
    txt: HashMap<String, TxtAnswer>,
    targets: HashMap<(String, &'static str), Target>,
    linted: HashSet<String>,
    nodes: usize,
    dns_errors: usize,
    truncated: bool,
    /// The term whose lookup was the 11th, and the domain of its record.
    crossed: Option<(String, String)>,
}

impl<'a, L: Lookup + TxtStrings> Walker<'a, L> {
    pub(crate) fn new(lookup: &'a L, root: &str, out: &'a mut Findings) -> Self {
        Walker {
            lookup,
            root: root.to_owned(),
            out,
            totals: Totals::default(),
            txt: HashMap::new(),
            targets: HashMap::new(),
            linted: HashSet::new(),
            nodes: 0,
            dns_errors: 0,
            truncated: false,
            crossed: None,
        }
    }

    /// Walks from the root domain's record.
    pub(crate) async fn walk(&mut self) -> TreeNode {
        let root = self.root.clone();
        let node = self.node(root.clone(), Role::Root, None, Vec::new()).await;
        if node.record.is_none() {
            self.no_record(&root).await;
        } else {
            // A type 99 copy next to the TXT record is harmless but stale.
            if let Ok(records) = self.lookup.lookup_strings(&root, TextType::Spf).await
                && records.iter().any(|r| Record::is_spf1(&fetch::joined(r)))
            {
                self.out.add(
                    Code::SpfTypeObsolete,
                    &root,
                    format!(
                        "{root} also publishes its record as type SPF (99), which no receiver reads"
                    ),
                );
            }
        }
        node
    }

    /// The root has no usable TXT record: say why.
    async fn no_record(&mut self, root: &str) {
        if let Some(Err(e)) = self.txt.get(root)
            && !e.is_void()
        {
            return;
        }
        let only_99 = match self.lookup.lookup_strings(root, TextType::Spf).await {
            Ok(records) => records.iter().any(|r| Record::is_spf1(&fetch::joined(r))),
            Err(_) => false,
        };
        if only_99 {
            self.out.add(
                Code::SpfTypeOnly,
                root,
                format!(
                    "{root} publishes its SPF record only as type SPF (99); receivers ask for TXT and find none"
                ),
            );
            return;
        }
        let why = match self.txt.get(root) {
            Some(Err(LookupError::NxDomain)) => format!("{root} does not exist (NXDOMAIN)"),
            Some(Err(_)) => format!("{root} has no TXT records"),
            _ => format!("none of the TXT records at {root} starts with \"v=spf1\""),
        };
        self.out.add(
            Code::NoRecord,
            root,
            format!("{why}: receivers get SPF none and cannot tell forged mail from yours"),
        );
    }

    /// The totals, after reporting the limits they break.
    pub(crate) fn finish(self) -> Totals {
        let t = self.totals.clone();
        let at_least = if self.truncated { "at least " } else { "" };
        if t.lookups > LOOKUP_LIMIT {
            let (term, domain) = self.crossed.clone().unwrap_or_default();
            self.out.add(
                Code::TooManyLookups,
                &term,
                format!(
                    "the tree needs {at_least}{} DNS lookups, more than {LOOKUP_LIMIT}: receivers \
                     stop with permerror at \"{term}\" in the record at {domain}",
                    t.lookups
                ),
            );
        } else if t.lookups >= LOOKUP_LIMIT - 1 {
            self.out.add(
                Code::LookupsNearLimit,
                &self.root,
                format!(
                    "the tree needs {at_least}{} of the {LOOKUP_LIMIT} DNS lookups allowed: one more \
                     include and every check of {} is a permerror",
                    t.lookups, self.root
                ),
            );
        }
        if t.voids > VOID_LIMIT {
            self.out.add(
                Code::TooManyVoidLookups,
                &self.root,
                format!(
                    "{at_least}{} lookups in the tree find nothing, more than {VOID_LIMIT}: receivers give permerror",
                    t.voids
                ),
            );
        }
        t
    }

    fn budget_left(&mut self) -> bool {
        let left = self.nodes < MAX_NODES
            && self.txt.len() + self.targets.len() < MAX_NAMES
            && self.dns_errors < MAX_DNS_ERRORS;
        if !left && !self.truncated {
            self.truncated = true;
            self.out.add(
                Code::TreeTruncated,
                &self.root,
                format!(
                    "stopped following the tree of {} after {} records, {} names and {} failed lookups",
                    self.root,
                    self.nodes,
                    self.txt.len() + self.targets.len(),
                    self.dns_errors
                ),
            );
        }
        left
    }

    async fn fetch_txt(&mut self, domain: &str) -> TxtAnswer {
        if let Some(answer) = self.txt.get(domain) {
            return answer.clone();
        }
        let answer = self.lookup.lookup_strings(domain, TextType::Txt).await;
        if let Err(e) = &answer
            && !e.is_void()
        {
            self.dns_errors += 1;
            self.out.add(
                Code::DnsError,
                domain,
                format!("{} looking up TXT for {domain}", e.summary()),
            );
        }
        self.txt.insert(domain.to_owned(), answer.clone());
        answer
    }

    /// One record and, depth first in evaluation order, what it includes.
    fn node(
        &mut self,
        domain: String,
        role: Role,
        via: Option<String>,
        path: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = TreeNode> + Send + '_>> {
        Box::pin(async move {
            self.nodes += 1;
            let mut node = TreeNode {
                domain: domain.clone(),
                record: None,
                lookups: 0,
                children: Vec::new(),
            };
            let via = via.unwrap_or_default();
            let records = match self.fetch_txt(&domain).await {
                Ok(records) => records,
                Err(e) if e.is_void() => {
                    if role != Role::Root {
                        self.void(&via, format!("\"{via}\": {domain} {}", void_words(&e)));
                        self.without_record(&via, &domain);
                    }
                    return node;
                }
                Err(_) => return node,
            };
            let first = self.linted.insert(domain.clone());
            let text = match fetch::select(&domain, &records, first, self.out) {
                Selected::One(text) => text,
                Selected::Many(texts) => {
                    node.record = texts.into_iter().next();
                    return node;
                }
                Selected::None => {
                    if role != Role::Root {
                        self.without_record(&via, &domain);
                    }
                    return node;
                }
            };
            node.record = Some(text.clone());
            let record = match Record::parse(&text) {
                Ok(record) => record,
                Err(e) => {
                    if first {
                        self.out.add(
                            Code::SyntaxError,
                            &e.term,
                            format!(
                                "the record at {domain} has a {e} (the term starts at octet {})",
                                e.offset + 1
                            ),
                        );
                    }
                    return node;
                }
            };
            if first {
                terms::check(&record, &domain, role, self.out);
                if let Some(exp) = &record.exp {
                    self.exp(exp, &domain).await;
                }
            }
            self.totals.uses_ptr |= terms::uses_ptr(&record);
            self.terms(&record, &domain, &mut node, &path).await;
            node
        })
    }

    /// The reachable terms of one record: up to `all`, then `redirect=`.
    async fn terms(&mut self, record: &Record, domain: &str, node: &mut TreeNode, path: &[String]) {
        let all = record
            .directives
            .iter()
            .position(|d| d.mechanism == Mechanism::All);
        let reachable = &record.directives[..all.map_or(record.directives.len(), |i| i + 1)];
        for d in reachable {
            if d.mechanism.queries_dns() {
                node.lookups += 1;
                self.spend(&d.text, domain);
            }
            match &d.mechanism {
                Mechanism::Include(spec) => {
                    if let Some(target) = self.target(spec, domain, &d.text) {
                        self.descend(target, Role::Include, &d.text, domain, node, path)
                            .await;
                    }
                }
                Mechanism::A { domain: spec, .. } => {
                    if let Some(target) = self.optional_target(spec.as_ref(), domain, &d.text) {
                        self.check_target(&target, "a", &d.text).await;
                    }
                }
                Mechanism::Mx { domain: spec, .. } => {
                    if let Some(target) = self.optional_target(spec.as_ref(), domain, &d.text) {
                        self.check_target(&target, "mx", &d.text).await;
                    }
                }
                Mechanism::Exists(spec) => {
                    if let Some(target) = self.target(spec, domain, &d.text) {
                        self.check_target(&target, "exists", &d.text).await;
                    }
                }
                _ => {}
            }
        }
        if let (Some(redirect), None) = (&record.redirect, all) {
            let text = format!("redirect={redirect}");
            node.lookups += 1;
            self.spend(&text, domain);
            if let Some(target) = self.target(redirect, domain, &text) {
                self.descend(target, Role::Redirect, &text, domain, node, path)
                    .await;
            }
        }
    }

    async fn descend(
        &mut self,
        target: String,
        role: Role,
        term: &str,
        domain: &str,
        node: &mut TreeNode,
        path: &[String],
    ) {
        if target == domain || path.contains(&target) {
            self.out.add(
                Code::IncludeLoop,
                term,
                format!(
                    "\"{term}\" in the record at {domain} leads back to {target}, which is already on the path {}",
                    path.iter()
                        .chain(std::iter::once(&domain.to_owned()))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" -> ")
                ),
            );
            return;
        }
        if !self.budget_left() {
            return;
        }
        let mut child_path = path.to_vec();
        child_path.push(domain.to_owned());
        let child = self
            .node(target, role, Some(term.to_owned()), child_path)
            .await;
        node.children.push(child);
    }

    fn spend(&mut self, term: &str, domain: &str) {
        self.totals.lookups += 1;
        if self.totals.lookups == LOOKUP_LIMIT + 1 {
            self.crossed = Some((term.to_owned(), domain.to_owned()));
        }
    }

    fn void(&mut self, term: &str, message: String) {
        self.totals.voids += 1;
        self.out.add(Code::VoidLookup, term, message);
    }

    fn without_record(&mut self, term: &str, target: &str) {
        self.out.add(
            Code::IncludeWithoutRecord,
            term,
            format!("\"{term}\" names {target}, which has no SPF record: receivers give permerror"),
        );
    }
}
