//! What a run saw: the events injected, what each workload saw, the fault counters, the facts
//! they add up to, and the expectations checked against them. Rendered as text for people
//! (`scenario run`) or JSON for programs (`--json`).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

use super::file::{Expectation, show_duration};

/// One observed value, named `<workload>.<what>` or `faults.<label|total>.<what>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Fact {
    /// Text (a status, an output, a digest).
    Text(String),
    /// A count or a duration in seconds.
    Number(f64),
    /// A yes/no outcome.
    Bool(bool),
}

impl From<&str> for Fact {
    fn from(text: &str) -> Fact {
        Fact::Text(text.to_owned())
    }
}

impl From<String> for Fact {
    fn from(text: String) -> Fact {
        Fact::Text(text)
    }
}

impl From<u64> for Fact {
    fn from(n: u64) -> Fact {
        Fact::Number(n as f64)
    }
}

impl From<f64> for Fact {
    fn from(n: f64) -> Fact {
        Fact::Number(n)
    }
}

impl From<bool> for Fact {
    fn from(b: bool) -> Fact {
        Fact::Bool(b)
    }
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::Text(text) => write!(f, "{text:?}"),
            Fact::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => write!(f, "{}", *n as i64),
            Fact::Number(n) => write!(f, "{n:.3}"),
            Fact::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Facts by name, sorted.
pub type Facts = BTreeMap<String, Fact>;

/// A timeline step as it happened.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// When it was due, from the start of the timeline.
    pub at: String,
    /// What it did, in words.
    pub action: String,
    /// What came of it (`f-2`, `proxy down`), or why it failed.
    pub outcome: String,
    /// Whether it failed (the run then fails).
    pub failed: bool,
}

/// What one workload saw.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadReport {
    /// Its name.
    pub name: String,
    /// `send-command`, `shell`, `port-transfer`, `api-storm`.
    pub kind: &'static str,
    /// Lines saying what happened.
    pub lines: Vec<String>,
}

/// A fault rule's counters at the end (or when it last was seen, for rules that removed
/// themselves or were removed).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleLine {
    /// `f-1`, …
    pub id: String,
    /// The step's label, if any.
    pub label: Option<String>,
    /// The rule as JSON.
    pub rule: serde_json::Value,
    /// Frames or requests it looked at.
    pub matched: u64,
    /// How often it acted.
    pub injected: u64,
}

/// An expectation and its outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checked {
    /// The expectation in words (`run.status == "Success"`).
    pub expectation: String,
    /// The fact's value, if there is one.
    pub actual: Option<Fact>,
    /// Whether it held.
    pub passed: bool,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The scenario's name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The seed used.
    pub seed: u64,
    /// The fleet's instance ids.
    pub instances: Vec<String>,
    /// Timeline events, in order.
    pub timeline: Vec<Event>,
    /// Workloads, in file order.
    pub workloads: Vec<WorkloadReport>,
    /// Fault rules, in the order they were added.
    pub faults: Vec<RuleLine>,
    /// Everything injected, by action (the fault engine's totals).
    pub fault_totals: BTreeMap<String, u64>,
    /// Every fact.
    pub facts: Facts,
    /// The expectations.
    pub expectations: Vec<Checked>,
    /// Whether the run did not time out and no step failed.
    pub completed: bool,
    /// The run's wall time in seconds.
    pub seconds: f64,
    /// Every expectation held, every step worked and the run completed.
    pub passed: bool,
}

/// Checks `expectation` against `facts`.
pub fn check(expectation: &Expectation, facts: &Facts) -> Checked {
    let actual = facts.get(&expectation.fact).cloned();
    let (words, passed) = if let Some(expected) = &expectation.equals {
        let expected = fact_of_toml(expected);
        (
            format!("== {expected}"),
            actual.as_ref().is_some_and(|a| same(a, &expected)),
        )
    } else if let Some(needle) = &expectation.contains {
        (
            format!("contains {needle:?}"),
            matches!(&actual, Some(Fact::Text(text)) if text.contains(needle.as_str())),
        )
    } else if let Some(min) = expectation.at_least {
        (
            format!(">= {}", Fact::Number(min)),
            matches!(actual, Some(Fact::Number(n)) if n >= min),
        )
    } else if let Some(max) = expectation.at_most {
        (
            format!("<= {}", Fact::Number(max)),
            matches!(actual, Some(Fact::Number(n)) if n <= max),
        )
    } else if let Some(other) = &expectation.same_as {
        let other_value = facts.get(other);
        (
            format!("== {other} ({})", show(other_value)),
            matches!((&actual, other_value), (Some(a), Some(b)) if same(a, b)),
        )
    } else {
        ("(no comparison)".to_owned(), false)
    };
    Checked {
        expectation: format!("{} {words}", expectation.fact),
        actual,
        passed,
    }
}

fn same(a: &Fact, b: &Fact) -> bool {
    match (a, b) {
        (Fact::Number(x), Fact::Number(y)) => (x - y).abs() < 1e-9,
        _ => a == b,
    }
}

