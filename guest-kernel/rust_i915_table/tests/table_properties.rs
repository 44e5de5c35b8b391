//! Property tests of the table core: for every table shape and every sequence of step outcomes,
//! init and exit set up and tear down exactly like the C `i915_init`/`i915_exit` are meant to.

use core::ops::ControlFlow;

use proptest::prelude::*;
use rust_i915_table::table::{CheckFn, End, ExitFn, InitFn, Step, Table};

/// Longest table the generator builds (i915's 6.12 table has 13 rows).
const MAX_STEPS: usize = 13;

/// What a step's init does when it runs. An owning step treats `Stop` like `Proceed`: it has no
/// way to end init early, which is the point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Proceed,
    Stop,
    Fail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Owns,
    Gate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    InitOk(usize),
    InitFailed(usize),
    Checked(usize),
    Exit(usize),
}

/// The error a failing step returns: its own index, so the test can tell whose error came back.
#[derive(Debug, PartialEq, Eq)]
struct Failed(usize);

/// Fake kernel: what each step will do, what is set up right now, and everything that ran.
struct World {
    script: Vec<Outcome>,
    set_up: Vec<bool>,
    log: Vec<Event>,
}

impl World {
    fn new(script: Vec<Outcome>) -> Self {
        let set_up = vec![false; script.len()];
        World {
            script,
            set_up,
            log: Vec::new(),
        }
    }
}

// Steps are plain `fn` pointers (as in the kernel), so each step index gets its own
// monomorphized function through a const generic.
fn owns_init<const I: usize>(world: &mut World) -> Result<(), Failed> {
    if world.script[I] == Outcome::Fail {
        world.log.push(Event::InitFailed(I));
        return Err(Failed(I));
    }
    world.log.push(Event::InitOk(I));
    world.set_up[I] = true;
    Ok(())
}

fn owns_exit<const I: usize>(world: &mut World) {
    world.log.push(Event::Exit(I));
    world.set_up[I] = false;
}

fn gate_check<const I: usize>(world: &mut World) -> Result<ControlFlow<()>, Failed> {
    world.log.push(Event::Checked(I));
    match world.script[I] {
        Outcome::Proceed => Ok(ControlFlow::Continue(())),
        Outcome::Stop => Ok(ControlFlow::Break(())),
        Outcome::Fail => Err(Failed(I)),
    }
}

macro_rules! per_index {
    ($f:ident) => {
        [
            $f::<0>, $f::<1>, $f::<2>, $f::<3>, $f::<4>, $f::<5>, $f::<6>, $f::<7>, $f::<8>,
            $f::<9>, $f::<10>, $f::<11>, $f::<12>,
        ]
    };
}

const INITS: [InitFn<World, Failed>; MAX_STEPS] = per_index!(owns_init);
const EXITS: [ExitFn<World>; MAX_STEPS] = per_index!(owns_exit);
const CHECKS: [CheckFn<World, Failed>; MAX_STEPS] = per_index!(gate_check);
const NAMES: [&str; MAX_STEPS] = [
    "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12",
];

fn build(kinds: &[Kind]) -> Vec<Step<World, Failed>> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| match kind {
            Kind::Owns => Step::Owns {
                name: NAMES[i],
                init: INITS[i],
                exit: EXITS[i],
            },
            Kind::Gate => Step::Gate {
                name: NAMES[i],
                check: CHECKS[i],
            },
        })
        .collect()
}

fn rows() -> impl Strategy<Value = Vec<(Kind, Outcome)>> {
    let kind = prop_oneof![Just(Kind::Owns), Just(Kind::Gate)];
    let outcome = prop_oneof![
        4 => Just(Outcome::Proceed),
        1 => Just(Outcome::Stop),
        1 => Just(Outcome::Fail),
    ];
    prop::collection::vec((kind, outcome), 0..=MAX_STEPS)
}

/// The first step that ends the walk (a failing step, or a gate that stops) and how.
fn first_end(rows: &[(Kind, Outcome)]) -> Option<(usize, Outcome)> {
    rows.iter()
        .enumerate()
        .find_map(|(i, &(kind, outcome))| match (kind, outcome) {
            (_, Outcome::Fail) => Some((i, Outcome::Fail)),
            (Kind::Gate, Outcome::Stop) => Some((i, Outcome::Stop)),
            _ => None,
        })
}

/// Checks the log of one init (+ exit) against the rules every teardown must follow.
fn check_teardown_rules(world: &World) -> Result<(), TestCaseError> {
    let mut exited = vec![false; world.script.len()];
    let mut last_exit: Option<usize> = None;
    for (at, event) in world.log.iter().enumerate() {
        let Event::Exit(i) = *event else { continue };
        prop_assert!(!exited[i], "exit of step {i} ran twice: {:?}", world.log);
        exited[i] = true;
        prop_assert!(
            world.log[..at].contains(&Event::InitOk(i)),
            "exit of step {i} ran without a successful init before it: {:?}",
            world.log
        );
        if let Some(previous) = last_exit {
            prop_assert!(
                i < previous,
                "exit of step {i} ran after exit of step {previous}: not reverse order: {:?}",
                world.log
            );
        }
        last_exit = Some(i);
    }
    Ok(())
}

