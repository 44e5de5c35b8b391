//! What an `apt-get install` would do, from its simulation
//! (`apt-get -s install ...`), and whether kcycle may go ahead. Pure.
//!
//! kcycle never removes a package the user has: it installs with
//! `--no-remove`, and before that reads the simulation so that it can say
//! what conflicts and what to do instead of apt's bare "Packages need to be
//! removed but remove is disabled".

/// A package apt would remove, with the version installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub name: String,
    pub version: Option<String>,
}

/// The parts of an apt simulation kcycle acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// `Inst` lines: packages installed or upgraded.
    pub installs: Vec<String>,
    /// `Remv` lines, or the "will be REMOVED" list when apt printed no actions
    /// (as it does with `--no-remove`).
    pub removals: Vec<Removal>,
    /// `E:` lines: apt could not make a plan at all.
    pub errors: Vec<String>,
}

/// Parse `apt-get -s install` output (stdout and stderr together).
pub fn parse_simulation(output: &str) -> Plan {
    let mut plan = Plan::default();
    let mut listed: Vec<String> = Vec::new();
    let mut in_removed_list = false;
    for line in output.lines() {
        if in_removed_list {
            if line.starts_with(' ') {
                listed.extend(
                    line.split_whitespace()
                        .map(|n| n.trim_end_matches('*').into()),
                );
                continue;
            }
            in_removed_list = false;
        }
        if line.starts_with("The following packages will be REMOVED") {
            in_removed_list = true;
        } else if let Some(rest) = line.strip_prefix("Remv ") {
            let mut words = rest.split_whitespace();
            let name = words.next().unwrap_or_default().to_string();
            let version = words
                .next()
                .and_then(|v| v.strip_prefix('[')?.strip_suffix(']'))
                .map(str::to_string);
            plan.removals.push(Removal { name, version });
        } else if let Some(rest) = line.strip_prefix("Inst ") {
            plan.installs
                .push(rest.split_whitespace().next().unwrap_or_default().into());
        } else if let Some(error) = line.strip_prefix("E: ") {
            plan.errors.push(error.trim().to_string());
        }
    }
    for name in listed {
        if !plan.removals.iter().any(|r| r.name == name) {
            plan.removals.push(Removal {
                name,
                version: None,
            });
        }
    }
    plan
}

/// Versions apt offers and the release each comes from, from `apt-cache
/// madison` lines (`qemu-system-x86 | 1:10.0.2+ds-2+deb13u1~bpo12+1 |
/// http://deb.debian.org/debian bookworm-backports/main amd64 Packages`).
pub fn parse_madison_releases(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('|').map(str::trim);
            fields.next()?;
            let version = fields.next()?;
            let release = fields
                .next()?
                .split_whitespace()
                .nth(1)?
                .split('/')
                .next()?;
            Some((version.to_string(), release.to_string()))
        })
        .collect()
}

/// The release to install QEMU from so that the QEMU packages the user has
/// stay: the one that offers the removed QEMU package's own version (e.g.
/// bookworm-backports for qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1).
pub fn qemu_release(plan: &Plan, offered: &[(String, String)]) -> Option<String> {
    plan.removals
        .iter()
        .filter(|r| r.name.starts_with("qemu"))
        .filter_map(|r| r.version.as_deref())
        .find_map(|version| {
            offered
                .iter()
                .find(|(v, _)| v == version)
                .map(|(_, release)| release.clone())
        })
}

