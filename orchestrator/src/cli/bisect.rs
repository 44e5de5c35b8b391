//! `--bisect`: a run's exit status as `git bisect run` reads it; and
//! `kcycle bisect`, which drives such runs over a git tree itself.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use kcycle::bisect::{Bisection, Found, Verdict};
use kcycle::exit::ExitStatus;
use kcycle::sys::child::{self, Activity, Logged};
use kcycle::sys::Cancel;

use super::{AccelArg, BisectArgs, BisectCommandArgs, ExitOnError, Failure};

/// Map a finished command's outcome with [`kcycle::bisect::exit_status`],
/// reading the results it wrote to `results_dir`. Without `--bisect` the
/// outcome is returned as it is.
pub(super) fn map(
    args: &BisectArgs,
    results_dir: &Path,
    outcome: Result<ExitStatus, Failure>,
) -> Result<ExitStatus, Failure> {
    if !args.bisect {
        return outcome;
    }
    let status = match outcome {
        Ok(status) => status,
        Err(failure) => {
            eprintln!("kcycle: error: {:#}", failure.error);
            failure.status
        }
    };
    let path = results_dir.join(kcycle::report::results_dir::RESULTS_FILE);
    // No results when the run broke down before its first test.
    let results = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| kcycle::report::igt_json::parse(&text).ok())
        .map(|(_, results)| results)
        .unwrap_or_default();
    let mapped = kcycle::bisect::exit_status(status, &results, args.finding.as_deref());
    if let Some(pattern) = &args.finding {
        for (result, finding) in kcycle::bisect::matching(&results, pattern) {
            eprintln!(
                "kcycle: --bisect: {pattern} reproduced in {}: [{}] {} (fingerprint {})",
                result.name,
                finding.kind,
                finding.title,
                kcycle::fingerprint::of(finding)
            );
        }
    }
    let meaning = match mapped {
        ExitStatus::Passed => "good",
        ExitStatus::Failed => "bad",
        ExitStatus::BisectSkip => "skip: this commit could not be tested",
        _ => "abort the bisection: fix the input first",
    };
    eprintln!("kcycle: --bisect: exit {} ({meaning})", mapped.code());
    Ok(mapped)
}

/// With `--bisect`, the results a previous step left must not decide this
/// one: a run that breaks down before its reporters start writes none, and
/// would otherwise be judged by the last commit's.
pub(super) fn forget(args: &BisectArgs, results_dir: &Path) {
    if args.bisect {
        let path = results_dir.join(kcycle::report::results_dir::RESULTS_FILE);
        if let Err(error) = std::fs::remove_file(&path) {
            if error.kind() != std::io::ErrorKind::NotFound {
                eprintln!(
                    "kcycle: --bisect: failed to remove the previous {}: {error}",
                    path.display()
                );
            }
        }
    }
}

/// `kcycle bisect`: the search of [`Bisection`] driven over a git tree, one
/// `kcycle … --bisect` child per run.
pub(super) fn bisect(args: &BisectCommandArgs) -> Result<ExitStatus, Failure> {
    let tree = Tree::open(&args.source).bad_input()?;
    let plan = Plan::of(args, &tree)
        .map_err(anyhow::Error::msg)
        .bad_input()?;
    let good = tree.commit(&args.good).bad_input()?;
    let bad = tree.commit(&args.bad).bad_input()?;
    let commits = tree.between(&good, &bad).bad_input()?;
    let Some(mut bisection) = Bisection::new(commits) else {
        return Err(anyhow::anyhow!(
            "failed to bisect: {} is not a descendant of {} in {}",
            args.bad,
            args.good,
            args.source.display()
        ))
        .bad_input();
    };
    std::fs::create_dir_all(&args.results)
        .with_context(|| format!("failed to create {}", args.results.display()))
        .infrastructure()?;
    let step = Stepper {
        plan: &plan,
        tree: &tree,
        cancel: Cancel::process(),
    };
    // Checks the tree's branch out again however this ends.
    let restore = Restore::remember(&tree).infrastructure()?;
    let mut log = Log::new(&tree, &args.results);
    eprintln!(
        "kcycle bisect: {} commits after {}, about {} steps; testing the bad commit first",
        bisection.len(),
        tree.describe(&good),
        bisection.steps_left()
    );
    let runs = bad_end(args, &step, &bad, &mut log)?;
    while let Some(commit) = bisection.next().map(str::to_string) {
        let verdict = step.judge(&commit, runs, &mut log)?;
        bisection.record(&commit, verdict);
        eprintln!(
            "kcycle bisect: {} is {}; steps left: about {}",
            tree.describe(&commit),
            verdict.as_str(),
            bisection.steps_left()
        );
    }
    drop(restore);
    let found = bisection.found();
    log.conclude(found.as_ref());
    log.write();
    print_found(found, &tree, &log, args)
}

