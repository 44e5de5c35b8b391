//! A local stand-in for GitHub's runner of composite actions: as much of it
//! as action.yml uses, so that the action's own shell steps run here, in
//! order, with the files and variables GitHub gives them.
//!
//! What it does as GitHub does: `${{ }}` expressions over `inputs` and
//! `steps.<id>.outputs` (literals, `==`, `!=`, `!`, `&&`, `||` and the status
//! functions), a step's `if:` (with the implicit `success() &&`), `shell:
//! bash` as `bash --noprofile --norc -eo pipefail`, per-step
//! `GITHUB_OUTPUT`/`GITHUB_ENV`/`GITHUB_PATH`/`GITHUB_STEP_SUMMARY` files
//! (`name=value` and `name<<DELIM` forms), and the action's `outputs:`.
//! What it does not: `uses:` steps are handed to the caller, who stands in
//! for those actions (caches, artifact upload). Anything else in the file
//! is an error that names it, so the action cannot grow past what this runs.

// The descriptive fields (description, branding, …) are parsed so that an
// unknown key is an error; nothing reads them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kcycle::sys::child::{Child, Spawn};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub branding: serde_yaml::Value,
    #[serde(default)]
    pub inputs: BTreeMap<String, Input>,
    #[serde(default)]
    pub outputs: BTreeMap<String, Output>,
    pub runs: Runs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    #[serde(default)]
    pub description: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runs {
    pub using: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: Option<String>,
    pub id: Option<String>,
    pub uses: Option<String>,
    #[serde(rename = "if")]
    pub condition: Option<String>,
    pub run: Option<String>,
    pub shell: Option<String>,
    #[serde(default)]
    pub env: Vars,
    #[serde(default)]
    pub with: BTreeMap<String, serde_yaml::Value>,
}

impl Step {
    pub fn label(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.uses.clone())
            .or_else(|| self.id.clone())
            .unwrap_or_else(|| "(unnamed step)".into())
    }
}

pub fn load(path: &Path) -> Result<Action, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let action: Action = serde_yaml::from_str(&text)
        .map_err(|e| format!("failed to parse {}: {e}", path.display()))?;
    if action.runs.using != "composite" {
        return Err(format!(
            "{}: runs.using is {:?}; this runner runs composite actions only",
            path.display(),
            action.runs.using
        ));
    }
    Ok(action)
}

/// An expression's value: GitHub's strings and booleans (numbers and null
/// do not occur in action.yml).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Bool(b) => *b,
        }
    }

    pub fn text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
        }
    }
}

/// What expressions can read.
pub struct Context<'a> {
    pub inputs: &'a Vars,
    pub steps: &'a BTreeMap<String, Vars>,
    /// An earlier step failed.
    pub failed: bool,
}

impl Context<'_> {
    fn lookup(&self, path: &str) -> Result<Value, String> {
        let parts: Vec<&str> = path.split('.').collect();
        match parts.as_slice() {
            ["inputs", name] => self
                .inputs
                .get(*name)
                .map(|v| Value::Str(v.clone()))
                .ok_or_else(|| format!("`inputs.{name}` is not an input of the action")),
            // A step that did not run, or an output it did not set, reads as ''.
            ["steps", id, "outputs", name] => Ok(Value::Str(
                self.steps
                    .get(*id)
                    .and_then(|o| o.get(*name))
                    .cloned()
                    .unwrap_or_default(),
            )),
            _ => Err(format!("the local runner cannot read `{path}`")),
        }
    }
}

/// Evaluates one expression (the text inside `${{ }}`).
pub fn eval(expr: &str, cx: &Context) -> Result<Value, String> {
    let tokens = tokenize(expr)?;
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        cx,
    };
    let value = parser.or()?;
    if parser.at != tokens.len() {
        return Err(format!("unexpected {:?} in `{expr}`", tokens[parser.at]));
    }
    Ok(value)
}

