//! IAM-style policy documents (SPEC §6): parsing and validation of the AWS JSON shape into a
//! [`PolicyDocument`], and their compilation into the [`Grants`] of one principal inside one
//! tenant, which the gateway asks per resource of every request ([`Grants::decide`]).
//!
//! Pure: no I/O, no clock. [`Grants::decide`] neither allocates nor builds strings: every
//! resource pattern is compiled once in [`Grants::new`] into the glob states that remain after
//! the fixed ARN prefix `arn:sluice:kafka:::<type>/<tenant>/`, so a decision only matches the
//! tenant-local name against those states.
//!
//! Matching follows IAM: action patterns are case-insensitive globs over the action name after
//! `kafka-cluster:`; resource patterns are case-sensitive globs over the whole ARN, where `*`
//! matches any run of characters (including `/`) and `?` exactly one. Names are literal, so a
//! group called `a*b` is just that. Explicit Deny in any document beats Allow, which beats the
//! implicit deny. A session policy only narrows: an action is allowed only when both the stored
//! set and the session policy allow it (STS session-policy semantics).

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::TenantId;

/// The only accepted `Version`.
pub const POLICY_VERSION: &str = "2012-10-17";
/// The largest accepted document, in bytes of JSON (as given to [`PolicyDocument::parse`], or
/// compactly serialized for [`PolicyDocument::from_value`]).
pub const MAX_DOCUMENT_BYTES: usize = 20 * 1024;
/// The most statements one document may carry.
pub const MAX_STATEMENTS: usize = 100;
/// The common start of every resource ARN.
pub const ARN_PREFIX: &str = "arn:sluice:kafka:::";
/// The service prefix of every action (matched case-insensitively, as IAM does).
pub const ACTION_PREFIX: &str = "kafka-cluster:";

// === Actions and resource kinds ===

/// A `kafka-cluster:` action of MSK Serverless, plus MSK's
/// `Describe/AlterClusterDynamicConfiguration`, which here cover only the tenant's own
/// client quotas (Kafka checks DESCRIBE_CONFIGS / ALTER_CONFIGS on the cluster for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Open a connection (cluster).
    Connect,
    /// DESCRIBE on the cluster.
    DescribeCluster,
    /// IDEMPOTENT_WRITE on the cluster.
    WriteDataIdempotently,
    /// CREATE a topic.
    CreateTopic,
    /// DESCRIBE a topic.
    DescribeTopic,
    /// ALTER a topic (partitions).
    AlterTopic,
    /// DELETE a topic (and its records).
    DeleteTopic,
    /// DESCRIBE_CONFIGS on a topic.
    DescribeTopicDynamicConfiguration,
    /// ALTER_CONFIGS on a topic.
    AlterTopicDynamicConfiguration,
    /// READ a topic.
    ReadData,
    /// WRITE a topic.
    WriteData,
    /// DESCRIBE a group.
    DescribeGroup,
    /// READ a group (join, commit).
    AlterGroup,
    /// DELETE a group.
    DeleteGroup,
    /// DESCRIBE a transactional id.
    DescribeTransactionalId,
    /// WRITE a transactional id.
    AlterTransactionalId,
    /// DESCRIBE_CONFIGS on the cluster: the tenant's client quotas.
    DescribeClusterDynamicConfiguration,
    /// ALTER_CONFIGS on the cluster: the tenant's client quotas.
    AlterClusterDynamicConfiguration,
}

impl Action {
    /// Every action, in declaration order (`ALL[a.index()] == a`).
    pub const ALL: [Action; 18] = [
        Action::Connect,
        Action::DescribeCluster,
        Action::WriteDataIdempotently,
        Action::CreateTopic,
        Action::DescribeTopic,
        Action::AlterTopic,
        Action::DeleteTopic,
        Action::DescribeTopicDynamicConfiguration,
        Action::AlterTopicDynamicConfiguration,
        Action::ReadData,
        Action::WriteData,
        Action::DescribeGroup,
        Action::AlterGroup,
        Action::DeleteGroup,
        Action::DescribeTransactionalId,
        Action::AlterTransactionalId,
        Action::DescribeClusterDynamicConfiguration,
        Action::AlterClusterDynamicConfiguration,
    ];

    /// The full IAM name, e.g. `kafka-cluster:WriteData`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Connect => "kafka-cluster:Connect",
            Action::DescribeCluster => "kafka-cluster:DescribeCluster",
            Action::WriteDataIdempotently => "kafka-cluster:WriteDataIdempotently",
            Action::CreateTopic => "kafka-cluster:CreateTopic",
            Action::DescribeTopic => "kafka-cluster:DescribeTopic",
            Action::AlterTopic => "kafka-cluster:AlterTopic",
            Action::DeleteTopic => "kafka-cluster:DeleteTopic",
            Action::DescribeTopicDynamicConfiguration => {
                "kafka-cluster:DescribeTopicDynamicConfiguration"
            }
            Action::AlterTopicDynamicConfiguration => {
                "kafka-cluster:AlterTopicDynamicConfiguration"
            }
            Action::ReadData => "kafka-cluster:ReadData",
            Action::WriteData => "kafka-cluster:WriteData",
            Action::DescribeGroup => "kafka-cluster:DescribeGroup",
            Action::AlterGroup => "kafka-cluster:AlterGroup",
            Action::DeleteGroup => "kafka-cluster:DeleteGroup",
            Action::DescribeTransactionalId => "kafka-cluster:DescribeTransactionalId",
            Action::AlterTransactionalId => "kafka-cluster:AlterTransactionalId",
            Action::DescribeClusterDynamicConfiguration => "kafka-cluster:DescribeClusterDynamicConfiguration",
            Action::AlterClusterDynamicConfiguration => "kafka-cluster:AlterClusterDynamicConfiguration",
        }
    }

    /// The name without the `kafka-cluster:` prefix, e.g. `WriteData`.
    pub fn short_name(self) -> &'static str {
        &self.name()[ACTION_PREFIX.len()..]
    }

    /// The kind of resource the action applies to (the ARN type it is checked against).
    pub fn resource_kind(self) -> ResourceKind {
        match self {
            Action::Connect
            | Action::DescribeCluster
            | Action::WriteDataIdempotently
            | Action::DescribeClusterDynamicConfiguration
            | Action::AlterClusterDynamicConfiguration => {
                ResourceKind::Cluster
            }
            Action::CreateTopic
            | Action::DescribeTopic
            | Action::AlterTopic
            | Action::DeleteTopic
            | Action::DescribeTopicDynamicConfiguration
            | Action::AlterTopicDynamicConfiguration
            | Action::ReadData
            | Action::WriteData => ResourceKind::Topic,
            Action::DescribeGroup | Action::AlterGroup | Action::DeleteGroup => ResourceKind::Group,
            Action::DescribeTransactionalId | Action::AlterTransactionalId => {
                ResourceKind::TransactionalId
            }
        }
    }

    /// Position in [`Action::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The kinds of resource an ARN can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    /// `arn:sluice:kafka:::cluster/<tenant>` (the tenant's virtual cluster).
    Cluster,
    /// `arn:sluice:kafka:::topic/<tenant>/<topic>`.
    Topic,
    /// `arn:sluice:kafka:::group/<tenant>/<group>`.
    Group,
    /// `arn:sluice:kafka:::transactional-id/<tenant>/<id>`.
    TransactionalId,
}

