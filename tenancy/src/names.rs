//! Name mapping between a tenant's view and the shared pool (SPEC §4).
//!
//! A tenant's topic `orders` is the pool topic `acme.orders`; groups and transactional ids
//! get the same prefix. Tenant ids cannot contain `.`, so the prefix `acme.` is unambiguous:
//! no other tenant's pool names start with it (tenant `acme-x` has prefix `acme-x.`).
//! Pool names without the prefix (other tenants, `__consumer_offsets`, `__sluice_*`) have no
//! tenant-view name at all: [`Namespace::from_pool`] returns `None` and the gateway drops them.

use std::borrow::Cow;

use crate::TenantId;

/// Kafka's longest legal topic name.
const MAX_TOPIC_LEN: usize = 249;

/// Why a tenant-supplied name cannot be mapped. The gateway answers these with the API's
/// own "invalid name" code (INVALID_TOPIC_EXCEPTION, INVALID_GROUP_ID, INVALID_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty names are never valid.
    #[error("the name is empty")]
    Empty,
    /// The prefixed name would exceed Kafka's 249-character topic limit.
    #[error("topic names of this tenant may have at most {max} characters")]
    TooLong {
        /// The tenant's limit: 249 minus its prefix.
        max: usize,
    },
    /// Kafka topics may use only ASCII letters, digits, `.`, `_` and `-`.
    #[error("topic names may contain only ASCII letters, digits, '.', '_' and '-'")]
    IllegalCharacters,
    /// `.` and `..` are not topics; `__` starts the pool's internal names.
    #[error("names starting with '__' (and the names '.' and '..') are reserved")]
    Reserved,
    /// A regex whose parentheses, classes or escapes could close the tenant's wrapper
    /// and match other tenants' names.
    #[error("the regular expression has unbalanced parentheses, an unterminated class or escape, or \\Q..\\E quoting")]
    UnconfinableRegex,
}

/// One tenant's namespace in the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    tenant: TenantId,
    /// `<tenant>.`, the prefix of every pool name of this tenant.
    prefix: String,
}

impl Namespace {
    /// The namespace of `tenant`.
    pub fn new(tenant: TenantId) -> Self {
        let prefix = format!("{tenant}.");
        Self { tenant, prefix }
    }

    /// The tenant this namespace belongs to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// `<tenant>.`
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The longest topic name this tenant may use.
    pub fn max_topic_len(&self) -> usize {
        MAX_TOPIC_LEN - self.prefix.len()
    }

    /// The pool name of a tenant topic. Fails for names Kafka would refuse, for reserved
    /// names and for names too long once prefixed.
    pub fn topic_to_pool(&self, name: &str) -> Result<String, NameError> {
        check_common(name)?;
        if name == "." || name == ".." {
            return Err(NameError::Reserved);
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            return Err(NameError::IllegalCharacters);
        }
        if name.len() > self.max_topic_len() {
            return Err(NameError::TooLong { max: self.max_topic_len() });
        }
        Ok(self.prefixed(name))
    }

    /// The pool name of a tenant group id or transactional id. Kafka puts no character
    /// limits on these; only empty and reserved names are refused.
    pub fn id_to_pool(&self, name: &str) -> Result<String, NameError> {
        check_common(name)?;
        Ok(self.prefixed(name))
    }

