//! samconfig.toml's parameter overrides name the template's parameters, and prod's name the
//! alarm e-mail (issue 11). SAM replaces the whole list with `--parameter-overrides`, so what a
//! stage deploys with is exactly that line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use reelay_template::Template;

const TEMPLATE: &str = include_str!("../../../template.yaml");
const SAMCONFIG: &str = include_str!("../../../samconfig.toml");

/// Every `parameter_overrides` line, by its `[section]`, as `Name=Value` pairs.
fn overrides(text: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut out: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some(value) = line.strip_prefix("parameter_overrides") {
            let value = value.trim_start().strip_prefix('=').expect(line).trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .expect("a quoted list");
            let pairs = value
                .split_whitespace()
                .map(|pair| {
                    let (k, v) = pair.split_once('=').expect(pair);
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            out.entry(section.clone()).or_default().push(pairs);
        }
    }
    out
}

#[test]
fn every_override_names_a_template_parameter() {
    let t = Template::from_yaml_str(TEMPLATE).unwrap();
    let all = overrides(SAMCONFIG);
    assert!(all.contains_key("prod.deploy.parameters"), "{all:?}");
    for (section, lists) in &all {
        for list in lists {
            for name in list.keys() {
                assert!(
                    t.parameters.contains_key(name),
                    "[{section}] overrides {name}, which template.yaml does not have"
                );
            }
        }
    }
}

#[test]
fn prod_deploys_with_an_alarm_email_and_its_stage() {
    let all = overrides(SAMCONFIG);
    let prod = &all["prod.deploy.parameters"];
    assert_eq!(prod.len(), 1);
    let prod = &prod[0];
    assert_eq!(prod.get("Stage").map(String::as_str), Some("prod"));
    assert_eq!(prod.get("LogLevel").map(String::as_str), Some("INFO"));
    let email = prod.get("AlarmEmail").expect("prod names AlarmEmail");
    assert!(email.contains('@'), "{email}");
    // The placeholder is what the template's ProdAlarmEmail rule refuses: deploying prod
    // without replacing it fails before any change, with that rule's message.
    assert!(
        TEMPLATE.contains(&format!(
            "      - Assert: !Not [!Equals [!Ref AlarmEmail, {email}]]"
        )) || !email.starts_with("REPLACE-ME"),
        "the placeholder {email} is not refused by template.yaml's ProdAlarmEmail rule"
    );
}