impl ResourceKind {
    /// Every kind.
    pub const ALL: [ResourceKind; 4] = [
        ResourceKind::Cluster,
        ResourceKind::Topic,
        ResourceKind::Group,
        ResourceKind::TransactionalId,
    ];

    /// The ARN type segment: `cluster`, `topic`, `group` or `transactional-id`.
    pub fn arn_type(self) -> &'static str {
        match self {
            ResourceKind::Cluster => "cluster",
            ResourceKind::Topic => "topic",
            ResourceKind::Group => "group",
            ResourceKind::TransactionalId => "transactional-id",
        }
    }

    /// The ARN of a resource of this kind: `arn:sluice:kafka:::cluster/<tenant>` (name ignored)
    /// or `arn:sluice:kafka:::<type>/<tenant>/<name>`. Allocates; for display, audit and tests,
    /// never for decisions.
    pub fn arn(self, tenant: &TenantId, name: &str) -> String {
        match self {
            ResourceKind::Cluster => format!("{ARN_PREFIX}cluster/{tenant}"),
            _ => format!("{ARN_PREFIX}{}/{tenant}/{name}", self.arn_type()),
        }
    }
}

// === Errors ===

/// Why a policy document was rejected. Every message names the field (`Statement[2].Action[0]`)
/// and quotes the offending value, so it can go back to the tenant admin unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON at all.
    #[error("policy document is not valid JSON: {0}")]
    Json(String),
    /// Over [`MAX_DOCUMENT_BYTES`].
    #[error("policy document is {size} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge {
        /// Size of the document in bytes.
        size: usize,
    },
    /// Over [`MAX_STATEMENTS`].
    #[error("Statement: {count} statements; the limit is {MAX_STATEMENTS}")]
    TooManyStatements {
        /// Number of statements in the document.
        count: usize,
    },
    /// A required field is absent.
    #[error("{path}: missing")]
    Missing {
        /// The field, e.g. `Statement[0].Effect`.
        path: String,
    },
    /// A field has the wrong JSON type.
    #[error("{path}: expected {expected}")]
    WrongType {
        /// The field.
        path: String,
        /// What was expected, e.g. `a string or an array of strings`.
        expected: &'static str,
    },
    /// A list that must not be empty is.
    #[error("{path}: must not be empty")]
    Empty {
        /// The field.
        path: String,
    },
    /// `Version` is not [`POLICY_VERSION`].
    #[error("Version: unsupported version {value}; use \"2012-10-17\"")]
    Version {
        /// The given version, JSON-encoded (so a number shows as `1`, a string as `"1"`).
        value: String,
    },
    /// `Effect` is neither `Allow` nor `Deny`.
    #[error("{path}: unknown effect {value:?}; use \"Allow\" or \"Deny\"")]
    Effect {
        /// The field.
        path: String,
        /// The given effect.
        value: String,
    },
    /// An IAM element sluice does not support (`NotAction`, `NotResource`, `Principal`,
    /// `NotPrincipal`, `Condition`).
    #[error("{path}: {field} is not supported")]
    UnsupportedField {
        /// Where it appeared, e.g. `Statement[1]`.
        path: String,
        /// The element name.
        field: String,
    },
    /// A key that is no IAM element at all.
    #[error("{path}: unknown field {field:?}")]
    UnknownField {
        /// Where it appeared.
        path: String,
        /// The key.
        field: String,
    },
    /// An action that is not `kafka-cluster:<pattern>`, or whose pattern matches no supported
    /// action.
    #[error("{path}: unknown action {value}{hint}")]
    UnknownAction {
        /// The field, e.g. `Statement[2].Action[0]`.
        path: String,
        /// The given action.
        value: String,
        /// Extra explanation (empty or starting with `; `).
        hint: &'static str,
    },
    /// A resource that is neither `*` nor an `arn:sluice:kafka:::<type>/...` pattern.
    #[error("{path}: invalid resource {value}: {reason}")]
    InvalidResource {
        /// The field, e.g. `Statement[0].Resource[1]`.
        path: String,
        /// The given resource.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

// === Documents ===

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Effect {
    /// Grants the actions on the resources.
    Allow,
    /// Forbids them, whatever any Allow says.
    Deny,
}

/// One validated statement. Actions and resources keep their original spelling, so a document
/// serializes back to what the tenant admin wrote (always in array form).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    #[serde(rename = "Sid", skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(rename = "Effect")]
    effect: Effect,
    #[serde(rename = "Action")]
    actions: Vec<String>,
    #[serde(rename = "Resource")]
    resources: Vec<String>,
    /// Bit `a.index()` set when some action pattern matches `a`; derived from `actions` at
    /// validation so compiling grants does not re-glob.
    #[serde(skip)]
    action_mask: u32,
}

impl Statement {
    /// The optional statement id.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }
    /// Allow or Deny.
    pub fn effect(&self) -> Effect {
        self.effect
    }
    /// The action patterns as written.
    pub fn actions(&self) -> &[String] {
        &self.actions
    }
    /// The resource patterns as written.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }
    /// Whether some action pattern of this statement matches `action`.
    pub fn matches_action(&self, action: Action) -> bool {
        self.action_mask & (1 << action.index()) != 0
    }
}

/// A validated policy document: `{"Version":"2012-10-17","Statement":[...]}`.
///
/// Deserializes from the AWS JSON shape (Statement, Action and Resource as a single value or an
/// array) with the checks of [`PolicyDocument::from_value`]; serializes to the same shape with
/// arrays, which parses back to an equal document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    version: String,
    #[serde(rename = "Statement")]
    statements: Vec<Statement>,
}

impl<'de> serde::Deserialize<'de> for PolicyDocument {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        PolicyDocument::from_value(v).map_err(serde::de::Error::custom)
    }
}