/// Test the bad end: it must come out bad, and how often it does says how
/// many good runs a later commit needs. Returns that number.
fn bad_end(
    args: &BisectCommandArgs,
    step: &Stepper<'_>,
    bad: &str,
    log: &mut Log,
) -> Result<u32, Failure> {
    let tries = args.runs.unwrap_or(2);
    let (mut seen, mut done) = (0, 0);
    while done < tries && !(args.runs.is_some() && seen > 0) {
        done += 1;
        match step.run(bad, log)? {
            Verdict::Bad => seen += 1,
            Verdict::Good => {}
            Verdict::Skip => {
                log.write();
                return Err(anyhow::anyhow!(
                    "failed to bisect: the bad commit {} could not be tested (see {})",
                    step.tree.describe(bad),
                    log.last_dir().display()
                ))
                .infrastructure();
            }
        }
    }
    let runs = match args.runs {
        Some(runs) => Some(runs),
        None => kcycle::bisect::runs_per_step(seen, tries, 0.95),
    };
    let Some(runs) = runs.filter(|_| seen > 0) else {
        log.write();
        return Err(anyhow::anyhow!(
            "failed to bisect: {} did not come out bad in {done} run(s){}; check --bad and --finding (results in {})",
            step.tree.describe(bad),
            args.finding.as_deref().map(|f| format!(" with --finding {f}")).unwrap_or_default(),
            args.results.display()
        ))
        .bad_input();
    };
    eprintln!(
        "kcycle bisect: {} is bad ({seen} of {done} runs){}",
        step.tree.describe(bad),
        if runs > 1 {
            format!("; a commit counts as good after {runs} good runs")
        } else {
            String::new()
        }
    );
    Ok(runs)
}

/// The answer on stdout: the first bad commit with its evidence (exit 0), or
/// the commits skipped ones leave open (exit 1).
fn print_found(
    found: Option<Found>,
    tree: &Tree,
    log: &Log,
    args: &BisectCommandArgs,
) -> Result<ExitStatus, Failure> {
    match found {
        Some(Found::Commit(commit)) => {
            println!("first bad commit: {}", tree.describe(&commit));
            for line in log.evidence(&commit, args.finding.as_deref()) {
                println!("  {line}");
            }
            println!(
                "steps and results: {}",
                args.results.join("bisect.md").display()
            );
            Ok(ExitStatus::Passed)
        }
        Some(Found::OneOf(commits)) => {
            println!("the first bad commit is one of (skipped commits hide which):");
            for commit in &commits {
                println!("  {}", tree.describe(commit));
            }
            Ok(ExitStatus::Failed)
        }
        None => Err(anyhow::anyhow!("failed to bisect: the search did not end")).infrastructure(),
    }
}

/// The git tree being bisected.
#[derive(Debug, Clone)]
struct Tree {
    dir: PathBuf,
    /// A kernel tree (the guest kernel is built from it) or a module repository.
    kernel: bool,
}

/// How long one git command may take.
const GIT_LIMIT: Duration = Duration::from_secs(300);

impl Tree {
    fn open(dir: &Path) -> anyhow::Result<Tree> {
        let tree = Tree {
            dir: dir.to_path_buf(),
            kernel: dir.join("arch/x86/Kconfig").is_file(),
        };
        tree.git(&["rev-parse", "--show-toplevel"])
            .with_context(|| format!("failed to bisect {}: not a git tree", dir.display()))?;
        let dirty = tree.git(&["status", "--porcelain", "--untracked-files=no"])?;
        if !dirty.trim().is_empty() {
            anyhow::bail!(
                "failed to bisect {}: its working tree has changes (commit or stash them first):\n{}",
                dir.display(),
                dirty.trim_end()
            );
        }
        Ok(tree)
    }