/// Replaces every `${{ expr }}` in `text` with its value.
pub fn interpolate(text: &str, cx: &Context) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed `${{{{` in {text:?}"))?;
        out.push_str(&eval(after[..end].trim(), cx)?.text());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A step's `if:`: with no status function in it, GitHub runs the step only
/// when every earlier step succeeded.
pub fn condition(text: Option<&str>, cx: &Context) -> Result<bool, String> {
    let Some(text) = text else {
        return Ok(!cx.failed);
    };
    let text = text.trim();
    let expr = text
        .strip_prefix("${{")
        .and_then(|t| t.strip_suffix("}}"))
        .unwrap_or(text)
        .trim();
    let has_status = ["success(", "failure(", "cancelled(", "always("]
        .iter()
        .any(|f| expr.contains(f));
    let value = eval(expr, cx)?.truthy();
    Ok(if has_status {
        value
    } else {
        value && !cx.failed
    })
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Str(String),
    Ident(String),
    Op(&'static str),
}

fn tokenize(expr: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            // '' inside a literal is one quote.
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unclosed string in `{expr}`")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        s.push(c);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Str(s));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_-.".contains(chars[i]))
            {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = ["==", "!=", "&&", "||"]
                .into_iter()
                .find(|op| two == *op)
                .or_else(|| ["!", "(", ")"].into_iter().find(|op| op.starts_with(c)))
                .ok_or_else(|| format!("the local runner does not know `{c}` in `{expr}`"))?;
            i += op.len();
            tokens.push(Token::Op(op));
        }
    }
    Ok(tokens)
}

struct Parser<'t, 'c> {
    tokens: &'t [Token],
    at: usize,
    cx: &'c Context<'c>,
}

impl Parser<'_, '_> {
    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.tokens.get(self.at), Some(Token::Op(o)) if *o == op) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Value, String> {
        let mut left = self.and()?;
        while self.eat("||") {
            let right = self.and()?;
            left = if left.truthy() { left } else { right };
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Value, String> {
        let mut left = self.compare()?;
        while self.eat("&&") {
            let right = self.compare()?;
            left = if left.truthy() { right } else { left };
        }
        Ok(left)
    }

    fn compare(&mut self) -> Result<Value, String> {
        let left = self.unary()?;
        for (op, equal) in [("==", true), ("!=", false)] {
            if self.eat(op) {
                let right = self.unary()?;
                // GitHub compares strings ignoring case.
                let same = left.text().eq_ignore_ascii_case(&right.text());
                return Ok(Value::Bool(same == equal));
            }
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Value, String> {
        if self.eat("!") {
            return Ok(Value::Bool(!self.unary()?.truthy()));
        }
        if self.eat("(") {
            let value = self.or()?;
            if !self.eat(")") {
                return Err("missing `)`".into());
            }
            return Ok(value);
        }
        match self.tokens.get(self.at).cloned() {
            Some(Token::Str(s)) => {
                self.at += 1;
                Ok(Value::Str(s))
            }
            Some(Token::Ident(name)) => {
                self.at += 1;
                if self.eat("(") {
                    if !self.eat(")") {
                        return Err(format!("`{name}(` takes no arguments here"));
                    }
                    return match name.as_str() {
                        "success" => Ok(Value::Bool(!self.cx.failed)),
                        "failure" => Ok(Value::Bool(self.cx.failed)),
                        "cancelled" => Ok(Value::Bool(false)),
                        "always" => Ok(Value::Bool(true)),
                        other => Err(format!("the local runner has no function `{other}()`")),
                    };
                }
                match name.as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    path => self.cx.lookup(path),
                }
            }
            other => Err(format!("expected a value, found {other:?}")),
        }
    }
}

/// `name=value` lines and `name<<DELIM` … `DELIM` blocks, as GitHub reads
/// GITHUB_OUTPUT and GITHUB_ENV.
pub fn parse_commands_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            loop {
                match lines.next() {
                    Some(l) if l == delimiter => break,
                    Some(l) => value.push(l),
                    None => return Err(format!("`{name}<<{delimiter}` never ends")),
                }
            }
            pairs.push((name.to_string(), value.join("\n")));
        } else if let Some((name, value)) = line.split_once('=') {
            pairs.push((name.to_string(), value.to_string()));
        } else {
            return Err(format!("not `name=value` nor `name<<DELIM`: {line:?}"));
        }
    }
    Ok(pairs)
}

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Success,
    Failure(i32),
    Skipped,
}