impl PolicyDocument {
    /// Parses and validates a JSON policy document.
    ///
    /// Fails with [`PolicyError::TooLarge`] over 20 KiB (checked before parsing), with
    /// [`PolicyError::Json`] for malformed JSON, and otherwise as [`PolicyDocument::from_value`].
    pub fn parse(json: &str) -> Result<Self, PolicyError> {
        if json.len() > MAX_DOCUMENT_BYTES {
            return Err(PolicyError::TooLarge { size: json.len() });
        }
        let v: Value = serde_json::from_str(json).map_err(|e| PolicyError::Json(e.to_string()))?;
        Self::validate(&v)
    }

    /// Validates an already parsed document (the `sluice:session_policy` claim arrives as one).
    ///
    /// Fails with a [`PolicyError`] naming the field for: a size over 20 KiB (compact JSON), a
    /// `Version` other than `2012-10-17`, a missing or empty `Statement`, more than 100
    /// statements, an `Effect` other than `Allow`/`Deny`, `NotAction`/`NotResource`/`Principal`/
    /// `NotPrincipal`/`Condition` or unknown keys, an action that is not `kafka-cluster:<glob>`
    /// matching a supported action, a resource that is not `*` or an
    /// `arn:sluice:kafka:::<type>/...` glob that can match a cluster, topic, group or
    /// transactional-id ARN, and empty Action/Resource lists.
    pub fn from_value(v: Value) -> Result<Self, PolicyError> {
        let size = serde_json::to_vec(&v)
            .map_err(|e| PolicyError::Json(e.to_string()))?
            .len();
        if size > MAX_DOCUMENT_BYTES {
            return Err(PolicyError::TooLarge { size });
        }
        Self::validate(&v)
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The document's `Version` (always `2012-10-17`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Serializes to compact JSON in the AWS shape.
    pub fn to_json(&self) -> String {
        // A document holds only strings and derived enums; serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    fn validate(v: &Value) -> Result<Self, PolicyError> {
        let obj = v.as_object().ok_or_else(|| PolicyError::WrongType {
            path: "(document)".into(),
            expected: "a JSON object",
        })?;
        for key in obj.keys() {
            match key.as_str() {
                "Version" | "Statement" => {}
                other => return Err(unknown_or_unsupported("(document)", other)),
            }
        }
        let version = match obj.get("Version") {
            None => {
                return Err(PolicyError::Missing {
                    path: "Version".into(),
                })
            }
            Some(Value::String(s)) if s == POLICY_VERSION => s.clone(),
            Some(other) => {
                return Err(PolicyError::Version {
                    value: truncate(&other.to_string()),
                })
            }
        };
        let statements = match obj.get("Statement") {
            None => {
                return Err(PolicyError::Missing {
                    path: "Statement".into(),
                })
            }
            Some(Value::Object(s)) => vec![parse_statement("Statement", s)?],
            Some(Value::Array(list)) => {
                if list.is_empty() {
                    return Err(PolicyError::Empty {
                        path: "Statement".into(),
                    });
                }
                if list.len() > MAX_STATEMENTS {
                    return Err(PolicyError::TooManyStatements { count: list.len() });
                }
                let mut out = Vec::with_capacity(list.len());
                for (i, s) in list.iter().enumerate() {
                    let path = format!("Statement[{i}]");
                    let s = s.as_object().ok_or_else(|| PolicyError::WrongType {
                        path: path.clone(),
                        expected: "an object",
                    })?;
                    out.push(parse_statement(&path, s)?);
                }
                out
            }
            Some(_) => {
                return Err(PolicyError::WrongType {
                    path: "Statement".into(),
                    expected: "an object or an array of objects",
                })
            }
        };
        Ok(PolicyDocument {
            version,
            statements,
        })
    }
}

/// Values echoed into errors are cut, so a huge bogus value cannot bloat a log line.
fn truncate(s: &str) -> String {
    const MAX: usize = 128;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn unknown_or_unsupported(path: &str, field: &str) -> PolicyError {
    match field {
        "NotAction" | "NotResource" | "Principal" | "NotPrincipal" | "Condition" => {
            PolicyError::UnsupportedField {
                path: path.into(),
                field: field.into(),
            }
        }
        _ => PolicyError::UnknownField {
            path: path.into(),
            field: truncate(field),
        },
    }
}

fn parse_statement(path: &str, s: &Map<String, Value>) -> Result<Statement, PolicyError> {
    for key in s.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Action" | "Resource" => {}
            other => return Err(unknown_or_unsupported(path, other)),
        }
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(sid)) => Some(sid.clone()),
        Some(_) => {
            return Err(PolicyError::WrongType {
                path: format!("{path}.Sid"),
                expected: "a string",
            })
        }
    };
    let effect = match s.get("Effect") {
        None => {
            return Err(PolicyError::Missing {
                path: format!("{path}.Effect"),
            })
        }
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(Value::String(e)) => {
            return Err(PolicyError::Effect {
                path: format!("{path}.Effect"),
                value: truncate(e),
            })
        }
        Some(_) => {
            return Err(PolicyError::WrongType {
                path: format!("{path}.Effect"),
                expected: "\"Allow\" or \"Deny\"",
            })
        }
    };
    let actions = string_list(path, "Action", s.get("Action"))?;
    let mut action_mask = 0u32;
    for (i, a) in actions.iter().enumerate() {
        let mask = action_pattern_mask(a).map_err(|hint| PolicyError::UnknownAction {
            path: element_path(path, "Action", i, s.get("Action")),
            value: truncate(a),
            hint,
        })?;
        action_mask |= mask;
    }
    let resources = string_list(path, "Resource", s.get("Resource"))?;
    for (i, r) in resources.iter().enumerate() {
        check_resource(r).map_err(|reason| PolicyError::InvalidResource {
            path: element_path(path, "Resource", i, s.get("Resource")),
            value: truncate(r),
            reason,
        })?;
    }
    Ok(Statement {
        sid,
        effect,
        actions,
        resources,
        action_mask,
    })
}

/// `Statement[0].Action[1]`, or `Statement[0].Action` when the field was a single string.
fn element_path(path: &str, field: &str, i: usize, raw: Option<&Value>) -> String {
    match raw {
        Some(Value::Array(_)) => format!("{path}.{field}[{i}]"),
        _ => format!("{path}.{field}"),
    }
}

