//! `clerk users` and `clerk tokens`: who signs in to the web pages, and
//! the tokens scripts call the API with.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

use super::args::{TokensCommand, UsersCommand};
use super::{exit, whoami};
use crate::jobs::JobsError;
use crate::jobs::time_text;
use crate::server::{digest, hash_password, new_secret};

/// Shortest password accepted.
const MIN_PASSWORD: usize = 10;

/// Read a terminal line without echoing it.
fn read_hidden(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios of our own stdin, put back before returning.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    let had = unsafe { libc::tcgetattr(fd, &mut term) } == 0;
    if had {
        let mut quiet = term;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: as above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if had {
        // SAFETY: as above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
    }
    eprintln!();
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The new user's password: asked twice on a terminal, else the first
/// line of stdin.
fn new_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = read_hidden("Password: ")?;
        let again = read_hidden("Password again: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if password.chars().count() < MIN_PASSWORD {
        bail!("a password has at least {MIN_PASSWORD} characters");
    }
    Ok(password)
}

pub(super) async fn users(cmd: UsersCommand) -> anyhow::Result<u8> {
    match cmd {
        UsersCommand::Add {
            name,
            role,
            groups,
            db,
        } => {
            let name = name.trim().to_string();
            if name.is_empty() || name.chars().any(char::is_control) || name.len() > 64 {
                bail!("a user name is 1 to 64 characters, without control characters");
            }
            let password = new_password()?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password))
                .await?
                .map_err(anyhow::Error::msg)?;
            let store = db.open().await?;
            match store
                .add_user(&name, role, &hash, &format!("cli:{}", whoami()))
                .await
            {
                Ok(user) => {
                    if !groups.is_empty() {
                        store.set_user(&user.name, None, Some(&groups)).await?;
                    }
                    println!(
                        "user {} added as {}{}",
                        user.name,
                        user.role,
                        in_groups(&groups)
                    );
                }
                Err(e @ JobsError::AlreadyExists { .. }) => {
                    eprintln!("error: {e}");
                    return Ok(exit::USAGE);
                }
                Err(e) => return Err(e.into()),
            }
        }
        UsersCommand::List { db, json } => {
            let users = db.open().await?.users().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else if users.is_empty() {
                println!("no users; add one with `clerk users add NAME --role ROLE`");
            } else {
                println!(
                    "{:<24} {:<9} {:<24} {:<22} BY",
                    "NAME", "ROLE", "GROUPS", "ADDED"
                );
                for u in users {
                    println!(
                        "{:<24} {:<9} {:<24} {:<22} {}",
                        u.name,
                        u.role,
                        u.groups.join(","),
                        time_text(u.created_at),
                        u.created_by
                    );
                }
            }
        }
        UsersCommand::Set {
            name,
            role,
            groups,
            no_groups,
            db,
        } => {
            let new_groups = (no_groups || !groups.is_empty()).then_some(groups.as_slice());
            if role.is_none() && new_groups.is_none() {
                bail!("say what to change: --role, --group or --no-groups");
            }
            if !db.open().await?.set_user(&name, role, new_groups).await? {
                eprintln!("error: there is no user {name}");
                return Ok(exit::USAGE);
            }
            println!("user {name} changed");
        }
        UsersCommand::Remove { name, db } => {
            if db.open().await?.remove_user(&name).await? {
                println!("user {name} removed; their sessions ended");
            } else {
                eprintln!("error: there is no user {name}");
                return Ok(exit::USAGE);
            }
        }
    }
    Ok(exit::OK)
}

fn in_groups(groups: &[String]) -> String {
    if groups.is_empty() {
        String::new()
    } else {
        format!(" in {}", groups.join(", "))
    }
}

pub(super) async fn tokens(cmd: TokensCommand) -> anyhow::Result<u8> {
    match cmd {
        TokensCommand::Create { name, role, db } => {
            let token = format!("clerk_{}", new_secret());
            let store = db.open().await?;
            match store
                .add_token(&name, role, &digest(&token), &format!("cli:{}", whoami()))
                .await
            {
                Ok(t) => {
                    eprintln!(
                        "token {} ({}) created; it is shown this once:",
                        t.name, t.role
                    );
                    println!("{token}");
                }
                Err(e @ JobsError::AlreadyExists { .. }) => {
                    eprintln!("error: {e}");
                    return Ok(exit::USAGE);
                }
                Err(e) => return Err(e.into()),
            }
        }
        TokensCommand::List { db, json } => {
            let tokens = db.open().await?.tokens().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                println!("{:<24} {:<9} {:<22} LAST USED", "NAME", "ROLE", "CREATED");
                for t in tokens {
                    println!(
                        "{:<24} {:<9} {:<22} {}",
                        t.name,
                        t.role,
                        time_text(t.created_at),
                        t.last_used_at
                            .map(time_text)
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
        }
        TokensCommand::Revoke { name, db } => {
            if db.open().await?.remove_token(&name).await? {
                println!("token {name} revoked");
            } else {
                eprintln!("error: there is no token {name}");
                return Ok(exit::USAGE);
            }
        }
    }
    Ok(exit::OK)
}