#[derive(Debug)]
pub struct StepRecord {
    pub label: String,
    pub outcome: Outcome,
    pub outputs: Vars,
}

/// A whole run of the action.
#[derive(Debug)]
pub struct Job {
    pub steps: Vec<StepRecord>,
    /// What the steps printed, stdout and stderr, with a `##[step]` line
    /// before each.
    pub log: String,
    /// The job summary: every step's GITHUB_STEP_SUMMARY, in order.
    pub summary: String,
    /// The action's `outputs:`.
    pub outputs: Vars,
}

impl Job {
    pub fn succeeded(&self) -> bool {
        !self
            .steps
            .iter()
            .any(|s| matches!(s.outcome, Outcome::Failure(_)))
    }

    pub fn step(&self, label: &str) -> &StepRecord {
        self.steps
            .iter()
            .find(|s| s.label == label)
            .unwrap_or_else(|| panic!("no step {label:?} in {:#?}", self.steps))
    }
}

/// A step's outputs, a job's environment: names to values.
pub type Vars = BTreeMap<String, String>;

/// Stands in for a `uses:` step: the action's name, its evaluated `with:`
/// and the job log to write to; returns the step's outputs.
pub type Uses<'a> = dyn FnMut(&str, &Vars, &mut String) -> Result<Vars, String> + 'a;

/// Where the job runs.
pub struct Runner {
    /// The action's checkout (GITHUB_ACTION_PATH).
    pub action_path: PathBuf,
    /// The repository using the action: every step's working directory.
    pub workspace: PathBuf,
    /// RUNNER_TEMP; also holds the per-step files.
    pub temp: PathBuf,
    /// The job's environment before any step (HOME, PATH, …).
    pub env: Vars,
    /// Longest any one step may take; it is killed (with its process group) after.
    pub step_limit: Duration,
}

