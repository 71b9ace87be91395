//! Config reload on SIGHUP (issue 9): what a changed config file means for a running
//! gateway. The old and new files are compared section by section ([`plan`], pure), and
//! each change is either applied in place, applied by restarting only the background task
//! that owns the section, or reported as needing a process restart (the running value is
//! kept). A file that does not parse or validate changes nothing.
//!
//! | Section | On change |
//! |---|---|
//! | `[limits]` | applied: new connections get the new limits, per-IP limits at once |
//! | `[quotas]` | applied: every tenant's limiters are rebuilt at its next request |
//! | `[auth]` | applied: new issuers and mechanisms for new authentications and API calls; open sessions keep theirs until they re-authenticate |
//! | `listener.drain_timeout_ms` | applied |
//! | `[fleet]`, `[placement]`, `[metrics]` | their task is restarted with the new settings |
//! | anything else (`[listener]` ports and hosts, `[tls]`, `[admin]`, `[pool]`, `[store]`, `[usage]`, `[audit]`, `[issuer]`) | needs a restart: logged, running value kept |
//!
//! Listeners, the pool connection, the tenant store and the ledgers are not swapped under
//! running connections: a rolling restart (SIGTERM drains) is the way to change them.

use toml::Table;

/// A background task restarted when its section changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// `[fleet]`: quota sharing with the other instances.
    Fleet,
    /// `[placement]`: load reports and the rebalancer.
    Placement,
    /// `[metrics]`: the pool-side metrics poller.
    PoolMetrics,
}

impl Component {
    pub fn section(self) -> &'static str {
        match self {
            Component::Fleet => "fleet",
            Component::Placement => "placement",
            Component::PoolMetrics => "metrics",
        }
    }
}

/// What a reload does.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub limits: bool,
    pub quotas: bool,
    pub auth: bool,
    pub drain_timeout: bool,
    pub restart: Vec<Component>,
    /// Changed settings that need a process restart (section or `section.key`).
    pub needs_restart: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        *self == Plan::default()
    }
}

const LIVE_LISTENER_KEYS: &[&str] = &["drain_timeout_ms"];

/// Compares two parsed config files. A section absent from a file counts as empty, so
/// writing out a default explicitly shows as a change (harmless: it is re-applied).
pub fn plan(old: &Table, new: &Table) -> Plan {
    let empty = Table::new();
    let section = |t: &Table, name: &str| -> Table {
        match t.get(name) {
            Some(toml::Value::Table(s)) => s.clone(),
            Some(other) => {
                // Not a table: compared as a one-key table so a change still shows.
                let mut one = Table::new();
                one.insert(String::new(), other.clone());
                one
            }
            None => empty.clone(),
        }
    };
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let mut p = Plan::default();
    for name in names {
        let (a, b) = (section(old, name), section(new, name));
        if a == b {
            continue;
        }
        match name.as_str() {
            "limits" => p.limits = true,
            "quotas" => p.quotas = true,
            "auth" => p.auth = true,
            "fleet" => p.restart.push(Component::Fleet),
            "placement" => p.restart.push(Component::Placement),
            "metrics" => p.restart.push(Component::PoolMetrics),
            "listener" => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys.into_iter().filter(|k| a.get(*k) != b.get(*k)) {
                    if LIVE_LISTENER_KEYS.contains(&key.as_str()) {
                        p.drain_timeout = true;
                    } else {
                        p.needs_restart.push(format!("listener.{key}"));
                    }
                }
            }
            other => p.needs_restart.push(other.to_owned()),
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Table {
        text.parse().expect("test config")
    }

    const BASE: &str = r#"
[listener]
advertised_host = "127.0.0.1"
bootstrap_port = 9092
broker_port_base = 9092
auth = "none"
[pool]
bootstrap = ["127.0.0.1:29091"]
[limits]
max_frame_bytes = 1048576
"#;

    #[test]
    fn the_same_file_changes_nothing() {
        assert!(plan(&parse(BASE), &parse(BASE)).is_empty());
    }

    #[test]
    fn live_sections_are_applied_and_tasks_restarted() {
        let new = BASE.replace("max_frame_bytes = 1048576", "max_frame_bytes = 2048\n[quotas]\nproduce_bytes_per_sec = 1\n[fleet]\ninterval_ms = 250");
        let p = plan(&parse(BASE), &parse(&new));
        assert!(p.limits && p.quotas && !p.auth && !p.drain_timeout, "{p:?}");
        assert_eq!(p.restart, vec![Component::Fleet]);
        assert!(p.needs_restart.is_empty(), "{p:?}");
    }

    #[test]
    fn listener_ports_need_a_restart_but_the_drain_timeout_does_not() {
        let new = BASE.replace("bootstrap_port = 9092", "bootstrap_port = 9192\ndrain_timeout_ms = 5000");
        let p = plan(&parse(BASE), &parse(&new));
        assert!(p.drain_timeout);
        assert_eq!(p.needs_restart, vec!["listener.bootstrap_port".to_owned()]);
    }

    #[test]
    fn other_sections_need_a_restart_even_when_removed() {
        let new = BASE.replace("[pool]\nbootstrap = [\"127.0.0.1:29091\"]", "[pool]\nbootstrap = [\"127.0.0.1:29092\"]");
        let p = plan(&parse(&format!("{BASE}\n[audit]\nenabled = true")), &parse(&new));
        assert_eq!(p.needs_restart, vec!["audit".to_owned(), "pool".to_owned()]);
    }
}
