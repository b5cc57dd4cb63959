//! Calendar speed: a century (1,200 cycles) of an anchored and of a cron schedule.
//!
//! Run with `cargo bench -p patchday --bench calendar`. Target: under 10 ms each in release.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use patchday::calendar::{Schedule, ScheduleRule, TimeExpr, parse_cron, parse_zone};

const CYCLES: usize = 1_200;
const ROUNDS: usize = 20;

fn main() {
    let tz = parse_zone("America/New_York").expect("zone");
    let from: DateTime<Utc> = "2000-01-01T00:00:00Z".parse().expect("instant");
    let expr = TimeExpr::parse("patch_tuesday-7d 09:00").expect("expression");
    let anchored = Schedule::new(
        vec![ScheduleRule::anchored(expr, None).expect("rule")],
        tz,
        vec![],
    );
    // The cron crate stops at 2100, so 2000-2099 is exactly 1,200 cycles.
    let cron = parse_cron("0 0 22 8-14 * Sat").expect("cron");
    let cron = Schedule::new(vec![ScheduleRule::Cron(cron)], tz, vec![]);

    report("anchored (patch_tuesday-7d 09:00)", &anchored, from);
    report("cron (0 0 22 8-14 * Sat)", &cron, from);
}

/// Times computing 1,200 cycles, best of a few rounds, and prints the figure.
fn report(name: &str, schedule: &Schedule, from: DateTime<Utc>) {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let count = black_box(schedule)
            .fires_from(black_box(from))
            .take(CYCLES)
            .count();
        best = best.min(started.elapsed());
        assert_eq!(count, CYCLES, "{name}");
    }
    let ms = best.as_secs_f64() * 1_000.0;
    let verdict = if ms < 10.0 {
        "ok, target < 10 ms"
    } else {
        "SLOWER than the 10 ms target"
    };
    println!("{name}: {CYCLES} cycles in {ms:.3} ms ({verdict})");
}