impl Runner {
    /// Runs every step. `uses` stands in for a `uses:` step: it gets the
    /// action's name and its evaluated `with:` and returns the step's outputs.
    pub fn run(
        &self,
        action: &Action,
        given: &BTreeMap<&str, &str>,
        uses: &mut Uses,
    ) -> Result<Job, String> {
        for name in given.keys() {
            if !action.inputs.contains_key(*name) {
                return Err(format!("`{name}` is not an input of the action"));
            }
        }
        let inputs: Vars = action
            .inputs
            .iter()
            .map(|(name, input)| {
                let value = given
                    .get(name.as_str())
                    .map(|v| v.to_string())
                    .or_else(|| input.default.clone())
                    .unwrap_or_default();
                (name.clone(), value)
            })
            .collect();
        let mut step_outputs: BTreeMap<String, Vars> = BTreeMap::new();
        let mut job_env: Vars = BTreeMap::new();
        let mut job_path: Vec<String> = Vec::new();
        let mut job = Job {
            steps: Vec::new(),
            log: String::new(),
            summary: String::new(),
            outputs: BTreeMap::new(),
        };
        std::fs::create_dir_all(&self.temp).map_err(|e| e.to_string())?;
        for (index, step) in action.runs.steps.iter().enumerate() {
            let failed = !job.succeeded();
            let cx = Context {
                inputs: &inputs,
                steps: &step_outputs,
                failed,
            };
            let label = step.label();
            if !condition(step.condition.as_deref(), &cx)
                .map_err(|e| format!("{label}: if: {e}"))?
            {
                job.log.push_str(&format!("##[step] {label}: skipped\n"));
                job.steps.push(StepRecord {
                    label,
                    outcome: Outcome::Skipped,
                    outputs: BTreeMap::new(),
                });
                continue;
            }
            job.log.push_str(&format!("##[step] {label}\n"));
            let (outcome, outputs) = match (&step.uses, &step.run) {
                (Some(name), None) => {
                    let with = step
                        .with
                        .iter()
                        .map(|(k, v)| {
                            let text = match v {
                                serde_yaml::Value::String(s) => s.clone(),
                                serde_yaml::Value::Bool(b) => b.to_string(),
                                serde_yaml::Value::Number(n) => n.to_string(),
                                other => return Err(format!("{label}: with.{k} is {other:?}")),
                            };
                            Ok((k.clone(), interpolate(&text, &cx)?))
                        })
                        .collect::<Result<BTreeMap<_, _>, String>>()?;
                    match uses(name, &with, &mut job.log) {
                        Ok(outputs) => (Outcome::Success, outputs),
                        Err(why) => {
                            job.log.push_str(&format!("{label}: {why}\n"));
                            (Outcome::Failure(1), BTreeMap::new())
                        }
                    }
                }
                (None, Some(script)) => {
                    if step.shell.as_deref() != Some("bash") {
                        return Err(format!(
                            "{label}: shell is {:?}; composite steps here must say `shell: bash`",
                            step.shell
                        ));
                    }
                    let script = interpolate(script, &cx).map_err(|e| format!("{label}: {e}"))?;
                    let mut env = self.env.clone();
                    env.extend(job_env.clone());
                    for (k, v) in &step.env {
                        env.insert(
                            k.clone(),
                            interpolate(v, &cx).map_err(|e| format!("{label}: env.{k}: {e}"))?,
                        );
                    }
                    self.shell(index, &script, env, &mut job_path, &mut job, &mut job_env)?
                }
                _ => {
                    return Err(format!(
                        "{label}: a step has exactly one of `uses` and `run`"
                    ))
                }
            };
            if let Some(id) = &step.id {
                step_outputs.insert(id.clone(), outputs.clone());
            }
            job.steps.push(StepRecord {
                label,
                outcome,
                outputs,
            });
        }
        let cx = Context {
            inputs: &inputs,
            steps: &step_outputs,
            failed: !job.succeeded(),
        };
        for (name, output) in &action.outputs {
            job.outputs
                .insert(name.clone(), interpolate(&output.value, &cx)?);
        }
        Ok(job)
    }