fn show(fact: Option<&Fact>) -> String {
    fact.map_or_else(|| "missing".to_owned(), Fact::to_string)
}

fn fact_of_toml(value: &toml::Value) -> Fact {
    match value {
        toml::Value::String(s) => Fact::Text(s.clone()),
        toml::Value::Integer(n) => Fact::Number(*n as f64),
        toml::Value::Float(n) => Fact::Number(*n),
        toml::Value::Boolean(b) => Fact::Bool(*b),
        other => Fact::Text(format!("{other:?}")),
    }
}

/// The longest text fact shown in full in the text report; longer ones (outputs) are cut.
const SHOWN_TEXT: usize = 160;

impl Report {
    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "scenario {} (seed {})", self.name, self.seed);
        for line in self.description.lines().filter(|l| !l.trim().is_empty()) {
            let _ = writeln!(out, "  {}", line.trim());
        }
        let _ = writeln!(out, "fleet: {}", self.instances.join(", "));
        let _ = writeln!(out, "\ntimeline");
        if self.timeline.is_empty() {
            let _ = writeln!(out, "  (no events)");
        }
        for event in &self.timeline {
            let mark = if event.failed { "FAILED " } else { "" };
            let _ = writeln!(
                out,
                "  {:>8}  {}: {mark}{}",
                event.at, event.action, event.outcome
            );
        }
        let _ = writeln!(out, "\nfaults injected");
        for rule in &self.faults {
            let label = rule
                .label
                .as_deref()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}{label} {}: matched {}, injected {}",
                rule.id, rule.rule, rule.matched, rule.injected
            );
        }
        let totals: Vec<String> = self
            .fault_totals
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            out,
            "  totals: {}",
            if totals.is_empty() {
                "none".to_owned()
            } else {
                totals.join(", ")
            }
        );
        let _ = writeln!(out, "\nworkloads");
        for workload in &self.workloads {
            let _ = writeln!(out, "  {} ({})", workload.name, workload.kind);
            for line in &workload.lines {
                let _ = writeln!(out, "    {line}");
            }
        }
        let _ = writeln!(out, "\nfacts");
        for (name, fact) in &self.facts {
            let _ = writeln!(out, "  {name} = {}", shorten(fact));
        }
        let _ = writeln!(out, "\nexpectations");
        for checked in &self.expectations {
            let verdict = if checked.passed { "PASS" } else { "FAIL" };
            let actual = match (&checked.actual, checked.passed) {
                (_, true) => String::new(),
                (actual, false) => format!(" (actual: {})", show(actual.as_ref())),
            };
            let _ = writeln!(out, "  {verdict} {}{actual}", checked.expectation);
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", self.verdict());
        out
    }

    /// The last line: `PASSED …` or `FAILED: …` naming what failed.
    pub fn verdict(&self) -> String {
        let failed: Vec<&str> = self
            .expectations
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.expectation.as_str())
            .collect();
        let steps: Vec<String> = self
            .timeline
            .iter()
            .filter(|e| e.failed)
            .map(|e| format!("step at {} ({})", e.at, e.action))
            .collect();
        if self.passed {
            format!(
                "PASSED {}: {} expectations held in {}",
                self.name,
                self.expectations.len(),
                show_duration(std::time::Duration::from_secs_f64(self.seconds.max(0.0)))
            )
        } else {
            let mut why = Vec::new();
            if !self.completed {
                why.push("the run did not complete within its timeout".to_owned());
            }
            why.extend(steps);
            why.extend(failed.iter().map(|f| format!("expectation {f}")));
            format!("FAILED {}: {}", self.name, why.join("; "))
        }
    }
}

fn shorten(fact: &Fact) -> String {
    match fact {
        Fact::Text(text) if text.len() > SHOWN_TEXT => {
            let mut end = SHOWN_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{:?}… ({} bytes)", &text[..end], text.len())
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expectation(toml_text: &str) -> Expectation {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn every_comparison_checks() {
        let mut facts = Facts::new();
        facts.insert("run.status".into(), "Success".into());
        facts.insert("run.output".into(), "done\n".into());
        facts.insert("faults.total.drop".into(), 12u64.into());
        facts.insert("t.up-sent".into(), "ab".into());
        facts.insert("t.up-received".into(), "ab".into());
        facts.insert("t.ok".into(), true.into());
        let cases = [
            ("fact = \"run.status\"\nequals = \"Success\"", true),
            ("fact = \"run.status\"\nequals = \"Failed\"", false),
            ("fact = \"run.output\"\ncontains = \"done\"", true),
            ("fact = \"faults.total.drop\"\nat-least = 1", true),
            ("fact = \"faults.total.drop\"\nat-most = 5", false),
            ("fact = \"faults.total.drop\"\nequals = 12", true),
            ("fact = \"t.up-sent\"\nsame-as = \"t.up-received\"", true),
            ("fact = \"t.ok\"\nequals = true", true),
            ("fact = \"missing\"\nat-least = 0", false),
        ];
        for (text, expected) in cases {
            let checked = check(&expectation(text), &facts);
            assert_eq!(checked.passed, expected, "{text}: {checked:?}");
        }
    }
}
