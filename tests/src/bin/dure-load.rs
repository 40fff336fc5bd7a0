//! `dure-load`: a load generator of simulated Yjs clients for Dure (and the baseline relay).
//!
//! Each scenario prints its figures, then one line `RESULT {json}` that `tests/bench` collects;
//! `report` turns those lines into `docs/benchmarks.md`. Everything is bounded in count and
//! time and meant for loopback.
//!
//! ```text
//! dure-load hot-room      --url ws://127.0.0.1:PORT --server-pid PID [--ack] [--no-sync]
//! dure-load many-rooms    --url ... --server-pid PID [--no-sync]
//! dure-load idle          --url ... --server-pid PID [--connections 10000] [--no-sync]
//! dure-load connect-storm --url ... --server-pid PID
//! dure-load trace-replay  --url ... --server-pid PID --doc ID [--trace FILE] [--ack]
//! dure-load load-time     --url ... --doc ID [--trace FILE]
//! dure-load report        --results FILE --out docs/benchmarks.md
//! ```

#[path = "dure_load/common.rs"]
mod common;
#[path = "dure_load/idle.rs"]
mod idle;
#[path = "dure_load/report.rs"]
mod report;
#[path = "dure_load/rooms.rs"]
mod rooms;
#[path = "dure_load/storm.rs"]
mod storm;
#[path = "dure_load/trace.rs"]
mod trace;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "Load generator of simulated Yjs clients for Dure")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// One room, 50 clients typing 10 updates/s each: delivery latency, losses, server CPU.
    HotRoom(rooms::RoomArgs),
    /// 500 rooms of 2 clients typing 1 update/s each: delivery latency.
    ManyRooms(rooms::RoomArgs),
    /// Many idle synced connections: server memory per connection.
    Idle(idle::IdleArgs),
    /// A 100 KB document, then 200 clients connecting at once: time to synced.
    ConnectStorm(storm::StormArgs),
    /// Replay a real editing trace as fast as possible: time until another client has it all.
    TraceReplay(trace::TraceArgs),
    /// Connect to the replayed document after a server restart: time to the full text.
    LoadTime(trace::LoadArgs),
    /// Write the benchmark report from collected result lines.
    Report(report::ReportArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dure-load: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.scenario {
            Scenario::HotRoom(args) => {
                let shape = rooms::Shape {
                    rooms: args.rooms.unwrap_or(1),
                    clients: args.clients.unwrap_or(50),
                    rate: args.rate.unwrap_or(10.0),
                };
                rooms::run("hot-room", args, shape).await
            }
            Scenario::ManyRooms(args) => {
                let shape = rooms::Shape {
                    rooms: args.rooms.unwrap_or(500),
                    clients: args.clients.unwrap_or(2),
                    rate: args.rate.unwrap_or(1.0),
                };
                rooms::run("many-rooms", args, shape).await
            }
            Scenario::Idle(args) => idle::run(args).await,
            Scenario::ConnectStorm(args) => storm::run(args).await,
            Scenario::TraceReplay(args) => trace::replay(args).await,
            Scenario::LoadTime(args) => trace::load_time(args).await,
            Scenario::Report(args) => report::run(args),
        }
    });
    // Do not wait for straggling connection tasks.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dure-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