    /// The tenant-view name of a pool name, or `None` when it is not this tenant's.
    pub fn from_pool<'a>(&self, pool_name: &'a str) -> Option<&'a str> {
        pool_name.strip_prefix(self.prefix.as_str()).filter(|rest| !rest.is_empty())
    }

    /// Whether a pool name belongs to this tenant.
    pub fn owns(&self, pool_name: &str) -> bool {
        self.from_pool(pool_name).is_some()
    }

    /// A tenant's topic regex (KIP-848 `subscribed_topic_regex`, RE2J syntax, matched
    /// against whole names) as a pool regex that can only match this tenant's topics:
    /// `acme\.(?:<re>)`. A leading `^` and a trailing `$` are dropped first, since they
    /// would anchor in the middle of the prefixed name and never match. A regex that could
    /// close the wrapper (`x)|(.*` would match the whole pool) is refused.
    pub fn regex_to_pool(&self, regex: &str) -> Result<String, NameError> {
        if !regex_confinable(regex) {
            return Err(NameError::UnconfinableRegex);
        }
        Ok(format!("{}\\.(?:{})", self.tenant, without_anchors(regex)))
    }

    /// The tenant's view of a pool regex made by [`Namespace::regex_to_pool`]; any other
    /// regex is returned unchanged.
    pub fn regex_from_pool<'a>(&self, regex: &'a str) -> &'a str {
        regex
            .strip_prefix(self.tenant.as_str())
            .and_then(|r| r.strip_prefix("\\.(?:"))
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or(regex)
    }

    /// A broker error message with this tenant's pool names turned back into its own
    /// names: every occurrence of the prefix that starts a name (at the start, or after a
    /// character that cannot be part of a name) is removed.
    pub fn scrub<'a>(&self, message: &'a str) -> Cow<'a, str> {
        if !message.contains(self.prefix.as_str()) {
            return Cow::Borrowed(message);
        }
        let mut out = String::with_capacity(message.len());
        let mut rest = message;
        let mut prev: Option<char> = None;
        while let Some(at) = rest.find(self.prefix.as_str()) {
            let before = rest[..at].chars().next_back().or(prev);
            out.push_str(&rest[..at]);
            let starts_name = before.is_none_or(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
            if !starts_name {
                out.push_str(&self.prefix);
            }
            prev = self.prefix.chars().next_back();
            rest = &rest[at + self.prefix.len()..];
        }
        out.push_str(rest);
        Cow::Owned(out)
    }

    fn prefixed(&self, name: &str) -> String {
        let mut s = String::with_capacity(self.prefix.len() + name.len());
        s.push_str(&self.prefix);
        s.push_str(name);
        s
    }
}

/// Whether a tenant regex can be wrapped as `<tenant>\.(?:<re>)` without escaping the
/// group: parentheses balance outside character classes and escapes, and nothing ends
/// in a dangling `\`. Conservative for RE2J (the broker's KIP-848 engine): `\Q…\E`
/// quoting and `[` inside a class other than `[:name:]` are refused rather than parsed.
fn regex_confinable(re: &str) -> bool {
    let b = re.as_bytes();
    let mut i = 0;
    let mut depth = 0i32;
    let escape_ok = |i: usize| i + 1 < b.len() && !matches!(b[i + 1], b'Q' | b'E');
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if !escape_ok(i) {
                    return false;
                }
                i += 2;
            }
            b'[' => {
                i += 1;
                if b.get(i) == Some(&b'^') {
                    i += 1;
                }
                if b.get(i) == Some(&b']') {
                    i += 1;
                }
                loop {
                    match b.get(i) {
                        None => return false,
                        Some(b'\\') => {
                            if !escape_ok(i) {
                                return false;
                            }
                            i += 2;
                        }
                        Some(b'[') => {
                            // Only a POSIX class `[:alpha:]`.
                            if b.get(i + 1) != Some(&b':') {
                                return false;
                            }
                            match re[i + 2..].find(":]") {
                                Some(end) if re[i + 2..i + 2 + end].bytes().all(|c| c.is_ascii_alphabetic()) => {
                                    i += 2 + end + 2
                                }
                                _ => return false,
                            }
                        }
                        Some(b']') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    depth == 0
}

/// `regex` without its `^`/`$` anchors (outside character classes and escapes). Only
/// called on regexes `regex_confinable` accepted, so classes and escapes are well formed.
fn without_anchors(regex: &str) -> String {
    let mut out = String::with_capacity(regex.len());
    let mut chars = regex.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(next) = chars.next() {
                    out.push(next);
                }
                class_start = false;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push(c);
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push(']');
                    chars.next();
                }
                continue;
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                // A POSIX class `[:alpha:]` inside a class.
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
                continue;
            }
            ']' if in_class && !class_start => in_class = false,
            '^' | '$' if !in_class => continue,
            _ => {}
        }
        class_start = false;
        out.push(c);
    }
    out
}

