use std::path::Path;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Suite, SuiteError> {
    Suite::parse(Path::new("suites/example.toml"), text)
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

const EXAMPLE: &str = r#"
name = "rust-table"
cmdline = ["slub_debug=U,rust_i915_*"]
step_timeout = 30

[[test]]
name = "clean-cycles"
cycles = 3
steps = [
    { load = "rust_i915_table", params = { mock_selftests = -1, legacy_exit = false, fail_at = "globals" } },
    { unload = "rust_i915_table", timeout = 5 },
]

[[test]]
name = "mock"
steps = [{ selftest = "i915", kind = "i915-mock", filter = "i915_gem_*" }]
expect = [{ kind = "sysfs-duplicate", title = "*rust_i915_*" }]

[[known_issue]]
test = "kcycle@rust-table@mock"
title = "WARNING in *"
reason = "https://example.invalid/bug/1"
"#;

#[test]
fn example_parses_into_the_model() {
    let suite = parse(EXAMPLE).unwrap();
    assert_eq!(suite.name, "rust-table");
    assert_eq!(suite.guest, GuestMode::Emulated);
    assert_eq!(suite.cmdline, ["slub_debug=U,rust_i915_*"]);
    assert_eq!(suite.tests.len(), 2);

    let clean = &suite.tests[0];
    assert_eq!(clean.name, "kcycle@rust-table@clean-cycles");
    assert_eq!(clean.cycles, 3);
    let Action::Load { module, params } = &clean.steps[0].action else {
        panic!("first step is not a load: {:?}", clean.steps[0]);
    };
    assert_eq!(module, "rust_i915_table");
    let rendered: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(
        rendered,
        ["fail_at=globals", "legacy_exit=0", "mock_selftests=-1"]
    );
    assert_eq!(clean.steps[0].timeout, Duration::from_secs(30));
    assert_eq!(clean.steps[1].timeout, Duration::from_secs(5));

    let mock = &suite.tests[1];
    assert_eq!(mock.cycles, 1);
    assert!(matches!(
        &mock.steps[0].action,
        Action::Selftest { kind: SelftestKind::I915Mock, filter: Some(f), .. } if f == "i915_gem_*"
    ));
    assert_eq!(mock.expect[0].kind, "sysfs-duplicate");
    assert_eq!(
        suite.known_issues[0].reason,
        "https://example.invalid/bug/1"
    );
    assert_eq!(suite.modules(), ["rust_i915_table", "i915"]);
}

#[test]
fn name_defaults_to_the_file_stem() {
    let suite = parse("[[test]]\nname = \"a\"\nsteps = [{ load = \"m\" }]\n").unwrap();
    assert_eq!(suite.name, "example");
    assert_eq!(suite.tests[0].name, "kcycle@example@a");
}

#[test]
fn unknown_field_names_file_line_column_and_field() {
    let err = error("[[test]]\nname = \"a\"\nstepz = []\n");
    assert!(
        err.starts_with("failed to parse suite suites/example.toml:3:1:"),
        "{err}"
    );
    assert!(err.contains("stepz"), "{err}");
    assert!(err.ends_with("\n    3 | stepz = []"), "{err}");
}

#[test]
fn misspelt_action_is_an_unknown_field_with_its_position() {
    let err = error("[[test]]\nname = \"a\"\nsteps = [\n  { lod = \"m\" },\n]\n");
    assert!(err.contains("example.toml:4:"), "{err}");
    assert!(err.contains("lod"), "{err}");
}

#[test]
fn step_rules_are_checked_with_positions() {
    let cases = [
        (
            "{ load = \"m\", unload = \"m\" }",
            "exactly one action, this one has load, unload",
        ),
        ("{ params = { a = 1 } }", "needs one of `load`"),
        (
            "{ unload = \"m\", params = { a = 1 } }",
            "`params` is not allowed on `unload`",
        ),
        (
            "{ load = \"m\", kind = \"kunit\" }",
            "`kind` belongs to `selftest` steps",
        ),
        ("{ selftest = \"m\" }", "field `kind` is missing"),
        (
            "{ selftest = \"i915\", kind = \"i915-live\" }",
            "need a real GPU",
        ),
        ("{ load = \"m; reboot\" }", "contains ';'"),
        (
            "{ load = \"m\", params = { a = \"$(id)\" } }",
            "contains '$'",
        ),
        (
            "{ load = \"m\", params = { a = [1] } }",
            "must be an integer, boolean or string, not array",
        ),
        (
            "{ load = \"m\", timeout = 0 }",
            "`timeout` must be at least 1 second",
        ),
        ("{ load = \"../m\" }", "contains '..'"),
        (
            "{ hotunplug = \"gpu0\" }",
            "no pluggable device \"gpu0\": emulated guests have `standin`",
        ),
        (
            "{ unbind = \"drv\", params = { a = 1 } }",
            "`params` is not allowed on `unbind`",
        ),
        ("{ bind = \"drv x\" }", "contains ' '"),
    ];
    for (step, expected) in cases {
        let err = error(&format!(
            "[[test]]\nname = \"a\"\nsteps = [\n  {step},\n]\n"
        ));
        assert!(err.contains("example.toml:4:3:"), "{step}: {err}");
        assert!(err.contains("test \"a\" step 1:"), "{step}: {err}");
        assert!(err.contains(expected), "{step}: {err}");
    }
}

#[test]
fn suite_level_mistakes_are_named() {
    let cases = [
        ("", "no tests"),
        ("name = \"a b\"\n[[test]]\nname = \"t\"\nsteps = [{ load = \"m\" }]", "field `name`"),
        ("[[test]]\nname = \"t\"\nsteps = []", "field `steps` is empty"),
        ("[[test]]\nname = \"t\"\ncycles = 0\nsteps = [{ load = \"m\" }]", "`cycles` must be 1 to"),
        (
            "[[test]]\nname = \"t\"\nsteps = [{ load = \"m\" }]\n[[test]]\nname = \"t\"\nsteps = [{ load = \"m\" }]",
            "used twice",
        ),
        ("cmdline = [\"a b\"]\n[[test]]\nname = \"t\"\nsteps = [{ load = \"m\" }]", "without spaces"),
        ("guest = \"cloud\"\n[[test]]\nname = \"t\"\nsteps = [{ load = \"m\" }]", "cloud"),
        (
            "[[test]]\nname = \"t\"\nsteps = [{ load = \"m\" }]\n[[known_issue]]\ntest = \"*\"\nreason = \"\"",
            "`reason` of a known issue is empty",
        ),
    ];
    for (text, expected) in cases {
        let err = error(text);
        assert!(
            err.starts_with("failed to parse suite suites/example.toml:"),
            "{err}"
        );
        assert!(err.contains(expected), "{text:?}: {err}");
    }
}

#[test]
fn missing_file_is_named() {
    let err = Suite::load(Path::new("/nonexistent/suite.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to read suite /nonexistent/suite.toml"
    );
}

#[test]
fn garbage_never_panics() {
    for text in [
        "\0\0",
        "[[test]",
        "test = 5",
        "[[test]]\nsteps = [{}]",
        "é = ü",
    ] {
        assert!(parse(text).is_err(), "{text:?}");
    }
}

#[test]
fn shipped_suites_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let suite = Suite::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                Some(suite.name.as_str()),
                path.file_stem().and_then(|s| s.to_str())
            );
            count += 1;
        }
    }
    assert!(count >= 1, "no suites in {}", dir.display());
}

