//! How many "ok"/"not ok" lines a check script prints, read from its text,
//! so that a test can require exactly that many: a section that vanished
//! (behind a condition, or a script that stopped early) then fails it.
//!
//! The scripts follow a few rules, which [`planned`] enforces (it panics,
//! naming the line, where it cannot count):
//! - a *check helper* is a shell function whose text says `ok`; each call
//!   prints exactly one ok/not ok line;
//! - a check is a command that calls a helper, at the start of a line or
//!   after `;`, `&&` or `||`; a function of several lines that calls
//!   helpers counts as its checks, each time it is called;
//! - `for VAR in WORDS; do ... done` counts its body once per word; no check
//!   may sit under `if`, `while` or `case` (it might not run);
//! - a line that runs a firmware check script as the init, `$fwrun ...
//!   -- /test/NAME.sh`, counts the checks of tests/firmware/files/NAME.sh
//!   (whose output the VM script shows). A script run any other way (a
//!   negative control, `-- /bin/sh /test/NAME.sh`) is not counted.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The script's logical lines: comments dropped, a backslash-newline and a
/// newline inside quotes joined into one line.
pub fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    let (mut single, mut double) = (false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !double => {
                single = !single;
                cur.push(c);
            }
            '"' if !single => {
                double = !double;
                cur.push(c);
            }
            '\\' if !single => match chars.next() {
                Some('\n') => {}
                Some(n) => {
                    cur.push(c);
                    cur.push(n);
                }
                None => cur.push(c),
            },
            '#' if !single
                && !double
                && cur
                    .chars()
                    .last()
                    .is_none_or(|p| p.is_whitespace() || p == ';') =>
            {
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            '\n' if !single && !double => {
                if !cur.trim().is_empty() {
                    lines.push(cur.trim().to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        lines.push(cur.trim().to_string());
    }
    lines
}

/// Shell words, quotes removed (no expansion).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let (mut single, mut double) = (false, false);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !double => {
                single = !single;
                in_word = true;
            }
            '"' if !single => {
                double = !double;
                in_word = true;
            }
            '\\' if !single => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            c if c.is_whitespace() && !single && !double => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                }
                in_word = false;
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// The first word of each command of a line: split at unquoted `;`, `&&`,
/// `||` and `|`, past the keywords that may lead a command.
fn command_words(line: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let (mut single, mut double) = (false, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            ';' | '|' | '&' if !single && !double => {
                if matches!(c, '|' | '&') && chars.peek() == Some(&c) {
                    chars.next();
                }
                if c != '&' || !cur.ends_with(['>', '<']) {
                    parts.push(std::mem::take(&mut cur));
                    continue;
                }
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
        .iter()
        .filter_map(|p| {
            words(p).into_iter().find(|w| {
                !matches!(
                    w.as_str(),
                    "then" | "else" | "do" | "!" | "{" | "(" | "time"
                )
            })
        })
        .collect()
}

/// A function definition's name and the rest of its line: `name() {...`.
fn function_start(line: &str) -> Option<(&str, &str)> {
    let (name, rest) = line.split_once("()")?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('{')?;
    Some((name, rest))
}

/// Whether a function's text prints an ok line: the word `ok`, or `ok -`
/// in a string.
fn says_ok(text: &str) -> bool {
    words(text)
        .iter()
        .any(|w| w == "ok" || w.starts_with("ok -") || w.contains(" ok -"))
}

struct Planner<'a> {
    /// Where `/test/NAME.sh` is found.
    firmware: &'a Path,
    helpers: BTreeSet<String>,
    composites: BTreeMap<String, usize>,
    what: String,
}

impl Planner<'_> {
    fn fail(&self, line: &str, why: &str) -> ! {
        panic!("{}: cannot count the checks of `{line}`: {why}", self.what)
    }

    /// The checks one simple line makes.
    fn line_weight(&self, line: &str) -> usize {
        let mut n: usize = command_words(line)
            .iter()
            .map(|w| {
                if self.helpers.contains(w) {
                    1
                } else {
                    self.composites.get(w).copied().unwrap_or(0)
                }
            })
            .sum();
        if line.contains("$fwrun") {
            let ws = words(line);
            if let Some(at) = ws.iter().position(|w| w == "--") {
                if let Some(name) = ws.get(at + 1).and_then(|i| i.strip_prefix("/test/")) {
                    if name.ends_with(".sh") {
                        n += planned(&self.firmware.join(name), self.firmware);
                    }
                }
            }
        }
        n
    }

    /// The checks of `lines[*i..]` up to the line `until` (consumed).
    fn block(&mut self, lines: &[String], i: &mut usize, until: Option<&str>) -> usize {
        let mut total = 0;
        while *i < lines.len() {
            let line = lines[*i].clone();
            *i += 1;
            let first = words(&line).into_iter().next().unwrap_or_default();
            if Some(first.as_str()) == until {
                return total;
            }
            if let Some((name, rest)) = function_start(&line) {
                self.function(name.to_string(), rest, lines, i);
                continue;
            }
            let opens = |kw: &str| {
                first == kw
                    && !words(&line)
                        .iter()
                        .any(|w| w == "done" || w == "fi" || w == "esac")
            };
            if opens("for") {
                let Some(list) = line.split_once(" in ").map(|(_, l)| l) else {
                    self.fail(&line, "a for loop without `in`")
                };
                let list = list.trim_end().strip_suffix("do").map(str::trim_end);
                let Some(list) = list.and_then(|l| l.strip_suffix(';')) else {
                    self.fail(&line, "write `for VAR in WORDS; do` on one line")
                };
                let n = words(list).len();
                total += n * self.block(lines, i, Some("done"));
            } else if opens("while") || opens("until") || opens("if") || opens("case") {
                let end = match first.as_str() {
                    "if" => "fi",
                    "case" => "esac",
                    _ => "done",
                };
                if self.block(lines, i, Some(end)) > 0 {
                    self.fail(
                        &line,
                        "a check under a condition or in a while loop may not run",
                    )
                }
            } else if matches!(first.as_str(), "if" | "for" | "while" | "until" | "case") {
                if self.line_weight(&line) > 0 {
                    self.fail(&line, "a check under a condition may not run")
                }
            } else {
                total += self.line_weight(&line);
            }
        }
        if let Some(end) = until {
            panic!("{}: no `{end}` closes a block", self.what);
        }
        total
    }

    fn function(&mut self, name: String, rest: &str, lines: &[String], i: &mut usize) {
        let single = rest.trim_end().ends_with('}');
        let body: Vec<String> = if single {
            vec![rest.trim_end().trim_end_matches('}').to_string()]
        } else {
            let start = *i;
            while *i < lines.len() && lines[*i] != "}" {
                *i += 1;
            }
            let body = lines[start..*i].to_vec();
            *i += 1;
            body
        };
        if body.iter().any(|l| says_ok(l)) {
            self.helpers.insert(name);
        } else {
            let mut j = 0;
            let w = self.block(&body, &mut j, None);
            self.composites.insert(name, w);
        }
    }
}

/// How many ok/not ok lines the script at `path` prints; `firmware` holds
/// the firmware scripts it may run (tests/firmware/files).
pub fn planned(path: &Path, firmware: &Path) -> usize {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    plan_text(&text, firmware, &path.display().to_string())
}

pub fn plan_text(text: &str, firmware: &Path, what: &str) -> usize {
    let lines = logical_lines(text);
    let mut p = Planner {
        firmware,
        helpers: BTreeSet::new(),
        composites: BTreeMap::new(),
        what: what.to_string(),
    };
    let mut i = 0;
    p.block(&lines, &mut i, None)
}
