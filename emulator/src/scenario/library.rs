//! The scenario library shipped in the repository's `scenarios/` directory, built into the
//! binary so `ssm-emulator scenario run <name>` works from anywhere.

/// `(file name, text)` of every shipped scenario.
pub const LIBRARY: &[(&str, &str)] = &[
    (
        "proxy-loss-run-command.toml",
        include_str!("../../../scenarios/proxy-loss-run-command.toml"),
    ),
    (
        "proxy-loss-shell-resume.toml",
        include_str!("../../../scenarios/proxy-loss-shell-resume.toml"),
    ),
    (
        "vpc-endpoint-missing.toml",
        include_str!("../../../scenarios/vpc-endpoint-missing.toml"),
    ),
    (
        "websocket-recycle-port-forward.toml",
        include_str!("../../../scenarios/websocket-recycle-port-forward.toml"),
    ),
    (
        "lossy-link-port-forward.toml",
        include_str!("../../../scenarios/lossy-link-port-forward.toml"),
    ),
    (
        "throttling-storm.toml",
        include_str!("../../../scenarios/throttling-storm.toml"),
    ),
];

/// The shipped scenario called `name` (with or without `.toml`).
pub fn find(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".toml").unwrap_or(name);
    LIBRARY
        .iter()
        .find(|(file, _)| file.strip_suffix(".toml") == Some(name))
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_reads() {
        for (file, text) in LIBRARY {
            let scenario = crate::scenario::Scenario::parse(text)
                .unwrap_or_else(|e| panic!("scenarios/{file}: {e}"));
            assert_eq!(
                Some(scenario.name.as_str()),
                file.strip_suffix(".toml"),
                "scenarios/{file}: name and file name differ"
            );
            assert!(
                !scenario.expect.is_empty(),
                "scenarios/{file} checks nothing"
            );
        }
        assert!(find("throttling-storm").is_some());
        assert!(find("nope").is_none());
    }
}