fn names(selected: &[(&Suite, &Test)]) -> Vec<String> {
    selected.iter().map(|(_, t)| t.name.clone()).collect()
}

#[test]
fn filter_selects_by_glob_and_says_what_exists() {
    let suites = [parse(EXAMPLE).unwrap()];
    assert_eq!(
        names(&select(&suites, Some("*@mock"), None).unwrap()),
        ["kcycle@rust-table@mock"]
    );
    let err = select(&suites, Some("*@nothing"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("matches no test"), "{err}");
    assert!(err.contains("kcycle@rust-table@clean-cycles"), "{err}");
    assert!(select(&suites, Some("a[b"), None).is_err());
}

#[test]
fn shard_parsing() {
    assert_eq!(
        "2/4".parse::<Shard>().unwrap(),
        Shard { index: 2, count: 4 }
    );
    for bad in ["0/4", "5/4", "1/0", "x/2", "3", ""] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
}

proptest::proptest! {
    #[test]
    fn shards_partition_the_tests(tests in 1usize..40, count in 1usize..9) {
        let text: String = (0..tests)
            .map(|i| format!("[[test]]\nname = \"t{i}\"\nsteps = [{{ load = \"m\" }}]\n"))
            .collect();
        let suites = [parse(&text).unwrap()];
        let all = names(&select(&suites, None, None).unwrap());
        let mut union = Vec::new();
        let mut sizes = Vec::new();
        for index in 1..=count {
            let part = names(&select(&suites, None, Some(Shard { index, count })).unwrap());
            sizes.push(part.len());
            union.extend(part);
        }
        union.sort();
        let mut expected = all.clone();
        expected.sort();
        proptest::prop_assert_eq!(union, expected);
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        proptest::prop_assert!(max - min <= 1);
    }
}

#[test]
fn sweep_steps_parse_with_their_method() {
    let suite = parse(
        "[[test]]\nname = \"t\"\nsteps = [\n{ sweep = \"kcycle_leaks\" },\n{ sweep = \"kcycle_leaks\", method = \"param\", points = [\"slab\", \"proc\"], params = { unwind_leak = \"proc\" } },\n]\n",
    )
    .unwrap();
    let steps = &suite.tests[0].steps;
    assert!(matches!(
        &steps[0].action,
        Action::Sweep {
            method: SweepMethod::FailNth,
            limit: DEFAULT_SWEEP_LIMIT,
            ..
        }
    ));
    let Action::Sweep {
        method: SweepMethod::Param { name, points },
        params,
        ..
    } = &steps[1].action
    else {
        panic!("{:?}", steps[1]);
    };
    assert_eq!((name.as_str(), points.len()), ("fail_at", 2));
    assert!(params.contains_key("unwind_leak"));
    assert_eq!(suite.modules(), ["kcycle_leaks"]);
}

#[test]
fn sweep_fields_are_checked() {
    let step = |s: &str| error(&format!("[[test]]\nname = \"t\"\nsteps = [{s}]\n"));
    assert!(step("{ sweep = \"m\", method = \"param\" }").contains("needs `points"));
    assert!(
        step("{ sweep = \"m\", method = \"chaos\" }").contains("one of \"fail-nth\", \"param\"")
    );
    assert!(step("{ sweep = \"m\", points = [\"a\"] }").contains("belong to `method = \"param\"`"));
    assert!(step("{ sweep = \"m\", limit = 0 }").contains("at least 1"));
    assert!(step("{ load = \"m\", limit = 3 }").contains("belongs to `sweep` steps"));
    assert!(
        step("{ sweep = \"m\", method = \"param\", points = [\"a;b\"] }")
            .contains("field `points`")
    );
}

#[test]
fn expectations_need_known_kinds_located_at_the_entry() {
    let err = error(
        "[[test]]\nname = \"t\"\nsteps = [{ load = \"i915\" }]\nexpect = [{ kind = \"leaked-slab\" }]",
    );
    assert!(err.contains("suites/example.toml:4"), "{err}");
    assert!(err.contains("finding kind `leaked-slab`"), "{err}");
    assert!(err.contains("leaked-slab-cache"), "{err}");
    // Faults are kinds a control can expect.
    let suite = parse(
        "[[test]]\nname = \"t\"\nsteps = [{ load = \"i915\" }]\nexpect = [{ kind = \"crash\" }]",
    )
    .unwrap();
    assert_eq!(
        suite.tests[0].expect[0].kind,
        crate::kind::FindingKind::Fault(crate::kind::Fault::Crash)
    );
}
