//! The README's tour, run as written.
//!
//! Every fenced block with the info string `console` in README.md is part of the tour. In it,
//! a line starting with `$ ` is a command (a trailing ` \` continues it on the next line), and
//! the lines under it, up to the next command, are output it must print: each shown line
//! appears in its stdout, in that order (other lines may come between), compared after
//! trailing whitespace with `…` standing for any text within the line. A command exits 0
//! unless a comment on its line says `# exit N`.
//!
//! The commands run in order with the built `kvitto`, in a fresh temporary directory that
//! holds a copy of `examples/`, so the README's relative paths resolve and nothing is written
//! into the repository. Supported shell syntax, and only this: words with single or double
//! quotes and backslash escapes, `# comments`, `> FILE` (stdout to a file) and
//! `export NAME=VALUE` (for the commands after it). Anything else (pipes, `&&`, `$VAR`, globs)
//! fails the test, naming the README line, rather than being run differently from a shell.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const KVITTO: &str = env!("CARGO_BIN_EXE_kvitto");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    let path = repo_root().join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// One command of the tour.
#[derive(Debug)]
struct Step {
    /// README line (1-based) the command starts on.
    line: usize,
    /// The command as written, continuations joined.
    text: String,
    action: Action,
    /// The output lines shown under it, with their README line numbers.
    expected: Vec<(usize, String)>,
}

#[derive(Debug)]
enum Action {
    Export { name: String, value: String },
    Run { args: Vec<String>, stdout_to: Option<String>, exit: i32 },
}

/// The commands of every `console` block of `readme`, in order.
fn tour_steps(readme: &str) -> Vec<Step> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    let mut in_other_fence = false;
    let mut block_has_command = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let n = i + 1;
        i += 1;
        if in_other_fence {
            if line.trim_start().starts_with("```") {
                in_other_fence = false;
            }
            continue;
        }
        if !in_console {
            if let Some(info) = line.strip_prefix("```") {
                if info.trim() == "console" {
                    in_console = true;
                    block_has_command = false;
                } else {
                    in_other_fence = true;
                }
            }
            continue;
        }
        if line.trim_start().starts_with("```") {
            in_console = false;
            continue;
        }
        if let Some(first) = line.strip_prefix("$ ") {
            let mut text = first.trim_end().to_string();
            while let Some(joined) = text.strip_suffix('\\') {
                let next = lines.get(i).unwrap_or_else(|| panic!("README line {n}: `\\` continues past the end"));
                i += 1;
                text = format!("{} {}", joined.trim_end(), next.trim());
            }
            let action = parse_command(n, &text);
            steps.push(Step { line: n, text, action, expected: Vec::new() });
            block_has_command = true;
        } else {
            assert!(
                block_has_command || line.trim().is_empty(),
                "README line {n}: output line before any `$ ` command in its console block: {line:?}"
            );
            if !line.trim().is_empty()
                && let Some(step) = steps.last_mut()
            {
                assert!(
                    !matches!(step.action, Action::Export { .. }),
                    "README line {n}: `export` prints nothing, but output is shown under it: {line:?}"
                );
                step.expected.push((n, line.trim_end().to_string()));
            }
        }
    }
    assert!(!in_console, "README: a console block is not closed");
    steps
}

/// A word of a command line, or the `>` operator.
#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Redirect,
}

/// Splits a command line the way a POSIX shell would for the syntax the tour may use;
/// returns the tokens and the comment (text after an unquoted `#` starting a word).
fn split_shell(line: usize, text: &str) -> (Vec<Token>, Option<String>) {
    let unsupported = |what: &str| -> ! {
        panic!("README line {line}: {what} is not supported by the tour test (run as written: {text:?})")
    };
    let mut tokens = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(w) = word.take() {
                    tokens.push(Token::Word(w));
                }
            }
            '#' if word.is_none() => {
                let comment: String = chars.collect();
                return (tokens, Some(comment.trim().to_string()));
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => unsupported("an unclosed single quote"),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => unsupported("an unclosed double quote"),
                        },
                        Some('$') => unsupported("`$` (expansion) inside double quotes"),
                        Some('`') => unsupported("command substitution"),
                        Some(c) => w.push(c),
                        None => unsupported("an unclosed double quote"),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => unsupported("a trailing backslash"),
            },
            '>' => {
                if chars.peek() == Some(&'>') {
                    unsupported("`>>`");
                }
                if let Some(w) = word.take() {
                    if w.chars().all(|c| c.is_ascii_digit()) {
                        unsupported("redirecting a numbered descriptor");
                    }
                    tokens.push(Token::Word(w));
                }
                tokens.push(Token::Redirect);
            }
            '|' | '&' | ';' | '<' | '(' | ')' => unsupported(&format!("`{c}`")),
            '$' => unsupported("`$` (expansion)"),
            '`' => unsupported("command substitution"),
            '*' | '?' | '[' => unsupported(&format!("the glob character `{c}`")),
            '~' if word.is_none() => unsupported("`~`"),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = word {
        tokens.push(Token::Word(w));
    }
    (tokens, None)
}

