//! The `imxpd` command: `check-config` names the offending key, `user`
//! manages the users file, `--dev` prepares a working development relay.

use std::process::Command;

fn imxpd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imxpd"))
}

#[test]
fn check_config_accepts_a_valid_file_and_names_the_key_of_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[relay]\ndomains = [\"example.com\"]\nstate_dir = \"state\"\n[tls]\nrequired = false\n",
    )
    .unwrap();
    let output = imxpd()
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[relay]\ndomains = [\"example.com\"]\nstate_dir = \"state\"\n[tls]\nrequired = false\n[spool]\nengine = \"sqlite\"\n",
    )
    .unwrap();
    let output = imxpd()
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("spool.engine"), "{stderr}");
}

#[test]
fn user_add_list_del() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("imxpd.toml");
    std::fs::write(
        &config,
        format!(
            "[relay]\ndomains = [\"example.com\"]\nstate_dir = \"{}\"\n[tls]\nrequired = false\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let password = dir.path().join("pw");
    std::fs::write(&password, "s3cret\n").unwrap();
    let run = |args: &[&str]| {
        let output = imxpd()
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    run(&[
        "user",
        "add",
        "fred@Example.COM",
        "--password-file",
        password.to_str().unwrap(),
    ]);
    assert_eq!(run(&["user", "list"]).trim(), "fred@example.com");
    let users = std::fs::read_to_string(dir.path().join("users.toml")).unwrap();
    assert!(
        !users.contains("s3cret"),
        "only a salted verifier is stored"
    );
    run(&["user", "del", "fred@example.com"]);
    assert_eq!(run(&["user", "list"]).trim(), "");
}

#[test]
fn dev_mode_writes_a_valid_configuration_certificate_and_user() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("dev");
    // check-config in dev mode prepares everything and validates it.
    let output = imxpd()
        .args(["--dev", "--state-dir"])
        .arg(&state)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    for file in [
        "imxpd.toml",
        "dev-cert.pem",
        "dev-key.pem",
        "users.toml",
        "dev@localhost.password",
    ] {
        assert!(state.join(file).exists(), "{file} written");
    }
}

#[test]
fn help_points_at_documentation_that_exists() {
    let output = imxpd().arg("--help").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8_lossy(&output.stdout);
    // The help names the manual page of the configuration, which exists.
    assert!(help.contains("imxpd.toml(5)"), "{help}");
    let page = concat!(env!("CARGO_MANIFEST_DIR"), "/../man/imxpd.toml.5");
    assert!(std::path::Path::new(page).exists(), "{page}");
}
