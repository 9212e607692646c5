//! RFC 2782 target selection: the order in which a domain's SRV targets are
//! tried.
//!
//! This module is pure: the randomness the weights call for is passed in, so
//! the ordering is deterministic under test.

/// One SRV resource record's data (RFC 2782): where a service is offered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SrvRecord {
    /// Lower is tried first (0..=65535).
    pub priority: u16,
    /// Relative share of the selections among records of equal priority;
    /// 0 means "only when no other record of that priority is left, or by a
    /// small chance" (RFC 2782).
    pub weight: u16,
    /// TCP port of the service on the target.
    pub port: u16,
    /// Host name of the target as it appears in DNS (a trailing dot is
    /// allowed). `"."` alone means the service is decidedly not available.
    pub target: String,
}

impl SrvRecord {
    /// Whether this record's target is the root (`"."`), which RFC 2782
    /// reserves for "the service is decidedly not available at this domain".
    #[must_use]
    pub fn is_root_target(&self) -> bool {
        self.target == "." || self.target.is_empty()
    }
}

/// The order in which to try `records`, following RFC 2782.
///
/// * Records are grouped by ascending priority; every record of a lower
///   priority comes before every record of a higher one.
/// * Within one priority the order is a weighted random draw without
///   replacement: the remaining records are listed with those of weight 0
///   first, a number `r` is drawn uniformly from `0..=sum of their weights`,
///   and the first record whose running weight sum is at least `r` is taken
///   next. So a weight-0 record is picked only when `r` is 0 (a small chance
///   while heavier records remain, a certainty once only weight-0 records
///   are left), exactly as RFC 2782 prescribes.
/// * A sole record whose target is `"."` means the service is decidedly not
///   available: the result is empty. A `"."` record among others is skipped.
///
/// `random(max)` must return a uniformly distributed integer in `0..=max`;
/// values above `max` are clamped. Tests pass a scripted or seeded source.
pub fn order_srv(records: &[SrvRecord], mut random: impl FnMut(u64) -> u64) -> Vec<SrvRecord> {
    let mut candidates: Vec<&SrvRecord> = records.iter().filter(|r| !r.is_root_target()).collect();
    // A stable sort keeps the DNS order among equal priorities; the weighted
    // draw below then decides their order.
    candidates.sort_by_key(|r| r.priority);

    let mut ordered = Vec::with_capacity(candidates.len());
    let mut start = 0;
    while start < candidates.len() {
        let priority = candidates[start].priority;
        let end = start
            + candidates[start..]
                .iter()
                .take_while(|r| r.priority == priority)
                .count();
        order_one_priority(&candidates[start..end], &mut random, &mut ordered);
        start = end;
    }
    ordered
}