proptest! {
    #[test]
    fn init_then_exit_leaves_nothing_set_up(rows in rows()) {
        let kinds: Vec<Kind> = rows.iter().map(|row| row.0).collect();
        let steps = build(&kinds);
        let table = Table::new(&steps);
        let mut world = World::new(rows.iter().map(|row| row.1).collect());

        let result = table.init(&mut world);
        let init_events = world.log.len();
        let expected_end = first_end(&rows);
        match (result, expected_end) {
            (Ok(progress), Some((at, Outcome::Stop))) => {
                prop_assert_eq!(progress.end(), End::StoppedAt(NAMES[at]));
                prop_assert_eq!(progress.steps_done(), at);
                progress.exit(&mut world);
            }
            (Ok(progress), None) => {
                prop_assert_eq!(progress.end(), End::Completed);
                prop_assert_eq!(progress.steps_done(), rows.len());
                progress.exit(&mut world);
            }
            (Err(err), Some((at, Outcome::Fail))) => prop_assert_eq!(err, Failed(at)),
            (result, expected) => prop_assert!(
                false,
                "init returned {:?}, expected the walk to end at {:?}",
                result.map(|p| p.end()),
                expected
            ),
        }

        // Init walked exactly up to where the script says the walk ends, nothing after it.
        let walked = expected_end.map_or(rows.len(), |(at, _)| at + 1);
        let ran: Vec<usize> = world.log[..init_events]
            .iter()
            .filter_map(|event| match *event {
                Event::InitOk(i) | Event::InitFailed(i) | Event::Checked(i) => Some(i),
                Event::Exit(_) => None,
            })
            .collect();
        prop_assert_eq!(ran, (0..walked).collect::<Vec<_>>());

        check_teardown_rules(&world)?;
        prop_assert!(
            world.set_up.iter().all(|up| !up),
            "still set up after init+exit: {:?} (log {:?})",
            world.set_up,
            world.log
        );
        // Every owning step whose init succeeded was torn down: "nothing left" above is not
        // satisfied by exits that never ran because nothing was ever set up.
        for (i, event) in world.log.iter().enumerate() {
            if let Event::InitOk(step) = *event {
                prop_assert!(world.log[i..].contains(&Event::Exit(step)));
            }
        }
    }
}

fn owning(name: &'static str, i: usize) -> Step<World, Failed> {
    Step::Owns {
        name,
        init: INITS[i],
        exit: EXITS[i],
    }
}

fn gate(name: &'static str, i: usize) -> Step<World, Failed> {
    Step::Gate {
        name,
        check: CHECKS[i],
    }
}

/// The shape of the kernel module's table: nomodeset gate, globals, selftests gate, pci, sysctl.
fn module_shape() -> Vec<Step<World, Failed>> {
    vec![
        gate("nomodeset", 0),
        owning("globals", 1),
        gate("mock_selftests", 2),
        owning("pci", 3),
        owning("sysctl", 4),
    ]
}

#[test]
fn stop_at_first_step_tears_down_nothing() {
    let steps = module_shape();
    let mut world = World::new(vec![
        Outcome::Stop,
        Outcome::Proceed,
        Outcome::Proceed,
        Outcome::Proceed,
        Outcome::Proceed,
    ]);
    let progress = Table::new(&steps)
        .init(&mut world)
        .expect("a stopping gate is success");
    assert_eq!(progress.end(), End::StoppedAt("nomodeset"));
    assert_eq!(progress.steps_done(), 0);
    progress.exit(&mut world);
    assert_eq!(world.log, vec![Event::Checked(0)]);
}

#[test]
fn selftests_gate_stops_and_exit_tears_down_globals_only() {
    let steps = module_shape();
    let mut world = World::new(vec![
        Outcome::Proceed,
        Outcome::Proceed,
        Outcome::Stop,
        Outcome::Proceed,
        Outcome::Proceed,
    ]);
    let progress = Table::new(&steps)
        .init(&mut world)
        .expect("a stopping gate is success");
    assert_eq!(progress.end(), End::StoppedAt("mock_selftests"));
    progress.exit(&mut world);
    assert_eq!(
        world.log,
        vec![
            Event::Checked(0),
            Event::InitOk(1),
            Event::Checked(2),
            Event::Exit(1)
        ]
    );
}

#[test]
fn failure_unwinds_earlier_owning_steps_in_reverse() {
    let steps = module_shape();
    let mut world = World::new(vec![
        Outcome::Proceed,
        Outcome::Proceed,
        Outcome::Proceed,
        Outcome::Proceed,
        Outcome::Fail,
    ]);
    let err = Table::new(&steps).init(&mut world).err();
    assert_eq!(err, Some(Failed(4)));
    assert_eq!(
        world.log,
        vec![
            Event::Checked(0),
            Event::InitOk(1),
            Event::Checked(2),
            Event::InitOk(3),
            Event::InitFailed(4),
            Event::Exit(3),
            Event::Exit(1),
        ]
    );
}

#[test]
fn full_init_then_exit_reverses_everything() {
    let steps = module_shape();
    let mut world = World::new(vec![Outcome::Proceed; 5]);
    let progress = Table::new(&steps).init(&mut world).expect("nothing fails");
    assert_eq!(progress.end(), End::Completed);
    assert_eq!(progress.steps_done(), 5);
    progress.exit(&mut world);
    assert_eq!(
        &world.log[5..],
        &[Event::Exit(4), Event::Exit(3), Event::Exit(1)]
    );
}

#[test]
fn step_names_are_found() {
    let steps = module_shape();
    let table = Table::new(&steps);
    assert!(table.has_step("pci"));
    assert!(!table.has_step("pmu"));
    let names: Vec<&str> = table.steps().iter().map(Step::name).collect();
    assert_eq!(
        names,
        ["nomodeset", "globals", "mock_selftests", "pci", "sysctl"]
    );
}
