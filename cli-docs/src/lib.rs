//! Man pages and shell completions of a binary, written from its clap definition so that they
//! never disagree with `--help`. The binaries answer `BIN generate-docs DIR` with [`answer`];
//! `scripts/package.sh` runs it when it builds the Debian package, whose assets name the layout
//! [`write`] makes.

use clap_complete::Shell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Answers `BIN generate-docs DIR` by writing the documentation of `cmd()` into DIR, and any
/// other command line with `None`. It is looked for before clap parses the command line: as a
/// clap subcommand, even a hidden one, it would be offered by every shell's completion.
pub fn answer(
    args: &[OsString],
    cmd: impl FnOnce() -> clap::Command,
) -> Option<Result<(), String>> {
    match args {
        [_, verb, dir] if verb == "generate-docs" => {
            let dir = Path::new(dir);
            Some(
                write(cmd(), dir)
                    .map(|_| ())
                    .map_err(|e| format!("generate-docs {}: {e}", dir.display())),
            )
        }
        _ => None,
    }
}

/// Writes, under `dir`, in the folders a Debian package installs them from:
/// - `man1/BIN.1` and `man1/BIN-SUBCOMMAND.1` for every visible subcommand;
/// - `bash/BIN` (bash-completion loads a command's completion from a file of its name),
///   `zsh/_BIN` and `fish/BIN.fish`.
///
/// Returns the files written.
pub fn write(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let bin = cmd.get_name().to_owned();
    let man = dir.join("man1");
    std::fs::create_dir_all(&man)?;
    clap_mangen::generate_to(cmd.clone(), &man)?;
    let mut written = Vec::new();
    for e in std::fs::read_dir(&man)? {
        written.push(e?.path());
    }
    for (shell, folder, file) in [
        (Shell::Bash, "bash", bin.clone()),
        (Shell::Zsh, "zsh", format!("_{bin}")),
        (Shell::Fish, "fish", format!("{bin}.fish")),
    ] {
        let folder = dir.join(folder);
        std::fs::create_dir_all(&folder)?;
        let path = folder.join(file);
        let mut out = std::fs::File::create(&path)?;
        clap_complete::generate(shell, &mut cmd.clone(), &bin, &mut out);
        written.push(path);
    }
    written.sort();
    Ok(written)
}

/// The options of `cmd` (not its subcommands' own) as a Markdown table: the option, its
/// environment variable, its default or choices, and its help, in definition order. Hidden
/// options are left out. The configuration references in `docs/` are this, checked by a test
/// of each binary so that they never disagree with `--help`.
pub fn options_markdown(cmd: &clap::Command) -> String {
    let cell = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|")
    };
    let mut out = String::from("| option | environment | default | what |\n|---|---|---|---|\n");
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if arg.is_hide_set() || matches!(long, "help" | "version") {
            continue;
        }
        let mut option = format!("`--{long}");
        if arg.get_action().takes_values() {
            let name = arg
                .get_value_names()
                .and_then(|n| n.first())
                .map(|n| n.to_string())
                .unwrap_or_else(|| long.replace('-', "_").to_uppercase());
            option.push_str(&format!(" {name}"));
        }
        option.push('`');
        for alias in arg.get_visible_aliases().unwrap_or_default() {
            option.push_str(&format!(", `--{alias}`"));
        }
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let mut default = if defaults.is_empty() {
            String::new()
        } else {
            format!("`{}`", defaults.join(","))
        };
        let choices: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect();
        // a boolean's true and false are no choices worth listing
        if choices.iter().any(|c| c != "`true`" && c != "`false`") {
            if !default.is_empty() {
                default.push_str("; ");
            }
            default.push_str(&format!("one of {}", choices.join(", ")));
        }
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            cell(&option),
            cell(&env),
            cell(&default),
            cell(&help)
        ));
    }
    out
}

/// Compare `generated` with the checked-in `file`; with `KMIP_UPDATE_DOCS=1` in the
/// environment, write it instead. The error says how to bring the file up to date.
pub fn check_generated(file: &Path, generated: &str) -> Result<(), String> {
    if std::env::var_os("KMIP_UPDATE_DOCS").is_some() {
        return std::fs::write(file, generated).map_err(|e| format!("{}: {e}", file.display()));
    }
    let current = std::fs::read_to_string(file).unwrap_or_default();
    if current == generated {
        Ok(())
    } else {
        Err(format!(
            "{} is not what the option definitions say: run the test again with \
             KMIP_UPDATE_DOCS=1 to rewrite it, and commit the change",
            file.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn cli() -> Command {
        Command::new("demo")
            .about("A demo")
            .arg(
                Arg::new("data-dir")
                    .long("data-dir")
                    .help("Where data lives"),
            )
            .subcommand(Command::new("client-cert").about("Issue a certificate"))
            .subcommand(Command::new("legacy").hide(true))
    }

    #[test]
    fn options_as_a_markdown_table() {
        let cmd = cli()
            .arg(
                Arg::new("mode")
                    .long("mode")
                    .env("DEMO_MODE")
                    .value_parser(["a", "b"])
                    .default_value("a")
                    .help("How | it works"),
            )
            .arg(Arg::new("secret").long("secret").hide(true));
        let md = options_markdown(&cmd);
        assert!(
            md.contains("| `--data-dir DATA_DIR` |  |  | Where data lives |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| `--mode MODE` | `DEMO_MODE` | `a`; one of `a`, `b` | How \\| it works |"
            ),
            "{md}"
        );
        assert!(!md.contains("secret") && !md.contains("--help"), "{md}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("options.md");
        assert!(check_generated(&f, &md).is_err(), "absent");
        std::fs::write(&f, &md).unwrap();
        assert!(check_generated(&f, &md).is_ok());
    }

    #[test]
    fn answers_generate_docs_only() {
        let dir = tempfile::tempdir().unwrap();
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(answer(&args(&["demo", "client-cert", "x"]), cli).is_none());
        assert!(answer(&args(&["demo", "generate-docs"]), cli).is_none());
        let out = dir.path().join("docs");
        let out = out.to_str().unwrap();
        assert_eq!(
            answer(&args(&["demo", "generate-docs", out]), cli),
            Some(Ok(()))
        );
        let bash = std::fs::read_to_string(dir.path().join("docs/bash/demo")).unwrap();
        assert!(!bash.contains("generate-docs"), "{bash}");
    }

    #[test]
    fn pages_for_visible_subcommands_and_three_shells() {
        let dir = tempfile::tempdir().unwrap();
        let files = write(cli(), dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "bash/demo",
                "fish/demo.fish",
                "man1/demo-client-cert.1",
                "man1/demo.1",
                "zsh/_demo"
            ]
        );
        let page = std::fs::read_to_string(dir.path().join("man1/demo.1")).unwrap();
        assert!(page.contains("Where data lives"), "{page}");
        assert!(
            !page.contains("generate\\-docs"),
            "hidden stays hidden: {page}"
        );
        let bash = std::fs::read_to_string(dir.path().join("bash/demo")).unwrap();
        assert!(bash.contains("--data-dir") && bash.contains("client-cert"));
    }
}