    /// One `run:` step, as GitHub's `shell: bash` runs it.
    fn shell(
        &self,
        index: usize,
        script: &str,
        mut env: Vars,
        job_path: &mut Vec<String>,
        job: &mut Job,
        job_env: &mut Vars,
    ) -> Result<(Outcome, Vars), String> {
        let file = |kind: &str| self.temp.join(format!("{kind}-{index}"));
        let script_file = file("step");
        std::fs::write(&script_file, script).map_err(|e| e.to_string())?;
        for kind in ["output", "env", "path", "summary"] {
            std::fs::write(file(kind), "").map_err(|e| e.to_string())?;
        }
        let path = job_path
            .iter()
            .cloned()
            .chain(env.get("PATH").cloned())
            .collect::<Vec<_>>()
            .join(":");
        env.insert("PATH".into(), path);
        let files = [
            ("GITHUB_OUTPUT", "output"),
            ("GITHUB_ENV", "env"),
            ("GITHUB_PATH", "path"),
            ("GITHUB_STEP_SUMMARY", "summary"),
        ];
        for (var, kind) in files {
            env.insert(var.into(), file(kind).to_string_lossy().into_owned());
        }
        env.insert(
            "GITHUB_ACTION_PATH".into(),
            self.action_path.to_string_lossy().into_owned(),
        );
        env.insert(
            "GITHUB_WORKSPACE".into(),
            self.workspace.to_string_lossy().into_owned(),
        );
        env.insert(
            "RUNNER_TEMP".into(),
            self.temp.to_string_lossy().into_owned(),
        );
        env.insert("GITHUB_ACTIONS".into(), "true".into());
        env.insert("CI".into(), "true".into());

        let log_file = file("log");
        let log = std::fs::File::create(&log_file).map_err(|e| e.to_string())?;
        let mut bash = Command::new("bash");
        bash.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script_file)
            .current_dir(&self.workspace)
            .env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        // kcycle's own child: its process group goes with it, on the limit or a panic.
        let mut child = Child::spawn(&mut bash, Spawn::default()).map_err(|e| e.to_string())?;
        let status = child.wait_timeout(self.step_limit);
        child.kill();
        job.log
            .push_str(&std::fs::read_to_string(&log_file).map_err(|e| e.to_string())?);
        let outcome = match status {
            Some(s) if s.success() => Outcome::Success,
            Some(s) => Outcome::Failure(s.code().unwrap_or(128)),
            None => {
                job.log.push_str(&format!(
                    "killed after the step limit of {:?}\n",
                    self.step_limit
                ));
                Outcome::Failure(124)
            }
        };
        let read = |kind: &str| std::fs::read_to_string(file(kind)).unwrap_or_default();
        let outputs = parse_commands_file(&read("output"))?.into_iter().collect();
        job_env.extend(parse_commands_file(&read("env"))?);
        // GITHUB_PATH lines reach the steps after this one, the last first.
        for line in read("path").lines().filter(|l| !l.is_empty()) {
            job_path.insert(0, line.to_string());
        }
        job.summary.push_str(&read("summary"));
        Ok((outcome, outputs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx<'a>(inputs: &'a Vars, steps: &'a BTreeMap<String, Vars>, failed: bool) -> Context<'a> {
        Context {
            inputs,
            steps,
            failed,
        }
    }

    #[test]
    fn expressions_read_inputs_and_step_outputs_as_github_does() {
        let inputs = BTreeMap::from([("module".to_string(), "driver".to_string())]);
        let steps = BTreeMap::from([(
            "bin".to_string(),
            BTreeMap::from([("cache-hit".to_string(), "true".to_string())]),
        )]);
        let c = cx(&inputs, &steps, false);
        assert_eq!(eval("inputs.module != ''", &c), Ok(Value::Bool(true)));
        assert_eq!(
            eval("steps.bin.outputs.cache-hit != 'true'", &c),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            eval("steps.nope.outputs.x == ''", &c),
            Ok(Value::Bool(true))
        );
        assert_eq!(eval("!cancelled()", &c), Ok(Value::Bool(true)));
        assert_eq!(
            eval("'TRUE' == 'true' && 'it''s'", &c),
            Ok(Value::Str("it's".into()))
        );
        assert!(eval("inputs.nope", &c).unwrap_err().contains("inputs.nope"));
        assert!(eval("github.ref", &c).unwrap_err().contains("github.ref"));
        assert!(eval("format('{0}', 1)", &c).is_err());
        assert_eq!(
            interpolate(
                "a ${{ inputs.module }} b ${{ steps.bin.outputs.cache-hit }}",
                &c
            ),
            Ok("a driver b true".into())
        );
    }

    #[test]
    fn a_condition_without_a_status_function_also_needs_success() {
        let inputs = BTreeMap::from([("module".to_string(), "x".to_string())]);
        let steps = BTreeMap::new();
        let failed = cx(&inputs, &steps, true);
        assert_eq!(condition(None, &failed), Ok(false));
        assert_eq!(condition(Some("inputs.module != ''"), &failed), Ok(false));
        assert_eq!(condition(Some("${{ !cancelled() }}"), &failed), Ok(true));
        let ok = cx(&inputs, &steps, false);
        assert_eq!(condition(Some("inputs.module != ''"), &ok), Ok(true));
    }

    #[test]
    fn command_files_take_both_forms() {
        assert_eq!(
            parse_commands_file("a=1\nb<<EOF\nx\ny=z\nEOF\n\nc=\n"),
            Ok(vec![
                ("a".into(), "1".into()),
                ("b".into(), "x\ny=z".into()),
                ("c".into(), "".into())
            ])
        );
        assert!(parse_commands_file("b<<EOF\nx\n").is_err());
        assert!(parse_commands_file("no equals sign").is_err());
    }
}