/// What to tell the user when installing `apt_args` would remove packages:
/// `None` when nothing would be removed. `sudo` is the prefix the printed
/// commands need ("" for root, "sudo " otherwise).
pub fn refusal(plan: &Plan, apt_args: &[String], sudo: &str) -> Option<String> {
    if plan.removals.is_empty() {
        return None;
    }
    let mut message =
        String::from("installing the host packages would remove packages you have:\n");
    for removal in &plan.removals {
        match &removal.version {
            Some(version) => message.push_str(&format!("  {} {version}\n", removal.name)),
            None => message.push_str(&format!("  {}\n", removal.name)),
        }
    }
    message.push_str(&format!(
        "to install: {}\nkcycle changed nothing. Either:\n",
        apt_args.join(" ")
    ));
    let qemu = plan.removals.iter().any(|r| r.name.starts_with("qemu"))
        || apt_args.iter().any(|a| a.starts_with("qemu-system-x86"));
    if qemu {
        let from = if plan
            .removals
            .iter()
            .any(|r| r.version.as_deref().is_some_and(|v| v.contains("~bpo")))
        {
            format!(
                "  - keep them and install QEMU from where they came from (bookworm-backports):\n      \
                 {sudo}apt-get install -t bookworm-backports --no-install-recommends qemu-system-x86\n"
            )
        } else {
            "  - keep them and install a QEMU that fits them yourself;\n".to_string()
        };
        message.push_str(&from);
        message.push_str(
            "    kcycle uses any qemu-system-x86_64 of version 7.2 or newer on PATH, \
             so `kcycle setup` then asks for no QEMU package;\n",
        );
    } else {
        message
            .push_str("  - keep them and install the packages that conflict with them yourself;\n");
    }
    message.push_str(&format!(
        "  - or accept the removal: `kcycle setup --allow-remove`, or\n      \
         {sudo}apt-get install -y --no-install-recommends {}",
        apt_args.join(" ")
    ));
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on Debian bookworm: busybox conflicts with the installed busybox-static.
    const REMOVES: &str = include_str!("fixtures/apt-s-removes-busybox-static.txt");
    // The same with --no-remove: apt lists the removal, prints no actions and an error.
    const NO_REMOVE: &str = include_str!("fixtures/apt-s-no-remove-refused.txt");
    // Captured: a plain install.
    const INSTALLS: &str = include_str!("fixtures/apt-s-installs-only.txt");
    // The case, written in the captured format: qemu-utils from
    // bookworm-backports is newer than bookworm's qemu-system-x86 allows.
    const BACKPORTS: &str = include_str!("fixtures/apt-s-backports-qemu-utils.txt");

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_plain_install_goes_ahead() {
        let plan = parse_simulation(INSTALLS);
        assert_eq!(plan.installs, ["sl"]);
        assert!(plan.removals.is_empty() && plan.errors.is_empty());
        assert_eq!(refusal(&plan, &args(&["sl"]), ""), None);
    }

    #[test]
    fn a_removal_stops_with_what_and_the_command_to_accept_it() {
        let plan = parse_simulation(REMOVES);
        assert_eq!(
            plan.removals,
            [Removal {
                name: "busybox-static".into(),
                version: Some("1:1.35.0-4+deb12u1+b1".into())
            }]
        );
        let message = refusal(&plan, &args(&["busybox"]), "sudo ").unwrap();
        assert!(
            message.contains("  busybox-static 1:1.35.0-4+deb12u1+b1\n"),
            "{message}"
        );
        assert!(message.contains("kcycle changed nothing"), "{message}");
        assert!(
            message.ends_with("sudo apt-get install -y --no-install-recommends busybox"),
            "{message}"
        );
        assert!(!message.contains("QEMU"), "{message}");
    }

    #[test]
    fn no_remove_output_still_names_the_removal() {
        let plan = parse_simulation(NO_REMOVE);
        assert_eq!(plan.removals.len(), 1);
        assert_eq!(plan.removals[0].name, "busybox-static");
        assert_eq!(plan.removals[0].version, None);
        assert_eq!(
            plan.errors,
            ["Packages need to be removed but remove is disabled."]
        );
        assert!(refusal(&plan, &args(&["busybox"]), "").is_some());
    }

    #[test]
    fn qemu_comes_from_the_release_of_the_qemu_packages_the_user_has() {
        // Captured format of `apt-cache madison qemu-system-x86`, plus a backports line.
        let madison = "qemu-system-x86 | 1:10.0.2+ds-2+deb13u1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main amd64 Packages\n\
             qemu-system-x86 | 1:7.2+dfsg-7+deb12u18+b3 | http://deb.debian.org/debian bookworm/main amd64 Packages\n\
             qemu-system-x86 | 1:7.2+dfsg-7+deb12u15 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages\n";
        let offered = parse_madison_releases(madison);
        assert_eq!(
            offered[2],
            ("1:7.2+dfsg-7+deb12u15".into(), "bookworm-security".into())
        );
        let mut plan = parse_simulation(BACKPORTS);
        // The fixture's qemu-utils is 8.2.2 from backports; the archive now offers 10.0.2 there.
        assert_eq!(
            qemu_release(&plan, &offered),
            None,
            "no release has that version"
        );
        plan.removals[1].version = Some("1:10.0.2+ds-2+deb13u1~bpo12+1".into());
        assert_eq!(
            qemu_release(&plan, &offered).as_deref(),
            Some("bookworm-backports")
        );
        assert_eq!(qemu_release(&parse_simulation(REMOVES), &offered), None);
    }

    #[test]
    fn a_backports_qemu_conflict_points_at_backports_and_the_installed_qemu_rule() {
        let plan = parse_simulation(BACKPORTS);
        let names: Vec<&str> = plan.removals.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["qemu-block-extra", "qemu-utils"]);
        assert_eq!(plan.installs.len(), 3);
        let message = refusal(&plan, &args(&["qemu-system-x86", "clang"]), "").unwrap();
        assert!(
            message.contains("  qemu-utils 1:8.2.2+ds-1~bpo12+1\n"),
            "{message}"
        );
        assert!(
            message.contains(
                "apt-get install -t bookworm-backports --no-install-recommends qemu-system-x86"
            ),
            "{message}"
        );
        assert!(message.contains("version 7.2 or newer"), "{message}");
        assert!(
            message.ends_with("apt-get install -y --no-install-recommends qemu-system-x86 clang"),
            "{message}"
        );
    }
}