    fn git(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = std::process::Command::new("git");
        command.arg("-C").arg(&self.dir).args(args);
        let out = child::capture(&mut command, GIT_LIMIT)?;
        if !out.status.success() {
            anyhow::bail!(
                "`git {}` in {} failed: {}",
                args.join(" "),
                self.dir.display(),
                out.stderr.trim()
            );
        }
        Ok(out.stdout)
    }

    fn commit(&self, name: &str) -> anyhow::Result<String> {
        let spec = format!("{name}^{{commit}}");
        let sha = self
            .git(&["rev-parse", "--verify", "--quiet", &spec])
            .with_context(|| {
                format!(
                    "failed to bisect: no commit {name} in {}",
                    self.dir.display()
                )
            })?;
        Ok(sha.trim().to_string())
    }

    /// Commits after `good` up to `bad`, oldest first, on the paths between them.
    fn between(&self, good: &str, bad: &str) -> anyhow::Result<Vec<String>> {
        let range = format!("{good}..{bad}");
        let list = self.git(&["rev-list", "--reverse", "--ancestry-path", &range])?;
        Ok(list.lines().map(str::to_string).collect())
    }

    /// "abc1234 subject"
    fn describe(&self, commit: &str) -> String {
        self.git(&["log", "-1", "--format=%h %s", commit])
            .map(|line| line.trim().to_string())
            .unwrap_or_else(|_| commit.to_string())
    }

    fn checkout(&self, commit: &str) -> anyhow::Result<()> {
        self.git(&["checkout", "--quiet", "--detach", commit])
            .map(drop)
    }
}

/// Puts the tree's checkout back as it was (a branch or a detached commit)
/// when dropped: after the search, an error or Ctrl-C alike.
struct Restore {
    tree: Tree,
    head: String,
}

impl Restore {
    fn remember(tree: &Tree) -> anyhow::Result<Restore> {
        let branch = tree
            .git(&["symbolic-ref", "--quiet", "--short", "HEAD"])
            .ok();
        let head = match branch
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
        {
            Some(branch) => branch,
            None => tree.commit("HEAD")?,
        };
        Ok(Restore {
            tree: tree.clone(),
            head,
        })
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(error) = self.tree.git(&["checkout", "--quiet", &self.head]) {
            eprintln!(
                "kcycle bisect: failed to check {} out again in {}: {error:#}",
                self.head,
                self.tree.dir.display()
            );
        }
    }
}

/// Runs the plan on commits of the tree.
struct Stepper<'a> {
    plan: &'a Plan,
    tree: &'a Tree,
    cancel: Cancel,
}

impl Stepper<'_> {
    fn run(&self, commit: &str, log: &mut Log) -> Result<Verdict, Failure> {
        self.plan.run(self.tree, commit, log, &self.cancel)
    }

    /// Bad as soon as one run is, skipped as soon as one cannot be tested,
    /// good after `runs` good runs.
    fn judge(&self, commit: &str, runs: u32, log: &mut Log) -> Result<Verdict, Failure> {
        for _ in 0..runs {
            match self.run(commit, log)? {
                Verdict::Good => {}
                other => return Ok(other),
            }
        }
        Ok(Verdict::Good)
    }
}

/// What each step runs.
struct Plan {
    /// `kcycle` arguments after the subcommand's own (`cycle TARGET …` or `run SUITES…`).
    check: Vec<OsString>,
    accel: &'static str,
    kernel: Option<PathBuf>,
    finding: Option<String>,
}

impl Plan {
    fn of(args: &BisectCommandArgs, tree: &Tree) -> Result<Plan, String> {
        let check: Vec<OsString> = match (&args.cycle, args.suites.is_empty()) {
            (Some(target), true) => {
                let in_tree = tree.dir.join(target);
                let target: OsString = if !tree.kernel && in_tree.exists() {
                    in_tree.into()
                } else {
                    target.into()
                };
                let mut check: Vec<OsString> = vec!["cycle".into(), target];
                check.extend(["--cycles".into(), args.cycles.to_string().into()]);
                for param in &args.params {
                    check.extend(["--params".into(), param.into()]);
                }
                check
            }
            (None, false) if tree.kernel => {
                let mut check: Vec<OsString> = vec!["run".into(), "--no-retry".into()];
                check.extend(
                    args.suites
                        .iter()
                        .map(|s| std::fs::canonicalize(s).unwrap_or(s.clone()).into()),
                );
                check
            }
            (None, false) => {
                return Err(format!(
                    "{} is not a kernel tree: bisect a module repository with --cycle DIR",
                    tree.dir.display()
                ))
            }
            (None, true) => {
                return Err(
                    "say what to check at each step: --cycle MODULE|DIR or SUITE files".into(),
                )
            }
            (Some(_), false) => {
                return Err(
                    "--cycle and SUITE files exclude each other: check one or the other".into(),
                )
            }
        };
        if tree.kernel && args.guest.kernel.is_some() {
            return Err("--kernel and a kernel tree in --source exclude each other: each step builds its kernel from the tree".into());
        }
        Ok(Plan {
            check,
            accel: match args.guest.accel {
                AccelArg::Auto => "auto",
                AccelArg::Kvm => "kvm",
                AccelArg::Tcg => "tcg",
            },
            kernel: args.guest.kernel.clone(),
            finding: args.finding.clone(),
        })
    }