/// Appends the records of one priority to `out` in weighted random order.
fn order_one_priority(
    group: &[&SrvRecord],
    random: &mut impl FnMut(u64) -> u64,
    out: &mut Vec<SrvRecord>,
) {
    // Weight-0 records first, as RFC 2782 requires for the running sums.
    let mut remaining: Vec<&SrvRecord> = group.iter().copied().filter(|r| r.weight == 0).collect();
    remaining.extend(group.iter().copied().filter(|r| r.weight != 0));

    while !remaining.is_empty() {
        let total: u64 = remaining.iter().map(|r| u64::from(r.weight)).sum();
        let draw = random(total).min(total);
        let mut running = 0u64;
        let index = remaining
            .iter()
            .position(|r| {
                running += u64::from(r.weight);
                running >= draw
            })
            // `draw <= total` and the last running sum is `total`, so some
            // position always matches; fall back to the last one regardless.
            .unwrap_or(remaining.len() - 1);
        out.push(remaining.remove(index).clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 912,
            target: target.to_owned(),
        }
    }

    fn targets(records: &[SrvRecord]) -> Vec<&str> {
        records.iter().map(|r| r.target.as_str()).collect()
    }

    /// A small deterministic generator (SplitMix64) for distribution tests.
    struct SplitMix(u64);

    impl SplitMix {
        fn below_or_equal(&mut self, max: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            z % (max + 1)
        }
    }

    #[test]
    fn ascending_priority_regardless_of_dns_order() {
        let records = [rec(20, 5, "c."), rec(0, 5, "a."), rec(10, 5, "b.")];
        let ordered = order_srv(&records, |_| 0);
        assert_eq!(targets(&ordered), ["a.", "b.", "c."]);
    }

    #[test]
    fn lower_priority_always_first_whatever_the_draw() {
        let records = [rec(2, 65535, "heavy."), rec(1, 1, "light.")];
        for draw in [0, 1, 1000, u64::MAX] {
            let ordered = order_srv(&records, |_| draw);
            assert_eq!(targets(&ordered), ["light.", "heavy."], "draw {draw}");
        }
    }

    #[test]
    fn draw_selects_by_running_sum() {
        // Running sums: a=10, b=30, c=60.
        let records = [rec(0, 10, "a."), rec(0, 20, "b."), rec(0, 30, "c.")];

        // 25 falls in b's share (11..=30); then over a,c (sum 40), 40 picks c.
        let mut draws = vec![25, 40, 0].into_iter();
        let mut maxima = Vec::new();
        let ordered = order_srv(&records, |max| {
            maxima.push(max);
            draws.next().expect("one draw per selection")
        });
        assert_eq!(targets(&ordered), ["b.", "c.", "a."]);
        // The draw range shrinks as records are taken.
        assert_eq!(maxima, [60, 40, 10]);

        // Boundaries: 10 is still a's, 11 is b's.
        assert_eq!(order_srv(&records, |_| 10)[0].target, "a.");
        assert_eq!(order_srv(&records, |_| 11)[0].target, "b.");
    }

    #[test]
    fn weight_zero_records_only_on_a_zero_draw() {
        let records = [rec(0, 50, "heavy."), rec(0, 0, "zero.")];
        // A zero draw hits the weight-0 record, which RFC 2782 puts first.
        assert_eq!(targets(&order_srv(&records, |_| 0)), ["zero.", "heavy."]);
        // Any positive draw takes the weighted record, and the weight-0 one
        // follows as the only record left.
        assert_eq!(targets(&order_srv(&records, |_| 1)), ["heavy.", "zero."]);
    }

    #[test]
    fn all_weight_zero_are_all_returned() {
        let records = [rec(0, 0, "a."), rec(0, 0, "b."), rec(0, 0, "c.")];
        let mut maxima = Vec::new();
        let ordered = order_srv(&records, |max| {
            maxima.push(max);
            max
        });
        assert_eq!(targets(&ordered), ["a.", "b.", "c."]);
        assert_eq!(maxima, [0, 0, 0]);
    }

    #[test]
    fn out_of_range_draws_are_clamped() {
        let records = [rec(0, 1, "a."), rec(0, 1, "b.")];
        let ordered = order_srv(&records, |_| u64::MAX);
        assert_eq!(targets(&ordered), ["b.", "a."]);
    }

    #[test]
    fn weights_give_proportional_first_choices() {
        let records = [
            rec(0, 10, "a."),
            rec(0, 30, "b."),
            rec(0, 60, "c."),
            rec(0, 0, "z."),
        ];
        let mut rng = SplitMix(42);
        let rounds = 20_000;
        let mut first = std::collections::HashMap::<String, u32>::new();
        for _ in 0..rounds {
            let ordered = order_srv(&records, |max| rng.below_or_equal(max));
            assert_eq!(ordered.len(), 4);
            *first.entry(ordered[0].target.clone()).or_default() += 1;
        }
        let share = |t: &str| f64::from(first.get(t).copied().unwrap_or(0)) / f64::from(rounds);
        // Expected: a 10/101, b 30/101, c 60/101, z 1/101 (only a draw of 0).
        assert!(
            (share("a.") - 10.0 / 101.0).abs() < 0.02,
            "a {}",
            share("a.")
        );
        assert!(
            (share("b.") - 30.0 / 101.0).abs() < 0.02,
            "b {}",
            share("b.")
        );
        assert!(
            (share("c.") - 60.0 / 101.0).abs() < 0.02,
            "c {}",
            share("c.")
        );
        assert!(share("z.") < 0.03, "z {}", share("z."));
        assert!(share("z.") > 0.0, "weight 0 still has a small chance");
    }

    #[test]
    fn sole_root_target_means_not_available() {
        let records = [rec(0, 0, ".")];
        assert!(order_srv(&records, |_| 0).is_empty());
    }

    #[test]
    fn root_target_among_others_is_skipped() {
        let records = [rec(0, 0, "."), rec(5, 1, "b.")];
        assert_eq!(targets(&order_srv(&records, |_| 0)), ["b."]);
    }

    #[test]
    fn no_records_no_targets() {
        assert!(order_srv(&[], |_| 0).is_empty());
    }

    #[test]
    fn every_record_appears_exactly_once() {
        let records: Vec<_> = (0..40u16)
            .map(|i| rec(i % 3, i * 7 % 5, &format!("t{i}.")))
            .collect();
        let mut rng = SplitMix(7);
        let ordered = order_srv(&records, |max| rng.below_or_equal(max));
        let mut got = targets(&ordered);
        got.sort_unstable();
        let mut want = targets(&records);
        want.sort_unstable();
        assert_eq!(got, want);
        assert!(ordered.windows(2).all(|w| w[0].priority <= w[1].priority));
    }
}