fn parse_command(line: usize, text: &str) -> Action {
    let (tokens, comment) = split_shell(line, text);
    let mut words = Vec::new();
    let mut stdout_to = None;
    let mut tokens = tokens.into_iter();
    while let Some(t) = tokens.next() {
        match t {
            Token::Word(w) => words.push(w),
            Token::Redirect => match tokens.next() {
                Some(Token::Word(file)) if stdout_to.is_none() => stdout_to = Some(file),
                Some(Token::Word(_)) => panic!("README line {line}: two `>` redirections in {text:?}"),
                _ => panic!("README line {line}: `>` without a file in {text:?}"),
            },
        }
    }
    let exit = match comment.as_deref().and_then(|c| c.strip_prefix("exit ")) {
        Some(rest) => {
            let code = rest.split(|c: char| !c.is_ascii_digit()).next().unwrap_or("");
            code.parse().unwrap_or_else(|_| panic!("README line {line}: `# exit` needs a number: {text:?}"))
        }
        None => 0,
    };
    match words.first().map(String::as_str) {
        Some("kvitto") => Action::Run { args: words[1..].to_vec(), stdout_to, exit },
        Some("export") => {
            assert!(
                words.len() == 2 && stdout_to.is_none(),
                "README line {line}: `export` takes one NAME=VALUE: {text:?}"
            );
            let (name, value) = words[1]
                .split_once('=')
                .unwrap_or_else(|| panic!("README line {line}: `export` takes NAME=VALUE: {text:?}"));
            Action::Export { name: name.to_string(), value: value.to_string() }
        }
        _ => panic!("README line {line}: a console block command must be `kvitto …` or `export NAME=VALUE`: {text:?}"),
    }
}

/// Whether `line` matches `pattern` (whole line, `…` standing for any text).
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if line.len() < first.len() + last.len() || !line.starts_with(first) || !line.ends_with(last) {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// A fresh directory holding a copy of the repository's `examples/`.
fn scratch() -> tempfile::TempDir {
    fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy_dir(&entry.path(), &target)?;
            } else {
                std::fs::copy(entry.path(), &target)?;
            }
        }
        Ok(())
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let examples = repo_root().join("examples");
    copy_dir(&examples, &dir.path().join("examples"))
        .unwrap_or_else(|e| panic!("copying {} into {}: {e}", examples.display(), dir.path().display()));
    dir
}

fn kvitto(dir: &Path, env: &[(String, String)], args: &[String]) -> Output {
    let mut cmd = Command::new(KVITTO);
    cmd.args(args).current_dir(dir).stdin(Stdio::null()).env_remove("KVITTO_LEDGER").env_remove("RUST_LOG");
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().unwrap_or_else(|e| panic!("running {KVITTO}: {e}"))
}

/// Whether a path-like argument stays below the working directory (no absolute path, no `..`).
fn stays_inside(arg: &str) -> bool {
    !arg.starts_with('/') && !arg.split(['/', '=']).any(|c| c == "..")
}

fn describe(step: &Step, out: &Output) -> String {
    format!(
        "README line {}: $ {}\nexit status: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        step.line,
        step.text,
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn readme_tour_runs_as_written() {
    let steps = tour_steps(&readme());
    let commands = steps.iter().filter(|s| matches!(s.action, Action::Run { .. })).count();
    assert!(commands >= 20, "README: found only {commands} tour commands in console blocks");
    let dir = scratch();
    let mut env: Vec<(String, String)> = Vec::new();
    for step in &steps {
        let (args, stdout_to, exit) = match &step.action {
            Action::Export { name, value } => {
                env.retain(|(n, _)| n != name);
                env.push((name.clone(), value.clone()));
                continue;
            }
            Action::Run { args, stdout_to, exit } => (args, stdout_to, *exit),
        };
        for arg in args.iter().chain(env.iter().map(|(_, v)| v)) {
            assert!(
                stays_inside(arg),
                "README line {}: the tour must read and write only below the directory it runs in, \
                 so no absolute path or `..`: {arg:?}",
                step.line
            );
        }
        let out = kvitto(dir.path(), &env, args);
        assert_eq!(out.status.code(), Some(exit), "exit status {exit} expected\n{}", describe(step, &out));
        let stdout = String::from_utf8(out.stdout.clone())
            .unwrap_or_else(|_| panic!("stdout is not UTF-8\n{}", describe(step, &out)));
        if let Some(file) = stdout_to {
            assert!(
                stays_inside(file),
                "README line {}: the tour writes only below the directory it runs in, not to {file:?}",
                step.line
            );
            std::fs::write(dir.path().join(file), &stdout)
                .unwrap_or_else(|e| panic!("README line {}: writing {file}: {e}", step.line));
            assert!(
                step.expected.is_empty(),
                "README line {}: output is shown under a command whose stdout goes to {file}",
                step.line
            );
            continue;
        }
        let actual: Vec<&str> = stdout.lines().map(str::trim_end).collect();
        let mut from = 0;
        for (n, pattern) in &step.expected {
            match actual[from..].iter().position(|l| line_matches(pattern, l)) {
                Some(at) => from += at + 1,
                None => panic!(
                    "README line {n}: this output line of the command on line {} was not printed \
                     (in this order; `…` matches any text):\n  {pattern}\n{}",
                    step.line,
                    describe(step, &out)
                ),
            }
        }
    }
}

/// The example files the tour appends, in the README's order.
fn appended_examples(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Run { args, .. } if args.first().map(String::as_str) == Some("append") => args.get(1).cloned(),
            _ => None,
        })
        .fold(Vec::new(), |mut files, f| {
            if !files.contains(&f) {
                files.push(f);
            }
            files
        })
}