    /// Check `commit` out and test it once.
    fn run(
        &self,
        tree: &Tree,
        commit: &str,
        log: &mut Log,
        cancel: &Cancel,
    ) -> Result<Verdict, Failure> {
        tree.checkout(commit).infrastructure()?;
        let dir = log.next_dir(commit);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create {}", dir.display()))
            .infrastructure()?;
        let output = dir.join("kcycle.log");
        let mut file = std::fs::File::create(&output)
            .with_context(|| format!("failed to create {}", output.display()))
            .infrastructure()?;
        let short = &commit[..commit.len().min(12)];
        eprintln!(
            "kcycle bisect: step {}: testing {}",
            log.steps.len() + 1,
            tree.describe(commit)
        );

        let kernel = match (&self.kernel, tree.kernel) {
            (_, true) => match self.build_kernel(tree, &mut file, cancel)? {
                Some(kernel) => Some(kernel),
                None => {
                    log.record(commit, Verdict::Skip, &dir, "the kernel did not build");
                    return Ok(Verdict::Skip);
                }
            },
            (kernel, false) => kernel.clone(),
        };
        let mut command = std::process::Command::new(self_exe()?);
        command.args(["--progress", "never"]).args(&self.check);
        command
            .args(["--accel", self.accel, "--bisect", "--results"])
            .arg(&dir);
        if let Some(kernel) = &kernel {
            command.arg("--kernel").arg(kernel);
        }
        if let Some(finding) = &self.finding {
            command.args(["--finding", finding]);
        }
        let status = stream(&mut command, &mut file, cancel, short)?;
        let Some(verdict) = status.code().and_then(Verdict::of_exit) else {
            return Err(anyhow::anyhow!(
                "failed to bisect: the check of {} asked to stop (exit {:?}); see {}",
                tree.describe(commit),
                status.code(),
                output.display()
            ))
            .bad_input();
        };
        log.record(commit, verdict, &dir, "");
        Ok(verdict)
    }

    /// `kcycle kernel build --source TREE --json`: the artifact directory, or `None` when it did not build.
    fn build_kernel(
        &self,
        tree: &Tree,
        file: &mut std::fs::File,
        cancel: &Cancel,
    ) -> Result<Option<PathBuf>, Failure> {
        let mut command = std::process::Command::new(self_exe()?);
        command
            .args([
                "--progress",
                "never",
                "kernel",
                "build",
                "--json",
                "--source",
            ])
            .arg(&tree.dir);
        let mut json = Vec::new();
        let status = {
            let mut tee = Tee {
                file,
                json: &mut json,
            };
            stream(&mut command, &mut tee, cancel, "kernel")?
        };
        if !status.success() {
            return Ok(None);
        }
        // stdout and stderr arrive interleaved: take the JSON's `"dir"` line.
        let text = String::from_utf8_lossy(&json);
        let dir = text.lines().find_map(|line| {
            let value = line.trim().strip_prefix("\"dir\":")?;
            serde_json::from_str::<String>(value.trim().trim_end_matches(',')).ok()
        });
        Ok(dir.map(PathBuf::from))
    }
}

/// Writes every line to the step's log and keeps the JSON the kernel build prints.
struct Tee<'a> {
    file: &'a mut std::fs::File,
    json: &'a mut Vec<u8>,
}

impl std::io::Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.json.extend_from_slice(buf);
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A step may build a kernel from scratch and run suites on TCG.
const STEP_LIMIT: Duration = Duration::from_secs(4 * 3600);