fn check_common(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.starts_with("__") {
        return Err(NameError::Reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(t: &str) -> Namespace {
        Namespace::new(t.parse().unwrap())
    }

    #[test]
    fn topics_map_both_ways() {
        let acme = ns("acme");
        assert_eq!(acme.topic_to_pool("orders").unwrap(), "acme.orders");
        assert_eq!(acme.from_pool("acme.orders"), Some("orders"));
        // A tenant may use dots itself; only the first prefix is stripped.
        assert_eq!(acme.topic_to_pool("acme.x").unwrap(), "acme.acme.x");
        assert_eq!(acme.from_pool("acme.acme.x"), Some("acme.x"));
    }

    #[test]
    fn other_tenants_and_internal_names_are_invisible() {
        let acme = ns("acme");
        for pool in ["acme-x.orders", "acmeorders", "acme.", "__consumer_offsets", "__sluice_tenants", "bcme.acme.x", ""] {
            assert_eq!(acme.from_pool(pool), None, "{pool}");
        }
        assert_eq!(ns("acme-x").from_pool("acme.orders"), None);
    }

    #[test]
    fn bad_names_are_refused() {
        let acme = ns("acme");
        assert_eq!(acme.topic_to_pool(""), Err(NameError::Empty));
        assert_eq!(acme.topic_to_pool("__consumer_offsets"), Err(NameError::Reserved));
        assert_eq!(acme.topic_to_pool("."), Err(NameError::Reserved));
        assert_eq!(acme.topic_to_pool(".."), Err(NameError::Reserved));
        assert_eq!(acme.topic_to_pool("a b"), Err(NameError::IllegalCharacters));
        assert_eq!(acme.topic_to_pool("a/b"), Err(NameError::IllegalCharacters));
        assert_eq!(acme.id_to_pool("__g"), Err(NameError::Reserved));
        assert_eq!(acme.id_to_pool("any thing/goes*"), Ok("acme.any thing/goes*".into()));
    }

    #[test]
    fn topic_length_leaves_room_for_the_prefix() {
        let acme = ns("acme");
        let max = 249 - "acme.".len();
        assert_eq!(acme.max_topic_len(), max);
        assert!(acme.topic_to_pool(&"a".repeat(max)).is_ok());
        assert_eq!(acme.topic_to_pool(&"a".repeat(max + 1)), Err(NameError::TooLong { max }));
    }

    #[test]
    fn regexes_stay_inside_the_tenant() {
        let acme = ns("acme");
        assert_eq!(acme.regex_to_pool("orders.*").unwrap(), "acme\\.(?:orders.*)");
        assert_eq!(acme.regex_to_pool("^orders.*$").unwrap(), "acme\\.(?:orders.*)");
        assert_eq!(acme.regex_to_pool("a|b").unwrap(), "acme\\.(?:a|b)");
        assert_eq!(acme.regex_to_pool("cost\\$").unwrap(), "acme\\.(?:cost\\$)");
        assert_eq!(acme.regex_from_pool("acme\\.(?:a|b)"), "a|b");
        // librdkafka wraps every regex in parentheses.
        assert_eq!(acme.regex_to_pool("(^.*)").unwrap(), "acme\\.(?:(.*))");
        assert_eq!(acme.regex_to_pool("(^a$|^b$)").unwrap(), "acme\\.(?:(a|b))");
        assert_eq!(acme.regex_to_pool("[$^]x\\^").unwrap(), "acme\\.(?:[$^]x\\^)");
        assert_eq!(acme.regex_to_pool("[^^]").unwrap(), "acme\\.(?:[^^])");
        assert_eq!(acme.regex_to_pool("[]^]").unwrap(), "acme\\.(?:[]^])");
        for escape in ["x)|(.*", ")", "(", "[)]|x)|(.*", "a\\", "\\Q)\\E|.*", "[a"] {
            assert_eq!(acme.regex_to_pool(escape), Err(NameError::UnconfinableRegex), "{escape}");
        }
        assert!(acme.regex_to_pool("[()]+").is_ok());
        assert!(acme.regex_to_pool("(a|b)\\)").is_ok());
    }

    #[test]
    fn scrub_removes_prefixes_that_start_names() {
        let acme = ns("acme");
        assert_eq!(acme.scrub("Topic 'acme.orders' already exists."), "Topic 'orders' already exists.");
        assert_eq!(acme.scrub("acme.orders"), "orders");
        assert_eq!(acme.scrub("Topic acme.acme.x"), "Topic acme.x");
        assert_eq!(acme.scrub("nothing here"), "nothing here");
        assert_eq!(acme.scrub("xacme.y, acme.z"), "xacme.y, z");
    }
}