#[test]
fn appending_the_examples_again_adds_nothing() {
    let files = appended_examples(&tour_steps(&readme()));
    assert!(!files.is_empty(), "README: the tour appends no example file");

    // Every shipped example file is in the tour, and every event in them has its own fixed
    // event_id (the idempotency key).
    let shipped: BTreeSet<String> = std::fs::read_dir(repo_root().join("examples/tour"))
        .unwrap()
        .map(|e| format!("examples/tour/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".jsonl"))
        .collect();
    assert_eq!(shipped, files.iter().cloned().collect::<BTreeSet<_>>(), "the example files and the tour's appends");
    let mut ids = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        for (i, line) in text.lines().enumerate() {
            let event: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{file} line {}: {e}", i + 1));
            let id = event["event_id"].as_str().unwrap_or_else(|| panic!("{file} line {}: no event_id", i + 1));
            assert!(ids.insert(id.to_string()), "{file} line {}: event_id {id} used twice", i + 1);
        }
    }

    let dir = scratch();
    let ledger = dir.path().join("ledger");
    let args = |a: &[&str]| -> Vec<String> {
        ["--ledger", ledger.to_str().unwrap()].iter().chain(a).map(|s| s.to_string()).collect()
    };
    let run = |a: &[&str]| -> String {
        let out = kvitto(dir.path(), &[], &args(a));
        assert!(out.status.success(), "kvitto {a:?}: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["init", "--origin", "tour.example/ledger"]);
    let append_all = || -> Vec<String> { files.iter().map(|f| run(&["append", f])).collect() };
    let count = || run(&["log", "--limit", "1000000", "--json"]).lines().count();

    let first = append_all();
    let events = count();
    assert_eq!(events, ids.len(), "one event per example line");
    let second = append_all();
    assert_eq!(count(), events, "appending the examples again added events");
    assert_eq!(first, second, "appending again answers with the original receipts");
    assert!(run(&["verify"]).starts_with(&format!("ok: {events} events")));
}

#[test]
fn wildcard_matches_within_a_line() {
    assert!(line_matches("ok: 29 events, head …", "ok: 29 events, head 03ab"));
    assert!(line_matches("a…b…c", "a-b-b-c"));
    assert!(line_matches("…", ""));
    assert!(!line_matches("a…a", "a"));
    assert!(!line_matches("ok: 29 events", "ok: 29 events, head 03ab"));
    assert!(!line_matches("x…y", "x-z"));
}

#[test]
fn commands_split_like_a_shell() {
    let words = |t: &str| -> Vec<Token> { split_shell(1, t).0 };
    assert_eq!(
        words(r#"kvitto erase --reason "Art 17 \"r\"" 'a b'"#),
        ["kvitto", "erase", "--reason", "Art 17 \"r\"", "a b"].map(|w| Token::Word(w.into()))
    );
    assert_eq!(split_shell(1, "kvitto verify   # exit 1").1.as_deref(), Some("exit 1"));
    assert_eq!(
        words("kvitto key>k.vkey"),
        [Token::Word("kvitto".into()), Token::Word("key".into()), Token::Redirect, Token::Word("k.vkey".into())]
    );
    assert_eq!(words("a#b"), [Token::Word("a#b".into())]);
    let steps = tour_steps(
        "```console\n$ kvitto may-process \\\n    --purpose x   # exit 1\ndenied: …\n```\n```sh\n$ kvitto not-run\n```\n",
    );
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].text, "kvitto may-process --purpose x   # exit 1");
    assert!(matches!(&steps[0].action, Action::Run { exit: 1, args, .. } if args.len() == 3));
    assert_eq!(steps[0].expected, [(4, "denied: …".to_string())]);
}