fn string_list(path: &str, field: &str, v: Option<&Value>) -> Result<Vec<String>, PolicyError> {
    match v {
        None => Err(PolicyError::Missing {
            path: format!("{path}.{field}"),
        }),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(list)) => {
            if list.is_empty() {
                return Err(PolicyError::Empty {
                    path: format!("{path}.{field}"),
                });
            }
            list.iter()
                .enumerate()
                .map(|(i, x)| match x {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(PolicyError::WrongType {
                        path: format!("{path}.{field}[{i}]"),
                        expected: "a string",
                    }),
                })
                .collect()
        }
        Some(_) => Err(PolicyError::WrongType {
            path: format!("{path}.{field}"),
            expected: "a string or an array of strings",
        }),
    }
}

/// Actions that exist in MSK but not in MSK Serverless (and so not in sluice).
const UNSUPPORTED_ACTIONS: [&str; 3] = [
    "altercluster",
    "describeclusterdynamicconfiguration",
    "alterclusterdynamicconfiguration",
];

/// The set of actions an action pattern matches, as a bit mask over [`Action::index`]; the error
/// is a hint for the message.
fn action_pattern_mask(pattern: &str) -> Result<u32, &'static str> {
    let prefix_ok = pattern
        .get(..ACTION_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(ACTION_PREFIX));
    if !prefix_ok {
        return Err("; actions are kafka-cluster:<name>, e.g. kafka-cluster:WriteData");
    }
    let glob = Glob::new(&pattern[ACTION_PREFIX.len()..].to_lowercase());
    let mut mask = 0u32;
    for a in Action::ALL {
        if glob.matches(&a.short_name().to_ascii_lowercase()) {
            mask |= 1 << a.index();
        }
    }
    if mask != 0 {
        return Ok(mask);
    }
    if UNSUPPORTED_ACTIONS.iter().any(|u| glob.matches(u)) {
        return Err(" (not supported by sluice, as in MSK Serverless)");
    }
    Err("")
}

/// Accepts `*` and `arn:sluice:kafka:::` globs that can match at least one resource ARN of a
/// known type (checked by running the glob over `<type>/`).
fn check_resource(r: &str) -> Result<(), &'static str> {
    if r == "*" {
        return Ok(());
    }
    if !r.starts_with(ARN_PREFIX) {
        return Err("resources are \"*\" or arn:sluice:kafka:::<cluster|topic|group|transactional-id>/<tenant>[/<name>]");
    }
    let glob = Glob::new(r);
    let can_match = ResourceKind::ALL.iter().any(|k| {
        let mut states = glob.start();
        for prefix in [ARN_PREFIX, k.arn_type(), "/"] {
            states = glob.step_str(&states, prefix);
        }
        !states.is_empty()
    });
    if can_match {
        Ok(())
    } else {
        Err("the resource type must be cluster, topic, group or transactional-id (or a wildcard), followed by /")
    }
}

// === Globs ===

/// One element of a compiled glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// `*`: any run of characters, including none.
    Star,
    /// `?`: exactly one character.
    One,
    /// A literal character.
    Lit(char),
}

/// A compiled `*`/`?` glob. States of its NFA are token positions: state `i` means `toks[..i]`
/// has been matched; a state on a `Star` may still consume characters.
#[derive(Debug, Clone)]
struct Glob {
    toks: Arc<[Tok]>,
}

impl Glob {
    fn new(p: &str) -> Glob {
        let mut toks: Vec<Tok> = Vec::with_capacity(p.len());
        for c in p.chars() {
            let t = match c {
                '*' => Tok::Star,
                '?' => Tok::One,
                c => Tok::Lit(c),
            };
            // `**` matches what `*` matches; collapsing keeps the matcher linear-ish.
            if t == Tok::Star && toks.last() == Some(&Tok::Star) {
                continue;
            }
            toks.push(t);
        }
        Glob { toks: toks.into() }
    }

    fn matches(&self, s: &str) -> bool {
        match_from(&self.toks, s)
    }

    /// Adds `i` and every state reachable from it without consuming a character.
    fn close(&self, i: usize, out: &mut Vec<usize>) {
        let mut i = i;
        loop {
            if !out.contains(&i) {
                out.push(i);
            }
            if self.toks.get(i) == Some(&Tok::Star) {
                i += 1;
            } else {
                return;
            }
        }
    }

    fn start(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.close(0, &mut out);
        out
    }

    fn step_str(&self, states: &[usize], s: &str) -> Vec<usize> {
        let mut cur = states.to_vec();
        for c in s.chars() {
            let mut next = Vec::new();
            for &i in &cur {
                match self.toks.get(i) {
                    Some(Tok::Star) => self.close(i, &mut next),
                    Some(Tok::One) => self.close(i + 1, &mut next),
                    Some(Tok::Lit(l)) if *l == c => self.close(i + 1, &mut next),
                    _ => {}
                }
            }
            if next.is_empty() {
                return next;
            }
            cur = next;
        }
        cur
    }
}

/// Whether `s` matches the whole of `pat`. Iterative with one backtrack point (the last star),
/// which is exact for `*`/`?` globs; no allocation.
fn match_from(pat: &[Tok], s: &str) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    // (pattern position after the last star, input position that star resumes from)
    let mut star: Option<(usize, usize)> = None;
    loop {
        let c = s[i..].chars().next();
        match (pat.get(p), c) {
            (Some(Tok::Star), _) => {
                p += 1;
                star = Some((p, i));
                continue;
            }
            (Some(Tok::One), Some(ch)) => {
                p += 1;
                i += ch.len_utf8();
                continue;
            }
            (Some(Tok::Lit(l)), Some(ch)) if *l == ch => {
                p += 1;
                i += ch.len_utf8();
                continue;
            }
            (None, None) => return true,
            _ => {}
        }
        // Mismatch: let the last star swallow one more character, or fail.
        let Some((sp, si)) = star else { return false };
        let Some(ch) = s[si..].chars().next() else {
            return false;
        };
        let ni = si + ch.len_utf8();
        star = Some((sp, ni));
        p = sp;
        i = ni;
    }
}

// === Grants ===

/// The outcome of an authorization check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Some Allow applies and no Deny does (in the stored set and, if any, the session policy).
    Allow,
    /// A Deny statement applies.
    ExplicitDeny,
    /// Nothing allows it.
    ImplicitDeny,
}

/// One resource pattern of one statement, compiled against one tenant and one resource kind:
/// the NFA states left after the ARN prefix `arn:sluice:kafka:::<type>/<tenant>/`.
#[derive(Debug, Clone)]
enum Suffix {
    /// The pattern matches every name (its remainder is `*`).
    All,
    /// The name must match `toks[s..]` for some `s` in `starts`.
    From {
        toks: Arc<[Tok]>,
        starts: Box<[usize]>,
    },
}

