//! The log event names (`Event::as_str`) are stable, and imxp(7) lists
//! them, each as a tagged paragraph in its LOGS section.

use imxp_spool::Event;

#[test]
fn every_event_is_documented_in_imxp_7() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../man/imxp.7");
    let page = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let logs = page
        .split("\n.SH LOGS\n")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH ").next())
        .unwrap_or_else(|| panic!("{path} has no LOGS section"));
    let documented: Vec<&str> = logs
        .split(".TP\n")
        .skip(1)
        .filter_map(|item| item.lines().next()?.strip_prefix(".B "))
        .collect();
    let names: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
    assert_eq!(
        documented, names,
        "man/imxp.7, LOGS: one `.TP` + `.B NAME` paragraph per imxp_spool::Event, in the order of Event::ALL"
    );
}
