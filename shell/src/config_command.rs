//! `weft config show`: the effective settings and where each came from.

use std::{path::Path, process::ExitCode};

use serde_json::json;

use crate::config::{
    self, Config, Flags,
    layers::{Setting, Source},
};

/// `weft config show [--json]`, with the flags a shell would be started with.
pub fn show(config_file: Option<&Path>, flags: &Flags, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(&config::user_file(config_file)?, flags)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&as_json(&config))?);
    } else {
        print!("{}", as_text(&config));
    }
    Ok(ExitCode::SUCCESS)
}

fn source_json(source: &Source) -> serde_json::Value {
    match source {
        Source::Default => json!("default"),
        Source::File => json!("file"),
        Source::Flag(flag) => json!({ "flag": flag }),
        Source::Policy => json!("policy"),
    }
}

fn as_json(config: &Config) -> serde_json::Value {
    let settings: Vec<_> = config
        .provenance
        .settings
        .iter()
        .map(|s| {
            json!({
                "key": s.key,
                "value": s.value,
                "source": source_json(&s.source),
                "locked": s.locked(),
                "overridden": s.overridden.iter().map(|(source, value)| {
                    json!({ "source": source_json(source), "value": value })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "file": config.provenance.file,
        "fileFound": config.provenance.file_found,
        "policyFiles": config.policy_in_force.sources,
        "settings": settings,
    })
}

/// Why a setting has its value, in words.
fn explain(config: &Config, setting: &Setting) -> String {
    let describe = |source| config.provenance.describe(source, &config.policy_in_force);
    let mut why = describe(&setting.source);
    for (source, value) in setting.overridden.iter().rev() {
        if *source == Source::Default {
            continue;
        }
        let verb = if setting.locked() {
            "is not applied"
        } else {
            "is overridden"
        };
        why.push_str(&format!("; {value} from {} {verb}", describe(source)));
    }
    why
}

fn as_text(config: &Config) -> String {
    let provenance = &config.provenance;
    let mut out = format!(
        "# settings file: {}{}\n",
        provenance.file.display(),
        if provenance.file_found {
            ""
        } else {
            " (not found: defaults apply)"
        }
    );
    out.push_str(&match config.policy_in_force.sources.as_slice() {
        [] => "# policy: none\n".to_owned(),
        _ => format!(
            "# policy: {}\n",
            config::describe_sources(&config.policy_in_force)
        ),
    });
    let lines: Vec<(String, String)> = provenance
        .settings
        .iter()
        .map(|s| (format!("{} = {}", s.key, s.value), explain(config, s)))
        .collect();
    let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (line, why) in lines {
        out.push_str(&format!("{line:width$}  # {why}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_each_source_and_what_policy_did_not_let_through() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, "[settings]\nlog = { level = \"warn\" }\n").unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            format!(
                "[log]\nlevel = \"trace\"\n[app_logs]\nkeep_files = 2\n[policy]\nfile = {:?}\n",
                policy.display().to_string()
            ),
        )
        .unwrap();
        let flags = Flags {
            metrics_addr: Some("off".into()),
            set: vec![],
        };
        let config = Config::load(&file, &flags).unwrap();
        let text = as_text(&config);
        let line = |key: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{key} = ")))
                .unwrap_or_else(|| panic!("no {key} in\n{text}"))
                .to_owned()
        };
        let level = line("log.level");
        assert!(
            level.contains("\"warn\"")
                && level.contains("locked by policy")
                && level.contains("policy.toml")
                && level.contains("\"trace\" from")
                && level.contains("is not applied"),
            "{level}"
        );
        assert!(line("app_logs.keep_files").contains("config.toml"));
        assert!(line("metrics.addr").contains("flag --metrics-addr"));
        assert!(line("app_logs.max_file_mb").ends_with("# default"));

        let json = as_json(&config);
        let level = json["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == "log.level")
            .unwrap();
        assert_eq!(level["locked"], true);
        assert_eq!(level["value"], "warn");
        assert_eq!(level["overridden"][0]["source"], "file");
        assert_eq!(json["fileFound"], true);
    }
}