impl Suffix {
    fn matches(&self, name: &str) -> bool {
        match self {
            Suffix::All => true,
            Suffix::From { toks, starts } => starts.iter().any(|&s| match_from(&toks[s..], name)),
        }
    }
}

/// The compiled rules of one document set for one action.
#[derive(Debug, Clone, Default)]
struct ActionRules {
    deny: Vec<Suffix>,
    allow: Vec<Suffix>,
}

impl ActionRules {
    fn decide(&self, name: &str) -> Decision {
        if self.deny.iter().any(|s| s.matches(name)) {
            Decision::ExplicitDeny
        } else if self.allow.iter().any(|s| s.matches(name)) {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

/// A set of documents compiled for one tenant: the rules per action.
#[derive(Debug, Clone)]
struct Compiled {
    by_action: [ActionRules; Action::ALL.len()],
}

impl Compiled {
    fn new(tenant: &TenantId, docs: &[&PolicyDocument]) -> Compiled {
        let mut by_action: [ActionRules; Action::ALL.len()] = Default::default();
        // Prefix states depend only on (resource pattern, kind), so compute them once per
        // pair rather than once per action.
        for doc in docs {
            for st in &doc.statements {
                for kind in ResourceKind::ALL {
                    let actions: Vec<Action> = Action::ALL
                        .into_iter()
                        .filter(|a| a.resource_kind() == kind && st.matches_action(*a))
                        .collect();
                    if actions.is_empty() {
                        continue;
                    }
                    for r in &st.resources {
                        let Some(suffix) = compile_suffix(r, kind, tenant) else {
                            continue;
                        };
                        for a in &actions {
                            let rules = &mut by_action[a.index()];
                            match st.effect {
                                Effect::Allow => rules.allow.push(suffix.clone()),
                                Effect::Deny => rules.deny.push(suffix.clone()),
                            }
                        }
                    }
                }
            }
        }
        // An `All` pattern decides alone; put it first so `any` stops there.
        for rules in &mut by_action {
            for list in [&mut rules.deny, &mut rules.allow] {
                list.sort_by_key(|s| !matches!(s, Suffix::All));
            }
        }
        Compiled { by_action }
    }

    fn decide(&self, action: Action, name: &str) -> Decision {
        self.by_action[action.index()].decide(name)
    }
}

/// Compiles a resource pattern for `kind` inside `tenant`; `None` if it can match no resource of
/// that kind in that tenant.
fn compile_suffix(pattern: &str, kind: ResourceKind, tenant: &TenantId) -> Option<Suffix> {
    let glob = Glob::new(pattern);
    let mut states = glob.start();
    let tail = if kind == ResourceKind::Cluster {
        ""
    } else {
        "/"
    };
    for part in [ARN_PREFIX, kind.arn_type(), "/", tenant.as_str(), tail] {
        states = glob.step_str(&states, part);
        if states.is_empty() {
            return None;
        }
    }
    // A state on a trailing star matches everything (the end state itself matches only "").
    if states
        .iter()
        .any(|&s| s < glob.toks.len() && glob.toks[s..].iter().all(|t| *t == Tok::Star))
    {
        return Some(Suffix::All);
    }
    // A star state subsumes the state right after it (its epsilon successor).
    let starts: Vec<usize> = states
        .iter()
        .copied()
        .filter(|&s| !(s > 0 && glob.toks[s - 1] == Tok::Star && states.contains(&(s - 1))))
        .collect();
    Some(Suffix::From {
        toks: glob.toks,
        starts: starts.into(),
    })
}

/// The compiled effective permissions of one principal inside one tenant: its stored policies
/// and, optionally, the session policy of its token. Immutable, `Send + Sync`; share it in an
/// `Arc` and rebuild it when policies change.
#[derive(Debug, Clone)]
pub struct Grants {
    tenant: TenantId,
    stored: Compiled,
    session: Option<Compiled>,
}

impl Grants {
    /// Compiles `stored` (all documents attached to the principal, or named by its token) and the
    /// optional session policy for `tenant`. Cannot fail: documents are validated when parsed.
    pub fn new(
        tenant: &TenantId,
        stored: &[&PolicyDocument],
        session: Option<&PolicyDocument>,
    ) -> Grants {
        Grants {
            tenant: tenant.clone(),
            stored: Compiled::new(tenant, stored),
            session: session.map(|s| Compiled::new(tenant, &[s])),
        }
    }

    /// The tenant these grants are bound to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Decides `action` on the resource `name` of this tenant (the tenant's own view of a topic,
    /// group or transactional id; ignored for cluster actions). No allocation.
    pub fn decide(&self, action: Action, name: &str) -> Decision {
        let name = if action.resource_kind() == ResourceKind::Cluster {
            ""
        } else {
            name
        };
        let stored = self.stored.decide(action, name);
        let Some(session) = &self.session else {
            return stored;
        };
        if stored == Decision::ExplicitDeny {
            return stored;
        }
        match (stored, session.decide(action, name)) {
            (_, Decision::ExplicitDeny) => Decision::ExplicitDeny,
            (Decision::Allow, Decision::Allow) => Decision::Allow,
            _ => Decision::ImplicitDeny,
        }
    }

    /// `decide(action, name) == Decision::Allow`.
    pub fn allows(&self, action: Action, name: &str) -> bool {
        self.decide(action, name) == Decision::Allow
    }

    /// Like [`Grants::decide`] for a resource of `tenant`: a resource of any other tenant is
    /// never allowed ([`Decision::ImplicitDeny`]), whatever the patterns say.
    pub fn decide_resource(&self, action: Action, tenant: &TenantId, name: &str) -> Decision {
        if tenant != &self.tenant {
            return Decision::ImplicitDeny;
        }
        self.decide(action, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant(s: &str) -> TenantId {
        s.parse().unwrap()
    }

    fn doc(v: Value) -> PolicyDocument {
        PolicyDocument::from_value(v).unwrap()
    }

    fn stmt(effect: &str, action: Value, resource: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": effect, "Action": action, "Resource": resource}]})
    }

    fn err(v: Value) -> String {
        PolicyDocument::from_value(v).unwrap_err().to_string()
    }

    #[test]
    fn actions_table_is_consistent() {
        for (i, a) in Action::ALL.iter().enumerate() {
            assert_eq!(a.index(), i);
            assert!(a.name().starts_with("kafka-cluster:"));
            assert_eq!(a.name(), format!("kafka-cluster:{}", a.short_name()));
            assert_eq!(format!("{a:?}"), a.short_name());
        }
        assert_eq!(Action::WriteData.name(), "kafka-cluster:WriteData");
        assert_eq!(Action::Connect.resource_kind(), ResourceKind::Cluster);
        assert_eq!(
            Action::WriteDataIdempotently.resource_kind(),
            ResourceKind::Cluster
        );
        assert_eq!(
            Action::DescribeTopicDynamicConfiguration.resource_kind(),
            ResourceKind::Topic
        );
        assert_eq!(Action::AlterGroup.resource_kind(), ResourceKind::Group);
        assert_eq!(
            Action::AlterTransactionalId.resource_kind(),
            ResourceKind::TransactionalId
        );
        assert_eq!(
            ResourceKind::TransactionalId.arn(&tenant("acme"), "tx"),
            "arn:sluice:kafka:::transactional-id/acme/tx"
        );
        assert_eq!(
            ResourceKind::Cluster.arn(&tenant("acme"), "ignored"),
            "arn:sluice:kafka:::cluster/acme"
        );
    }

    fn mask_of(pattern: &str) -> Vec<Action> {
        let d = doc(stmt("Allow", json!(pattern), json!("*")));
        Action::ALL
            .into_iter()
            .filter(|a| d.statements()[0].matches_action(*a))
            .collect()
    }

    #[test]
    fn action_globs() {
        use Action::*;
        assert_eq!(
            mask_of("kafka-cluster:*Topic"),
            vec![CreateTopic, DescribeTopic, AlterTopic, DeleteTopic]
        );
        assert_eq!(mask_of("kafka-cluster:*").len(), 18);
        assert_eq!(mask_of("KAFKA-CLUSTER:writedata"), vec![WriteData]);
        assert_eq!(
            mask_of("kafka-cluster:WriteData*"),
            vec![WriteDataIdempotently, WriteData]
        );
        assert_eq!(
            mask_of("kafka-cluster:?lter*"),
            vec![
                AlterTopic,
                AlterTopicDynamicConfiguration,
                AlterGroup,
                AlterTransactionalId,
                AlterClusterDynamicConfiguration
            ]
        );
        assert_eq!(
            mask_of("kafka-cluster:*TopicDynamicConfiguration"),
            vec![
                DescribeTopicDynamicConfiguration,
                AlterTopicDynamicConfiguration
            ]
        );
        assert_eq!(
            mask_of("kafka-cluster:Describe*"),
            vec![
                DescribeCluster,
                DescribeTopic,
                DescribeTopicDynamicConfiguration,
                DescribeGroup,
                DescribeTransactionalId,
                DescribeClusterDynamicConfiguration
            ]
        );
    }

    #[test]
    fn parse_accepts_aws_shapes() {
        // Single statement object, single-string action and resource, optional Sid.
        let d = PolicyDocument::parse(
            r#"{"Version":"2012-10-17","Statement":{"Sid":"one","Effect":"Allow","Action":"kafka-cluster:Connect","Resource":"arn:sluice:kafka:::cluster/acme"}}"#,
        )
        .unwrap();
        assert_eq!(d.statements().len(), 1);
        assert_eq!(d.statements()[0].sid(), Some("one"));
        assert_eq!(d.statements()[0].effect(), Effect::Allow);
        assert_eq!(d.statements()[0].actions(), ["kafka-cluster:Connect"]);
        assert_eq!(
            d.statements()[0].resources(),
            ["arn:sluice:kafka:::cluster/acme"]
        );
        // Serializes back in array form and parses to the same document.
        let back = PolicyDocument::parse(&d.to_json()).unwrap();
        assert_eq!(back, d);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            json!({"Version":"2012-10-17","Statement":[{"Sid":"one","Effect":"Allow","Action":["kafka-cluster:Connect"],"Resource":["arn:sluice:kafka:::cluster/acme"]}]})
        );
        let via_serde: PolicyDocument = serde_json::from_value(v).unwrap();
        assert_eq!(via_serde, d);
        // serde's Deserialize applies the same validation.
        let bad: Result<PolicyDocument, _> =
            serde_json::from_value(stmt("Allow", json!("kafka-cluster:Foo"), json!("*")));
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("unknown action kafka-cluster:Foo"));
    }

    #[test]
    fn error_messages_name_the_field() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), "(document): expected a JSON object"),
            (json!({"Statement": []}), "Version: missing"),
            (
                json!({"Version": "2008-10-17", "Statement": []}),
                "Version: unsupported version \"2008-10-17\"; use \"2012-10-17\"",
            ),
            (json!({"Version": "2012-10-17"}), "Statement: missing"),
            (
                json!({"Version": "2012-10-17", "Statement": []}),
                "Statement: must not be empty",
            ),
            (
                json!({"Version": "2012-10-17", "Statement": "x"}),
                "Statement: expected an object or an array of objects",
            ),
            (
                json!({"Version": "2012-10-17", "Id": "x", "Statement": []}),
                "(document): unknown field \"Id\"",
            ),
            (
                stmt("Permit", json!("kafka-cluster:Connect"), json!("*")),
                "Statement[0].Effect: unknown effect \"Permit\"",
            ),
            (
                stmt("Allow", json!([]), json!("*")),
                "Statement[0].Action: must not be empty",
            ),
            (
                stmt("Allow", json!("kafka-cluster:Connect"), json!([])),
                "Statement[0].Resource: must not be empty",
            ),
            (
                stmt("Allow", json!(["kafka-cluster:Connect", 3]), json!("*")),
                "Statement[0].Action[1]: expected a string",
            ),
            (
                stmt("Allow", json!("kafka-cluster:Foo"), json!("*")),
                "Statement[0].Action: unknown action kafka-cluster:Foo",
            ),
            (
                stmt(
                    "Allow",
                    json!(["kafka-cluster:Connect", "kafka-cluster:AlterCluster"]),
                    json!("*"),
                ),
                "Statement[0].Action[1]: unknown action kafka-cluster:AlterCluster (not supported",
            ),
            (
                stmt("Allow", json!("s3:GetObject"), json!("*")),
                "Statement[0].Action: unknown action s3:GetObject; actions are kafka-cluster:<name>",
            ),
            (
                stmt("Allow", json!("*"), json!("*")),
                "Statement[0].Action: unknown action *;",
            ),
            (
                stmt(
                    "Allow",
                    json!("kafka-cluster:*"),
                    json!(["*", "arn:aws:kafka:us-east-1:1:topic/x/y/z"]),
                ),
                "Statement[0].Resource[1]: invalid resource arn:aws:kafka:us-east-1:1:topic/x/y/z: resources are",
            ),
            (
                stmt(
                    "Allow",
                    json!("kafka-cluster:*"),
                    json!("arn:sluice:kafka:::topics/acme/x"),
                ),
                "Statement[0].Resource: invalid resource arn:sluice:kafka:::topics/acme/x: the resource type must be",
            ),
            (
                stmt(
                    "Allow",
                    json!("kafka-cluster:*"),
                    json!("arn:sluice:kafka:::cluster"),
                ),
                "Statement[0].Resource: invalid resource arn:sluice:kafka:::cluster: the resource type",
            ),
        ];
        for (v, want) in cases {
            let got = err(v.clone());
            assert!(got.starts_with(want), "for {v}: got {got:?}, want {want:?}");
        }
        for field in ["NotAction", "NotResource", "Principal", "Condition"] {
            let mut v = stmt("Allow", json!("kafka-cluster:Connect"), json!("*"));
            v["Statement"][0][field] = json!("x");
            assert_eq!(
                err(v),
                format!("Statement[0]: {field} is not supported"),
                "{field}"
            );
        }
        let mut v = stmt("Allow", json!("kafka-cluster:Connect"), json!("*"));
        v["Statement"][0]["Colour"] = json!("x");
        assert_eq!(err(v), "Statement[0]: unknown field \"Colour\"");
        let mut v = stmt("Allow", json!("kafka-cluster:Connect"), json!("*"));
        v["Statement"] = json!([v["Statement"][0].clone(), v["Statement"][0].clone(), {"Effect": "Deny", "Action": "kafka-cluster:Foo", "Resource": "*"}]);
        assert_eq!(
            err(v),
            "Statement[2].Action: unknown action kafka-cluster:Foo"
        );
        assert!(PolicyDocument::parse("{")
            .unwrap_err()
            .to_string()
            .starts_with("policy document is not valid JSON"));
    }

    #[test]
    fn wildcard_resource_types_are_accepted() {
        for r in [
            "*",
            "arn:sluice:kafka:::*",
            "arn:sluice:kafka:::t*",
            "arn:sluice:kafka:::?roup/acme/*",
            "arn:sluice:kafka:::topic/*",
            "arn:sluice:kafka:::cluster/acme",
            "arn:sluice:kafka:::transactional-id/acme/tx-*",
        ] {
            PolicyDocument::from_value(stmt("Allow", json!("kafka-cluster:*"), json!(r)))
                .unwrap_or_else(|e| panic!("{r}: {e}"));
        }
    }

    #[test]
    fn limits() {
        let one = json!({"Effect": "Allow", "Action": "kafka-cluster:Connect", "Resource": "*"});
        let v = json!({"Version": "2012-10-17", "Statement": vec![one.clone(); MAX_STATEMENTS]});
        assert!(PolicyDocument::from_value(v).is_ok());
        let v = json!({"Version": "2012-10-17", "Statement": vec![one; MAX_STATEMENTS + 1]});
        assert_eq!(err(v), "Statement: 101 statements; the limit is 100");
        let big = "a".repeat(MAX_DOCUMENT_BYTES);
        let v = stmt(
            "Allow",
            json!("kafka-cluster:*"),
            json!(format!("arn:sluice:kafka:::topic/acme/{big}")),
        );
        assert!(err(v.clone()).starts_with("policy document is 20"));
        assert!(PolicyDocument::parse(&v.to_string())
            .unwrap_err()
            .to_string()
            .contains("the limit is 20480 bytes"));
    }

    /// The MSK producer/consumer/admin policies of the notes, in sluice ARNs.
    #[test]
    fn msk_example_policies() {
        let acme = tenant("acme");
        let producer = doc(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["kafka-cluster:Connect", "kafka-cluster:WriteDataIdempotently"], "Resource": "arn:sluice:kafka:::cluster/acme"},
            {"Effect": "Allow", "Action": ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"], "Resource": "arn:sluice:kafka:::topic/acme/orders*"},
            {"Effect": "Allow", "Action": ["kafka-cluster:DescribeTransactionalId", "kafka-cluster:AlterTransactionalId"], "Resource": "arn:sluice:kafka:::transactional-id/acme/orders-tx-*"}
        ]}));
        let g = Grants::new(&acme, &[&producer], None);
        assert!(g.allows(Action::Connect, ""));
        assert!(g.allows(Action::WriteDataIdempotently, "whatever"));
        assert!(!g.allows(Action::DescribeCluster, ""));
        assert!(g.allows(Action::WriteData, "orders"));
        assert!(g.allows(Action::WriteData, "orders.eu"));
        assert!(g.allows(Action::DescribeTopic, "orders-v2"));
        assert!(!g.allows(Action::ReadData, "orders"));
        assert!(
            !g.allows(Action::WriteData, "Orders"),
            "resources are case-sensitive"
        );
        assert!(!g.allows(Action::WriteData, "payments"));
        assert!(g.allows(Action::AlterTransactionalId, "orders-tx-1"));
        assert!(!g.allows(Action::AlterTransactionalId, "orders-tx"));
        assert_eq!(
            g.decide(Action::DeleteTopic, "orders"),
            Decision::ImplicitDeny
        );

        let consumer = doc(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "kafka-cluster:Connect", "Resource": "arn:sluice:kafka:::cluster/acme"},
            {"Effect": "Allow", "Action": ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"], "Resource": "arn:sluice:kafka:::topic/acme/*"},
            {"Effect": "Allow", "Action": ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"], "Resource": "arn:sluice:kafka:::group/acme/billing-?"}
        ]}));
        let g = Grants::new(&acme, &[&consumer], None);
        assert!(g.allows(Action::ReadData, "anything/with/slashes"));
        assert!(g.allows(Action::AlterGroup, "billing-1"));
        assert!(!g.allows(Action::AlterGroup, "billing-12"));
        assert!(!g.allows(Action::AlterGroup, "billing-"));
        assert!(!g.allows(Action::DeleteGroup, "billing-1"));
        assert!(!g.allows(Action::WriteData, "x"));

        let admin = doc(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "kafka-cluster:*", "Resource": "*"}
        ]}));
        let g = Grants::new(&acme, &[&admin], None);
        for a in Action::ALL {
            assert!(g.allows(a, "x"), "{a}");
            assert_eq!(
                g.decide_resource(a, &tenant("other"), "x"),
                Decision::ImplicitDeny
            );
        }
    }

    #[test]
    fn tenant_prefix_cannot_leak_to_a_longer_tenant() {
        let d = doc(stmt(
            "Allow",
            json!("kafka-cluster:*"),
            json!([
                "arn:sluice:kafka:::topic/acme/*",
                "arn:sluice:kafka:::cluster/acme"
            ]),
        ));
        let g = Grants::new(&tenant("acme-dev"), &[&d], None);
        for a in Action::ALL {
            assert_eq!(g.decide(a, "x"), Decision::ImplicitDeny, "{a}");
        }
        let g = Grants::new(&tenant("acme"), &[&d], None);
        assert!(g.allows(Action::ReadData, "x"));
        assert!(g.allows(Action::Connect, ""));
        // The group action is not covered by a topic ARN.
        assert!(!g.allows(Action::DescribeGroup, "x"));
    }

    #[test]
    fn pattern_ending_at_the_prefix_matches_only_the_empty_name() {
        let d = doc(stmt(
            "Allow",
            json!("kafka-cluster:*"),
            json!("arn:sluice:kafka:::transactional-id/t1/"),
        ));
        let g = Grants::new(&tenant("t1"), &[&d], None);
        assert!(g.allows(Action::DescribeTransactionalId, ""));
        assert!(!g.allows(Action::DescribeTransactionalId, "a"));
    }

    #[test]
    fn names_are_literal() {
        let d = doc(stmt(
            "Allow",
            json!("kafka-cluster:*Group"),
            json!("arn:sluice:kafka:::group/acme/a*b/c"),
        ));
        let g = Grants::new(&tenant("acme"), &[&d], None);
        assert!(g.allows(Action::AlterGroup, "a*b/c"));
        assert!(g.allows(Action::AlterGroup, "aXYZb/c"));
        assert!(g.allows(Action::AlterGroup, "a/b/c"));
        assert!(!g.allows(Action::AlterGroup, "a*b/d"));
        let d = doc(stmt(
            "Allow",
            json!("kafka-cluster:*Group"),
            json!("arn:sluice:kafka:::group/acme/__x"),
        ));
        let g = Grants::new(&tenant("acme"), &[&d], None);
        assert!(g.allows(Action::AlterGroup, "__x"));
        assert!(!g.allows(Action::AlterGroup, "*"));
        assert!(!g.allows(Action::AlterGroup, "?_x"));
    }

    #[test]
    fn wildcard_spanning_the_tenant() {
        // `*` runs across `/`, so one pattern can cover type, tenant and name.
        let d = doc(stmt(
            "Allow",
            json!("kafka-cluster:*"),
            json!("arn:sluice:kafka:::*e/acme/x*"),
        ));
        let g = Grants::new(&tenant("acme"), &[&d], None);
        // `*` would have to end in "e", but "topic/acme/x" has "c" before "/acme/x".
        assert!(!g.allows(Action::ReadData, "x"));
        // "cluster/acme" has no "/x" after the tenant.
        assert!(!g.allows(Action::Connect, ""));
        // But a name that itself contains "e/acme/x" does match.
        assert!(g.allows(Action::ReadData, "ne/acme/x"));
        let d = doc(stmt(
            "Allow",
            json!("kafka-cluster:*"),
            json!("arn:sluice:kafka:::*/acme*"),
        ));
        let g = Grants::new(&tenant("acme"), &[&d], None);
        assert!(g.allows(Action::Connect, ""));
        assert!(g.allows(Action::ReadData, ""));
        assert!(g.allows(Action::AlterTransactionalId, "t"));
    }

    #[test]
    fn deny_beats_allow_and_documents_combine() {
        let acme = tenant("acme");
        let allow = doc(stmt("Allow", json!("kafka-cluster:*"), json!("*")));
        let deny = doc(stmt(
            "Deny",
            json!("kafka-cluster:*Topic"),
            json!("arn:sluice:kafka:::topic/acme/secret-*"),
        ));
        let g = Grants::new(&acme, &[&allow, &deny], None);
        assert_eq!(
            g.decide(Action::DeleteTopic, "secret-1"),
            Decision::ExplicitDeny
        );
        assert_eq!(g.decide(Action::ReadData, "secret-1"), Decision::Allow);
        assert_eq!(g.decide(Action::DeleteTopic, "public"), Decision::Allow);
        let g = Grants::new(&acme, &[&deny], None);
        assert_eq!(
            g.decide(Action::DeleteTopic, "secret-1"),
            Decision::ExplicitDeny
        );
        assert_eq!(
            g.decide(Action::DeleteTopic, "public"),
            Decision::ImplicitDeny
        );
        let g = Grants::new(&acme, &[], None);
        assert_eq!(g.decide(Action::Connect, ""), Decision::ImplicitDeny);
    }

    #[test]
    fn session_policy_only_narrows() {
        let acme = tenant("acme");
        let stored = doc(stmt(
            "Allow",
            json!(["kafka-cluster:Connect", "kafka-cluster:*Data"]),
            json!("*"),
        ));
        let session = doc(stmt(
            "Allow",
            json!([
                "kafka-cluster:Connect",
                "kafka-cluster:ReadData",
                "kafka-cluster:DeleteTopic"
            ]),
            json!("*"),
        ));
        let g = Grants::new(&acme, &[&stored], Some(&session));
        assert!(g.allows(Action::Connect, ""));
        assert!(g.allows(Action::ReadData, "t"));
        assert_eq!(g.decide(Action::WriteData, "t"), Decision::ImplicitDeny);
        // The session cannot add what the stored set lacks.
        assert_eq!(g.decide(Action::DeleteTopic, "t"), Decision::ImplicitDeny);
        let session_deny = doc(stmt(
            "Deny",
            json!("kafka-cluster:ReadData"),
            json!("arn:sluice:kafka:::topic/acme/x"),
        ));
        let g = Grants::new(&acme, &[&stored], Some(&session_deny));
        assert_eq!(g.decide(Action::ReadData, "x"), Decision::ExplicitDeny);
        // A session policy with no Allow allows nothing.
        assert_eq!(g.decide(Action::ReadData, "y"), Decision::ImplicitDeny);
        let stored_deny = doc(stmt("Deny", json!("kafka-cluster:ReadData"), json!("*")));
        let g = Grants::new(&acme, &[&stored, &stored_deny], Some(&session));
        assert_eq!(g.decide(Action::ReadData, "x"), Decision::ExplicitDeny);
    }

    #[test]
    fn glob_matcher() {
        let cases = [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbb", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*a*a*", "banana", true),
            ("*x*", "banana", false),
            ("?", "é", true),
            ("a**b", "ab", true),
            ("a*b*c", "abxbc", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(Glob::new(p).matches(s), want, "{p:?} vs {s:?}");
        }
    }
}
