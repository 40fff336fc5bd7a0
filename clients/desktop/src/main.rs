//! `dure-desktop`: the laptop client. Start-up and the subcommands only.

mod account;
mod board;
mod bridge;
mod export;
mod files;
mod run;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "dure-desktop",
    version,
    about = "Dure on this laptop: your documents, offline too"
)]
struct Cli {
    /// Where tokens, the local replica and the status are kept
    /// [default: $XDG_DATA_HOME/dure-desktop].
    #[arg(long, env = "DURE_DESKTOP_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Log filter (stderr).
    #[arg(long, env = "DURE_DESKTOP_LOG", default_value = "info", global = true)]
    log: String,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Sign in to a Dure server through its identity provider.
    Login {
        /// The server, e.g. https://dure.example.org
        server: String,
        /// Print the sign-in URL only (do not open a browser).
        #[arg(long)]
        no_browser: bool,
    },
    /// Sign out: revoke the refresh token and delete the tokens.
    Logout,
    /// Keep the local replica in sync and serve the app (the default).
    Run(run::RunArgs),
    /// Each document's sync state.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Write every document as Markdown into DIR (kept up to date while `run` runs).
    Export { dir: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let data_dir = cli.data_dir.clone().unwrap_or_else(files::default_data_dir);
    if let Err(e) = files::private_dir(&data_dir) {
        eprintln!("dure-desktop: cannot use {}: {e}", data_dir.display());
        return ExitCode::from(2);
    }
    dure_gateway::logging::init(dure_gateway::config::LogFormat::Text, &cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dure-desktop: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = runtime.block_on(async {
        match cli.cmd {
            Some(Cmd::Login { server, no_browser }) => {
                account::login(&data_dir, &server, !no_browser)
                    .await
                    .map_err(|e| e.to_string())
            }
            Some(Cmd::Logout) => account::logout(&data_dir).await.map_err(|e| e.to_string()),
            Some(Cmd::Run(args)) => run::run(data_dir, args).await.map_err(|e| e.to_string()),
            None => run::run(data_dir, run::RunArgs::parse_default())
                .await
                .map_err(|e| e.to_string()),
            Some(Cmd::Status { json }) => {
                status(&data_dir, json);
                Ok(())
            }
            Some(Cmd::Export { dir }) => export_cmd(&data_dir, &dir).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dure-desktop: {e}");
            ExitCode::FAILURE
        }
    }
}

impl run::RunArgs {
    fn parse_default() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: run::RunArgs,
        }
        Only::parse_from(["dure-desktop"]).args
    }
}

fn running(b: &board::Board) -> bool {
    board::now_ms().saturating_sub(b.heartbeat_ms) < 5_000
        && std::path::Path::new(&format!("/proc/{}", b.pid)).exists()
}

fn status(data_dir: &std::path::Path, json: bool) {
    let account = account::load(data_dir).ok();
    let b = board::read(data_dir).unwrap_or_default();
    let running = running(&b);
    let account_state = account
        .as_ref()
        .map_or("signed_out".to_owned(), |a| a.state.clone());
    let docs: Vec<serde_json::Value> = b
        .docs
        .iter()
        .map(|(id, d)| {
            serde_json::json!({
                "id": id,
                "title": d.title,
                "state": board::state_word(d, b.server_reachable, running),
                "waiting": d.waiting,
                "last_sync": d.last_sync_ms.map(|ms| humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()),
                "kept_in": d.kept_in,
            })
        })
        .collect();
    if json {
        let v = serde_json::json!({
            "server": account.as_ref().map(|a| a.server.clone()).or(b.server.clone()),
            "signed_in": account_state == "signed_in",
            "account": account_state,
            "running": running,
            "server_reachable": b.server_reachable && running,
            "docs": docs,
            "first_sync": {"done": b.first_sync_done, "total": b.first_sync_total},
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    match &account {
        Some(a) if a.state == "signed_in" => println!("signed in to {} as {}", a.server, a.name),
        Some(a) => println!(
            "{}: the sign-in has ended: run `dure-desktop login {}`",
            a.server, a.server
        ),
        None => println!("not signed in: run `dure-desktop login https://your-dure-server`"),
    }
    println!(
        "{}",
        if !running {
            "not running (`dure-desktop run`)"
        } else if b.server_reachable {
            "running, server reachable"
        } else {
            "running, offline"
        }
    );
    if b.first_sync_total > 0 && b.first_sync_done < b.first_sync_total {
        println!("first sync: {}/{}", b.first_sync_done, b.first_sync_total);
    }
    for d in docs {
        let state = d["state"].as_str().unwrap_or("");
        let shown = match state {
            "waiting" => format!("{} edits waiting", d["waiting"]),
            "access_lost" => format!(
                "access lost (your edits: {})",
                d["kept_in"].as_str().unwrap_or("not kept")
            ),
            s => s.to_owned(),
        };
        println!(
            "{:<34} {:<30} {:<28} last sync {}",
            d["id"].as_str().unwrap_or(""),
            d["title"].as_str().unwrap_or(""),
            shown,
            d["last_sync"].as_str().unwrap_or("never")
        );
    }
}

async fn export_cmd(data_dir: &std::path::Path, dir: &std::path::Path) -> Result<(), String> {
    let dir = std::path::absolute(dir).map_err(|e| e.to_string())?;
    export::remember(data_dir, &dir).map_err(|e| e.to_string())?;
    let b = board::read(data_dir).unwrap_or_default();
    let n = match b.local_url.as_deref().filter(|_| running(&b)) {
        Some(url) => export::all(url, &dir).await?,
        None => {
            // Not running: open the replica ourselves on a free loopback port.
            let server = run::local_server(data_dir, "127.0.0.1:0".parse().map_err(|_| "addr")?)
                .await
                .map_err(|e| e.to_string())?;
            let url = format!("http://{}", server.local_addr());
            let stop = tokio_util::sync::CancellationToken::new();
            let stopped = stop.clone();
            let task = tokio::spawn(server.run(async move { stopped.cancelled().await }));
            let n = export::all(&url, &dir).await;
            stop.cancel();
            let _ = task.await;
            n?
        }
    };
    println!("exported {n} documents to {}", dir.display());
    Ok(())
}