/// Run a child to its end, its lines to `log` and, indented, to stderr.
fn stream(
    command: &mut std::process::Command,
    log: &mut dyn std::io::Write,
    cancel: &Cancel,
    tag: &str,
) -> Result<std::process::ExitStatus, Failure> {
    let mut observe = |activity: Activity<'_>| {
        if let Activity::Line(line) = activity {
            eprintln!("  {tag} | {line}");
        }
    };
    child::run_logged(
        command,
        Logged {
            log,
            observe: &mut observe,
            limit: STEP_LIMIT,
            cancel,
            inherit_fd: None,
        },
    )
    .infrastructure()
}

fn self_exe() -> Result<PathBuf, Failure> {
    std::env::current_exe()
        .context("failed to find kcycle's own executable")
        .infrastructure()
}

/// Every step's verdict and results, for bisect.md and the evidence.
struct Log {
    dir: PathBuf,
    steps: Vec<Step>,
    conclusion: String,
    tree: Tree,
}

struct Step {
    commit: String,
    described: String,
    verdict: Verdict,
    dir: PathBuf,
    note: String,
}

impl Log {
    fn new(tree: &Tree, dir: &Path) -> Log {
        Log {
            dir: dir.to_path_buf(),
            steps: Vec::new(),
            conclusion: String::new(),
            tree: tree.clone(),
        }
    }

    fn next_dir(&self, commit: &str) -> PathBuf {
        self.dir.join(format!(
            "step-{}-{}",
            self.steps.len() + 1,
            &commit[..commit.len().min(12)]
        ))
    }

    fn last_dir(&self) -> PathBuf {
        self.steps
            .last()
            .map(|s| s.dir.clone())
            .unwrap_or_else(|| self.dir.clone())
    }

    fn record(&mut self, commit: &str, verdict: Verdict, dir: &Path, note: &str) {
        self.steps.push(Step {
            commit: commit.to_string(),
            described: self.tree.describe(commit),
            verdict,
            dir: dir.to_path_buf(),
            note: note.to_string(),
        });
    }

    fn conclude(&mut self, found: Option<&Found>) {
        self.conclusion = match found {
            Some(Found::Commit(commit)) => {
                format!("First bad commit: `{}`", self.tree.describe(commit))
            }
            Some(Found::OneOf(commits)) => format!(
                "The first bad commit is one of: {}",
                commits
                    .iter()
                    .map(|c| format!("`{}`", self.tree.describe(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "The bisection did not end.".into(),
        };
    }

    /// The matching findings of `commit`'s bad run, from its results.json.
    fn evidence(&self, commit: &str, finding: Option<&str>) -> Vec<String> {
        let Some(step) = self
            .steps
            .iter()
            .find(|s| s.commit == commit && s.verdict == Verdict::Bad)
        else {
            return Vec::new();
        };
        let path = step.dir.join(kcycle::report::results_dir::RESULTS_FILE);
        let results = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| kcycle::report::igt_json::parse(&text).ok())
            .map(|(_, results)| results)
            .unwrap_or_default();
        let mut lines: Vec<String> = match finding {
            Some(pattern) => kcycle::bisect::matching(&results, pattern),
            None => results
                .iter()
                .filter(|r| r.status.is_failure())
                .flat_map(|r| r.findings.iter().map(move |f| (r, f)))
                .collect(),
        }
        .into_iter()
        .map(|(result, f)| {
            format!(
                "{}: [{}] {}{}",
                result.name,
                f.kind,
                f.title,
                f.attribution
                    .as_deref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default()
            )
        })
        .collect();
        lines.dedup();
        lines.push(format!("results: {}", step.dir.display()));
        lines
    }

    fn write(&self) {
        let mut text = String::from(
            "# kcycle bisect\n\n| step | commit | verdict | results |\n|---|---|---|---|\n",
        );
        for (i, step) in self.steps.iter().enumerate() {
            text.push_str(&format!(
                "| {} | `{}` | {}{} | {} |\n",
                i + 1,
                step.described,
                step.verdict.as_str(),
                if step.note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", step.note)
                },
                step.dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
        }
        text.push_str(&format!("\n{}\n", self.conclusion));
        let path = self.dir.join("bisect.md");
        if let Err(error) = kcycle::sys::fs::write_atomic(&path, text.as_bytes()) {
            eprintln!("kcycle bisect: failed to write {}: {error}", path.display());
        }
    }
}
