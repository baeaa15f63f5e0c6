//! The `tollgate` command: parses arguments and hands over to the library.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tollgate::cli::{check, greylist, health, lint, serve};

/// With `--features mimalloc`, mimalloc instead of the system's malloc:
/// a message makes a few hundred small allocations, and glibc's malloc and
/// free cost a fifth of the milter's instructions per message; but
/// mimalloc's resident memory creeps up under connection churn
/// (docs/performance.md, "Where the time goes").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A milter that turns away forged and bot mail at CONNECT, HELO and MAIL FROM.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every check for one client and show what the milter would do.
    Check(check::CheckArgs),
    /// Check a domain's SPF setup from the sender's side (exit 0 clean, 1 errors, 2 could not check).
    Lint(lint::LintArgs),
    /// Run the milter.
    Serve(serve::ServeArgs),
    /// Check that the milter of a configuration answers (for health checks).
    Health(health::HealthArgs),
    /// List, count, allow or forget greylisting entries in the configured store.
    Greylist(greylist::GreylistArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => match check::run(&args).await {
            Ok(report) => {
                let text = match args.dns.format {
                    check::Format::Text => check::render_text(&report),
                    check::Format::Json => format!("{:#}\n", check::render_json(&report)),
                };
                // A closed pipe (`| head`) is not an error worth a panic.
                let _ = std::io::stdout().write_all(text.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                if args.dns.format == check::Format::Json {
                    let error = check::render_error_json(&args, &e.to_string());
                    let _ = std::io::stdout().write_all(format!("{error:#}\n").as_bytes());
                }
                eprintln!("tollgate check: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Lint(args) => match lint::run(&args).await {
            Ok(report) => {
                let text = match args.dns.format {
                    check::Format::Text => lint::render_text(&report, args.strict),
                    check::Format::Json => format!("{:#}\n", lint::render_json(&report)),
                };
                let _ = std::io::stdout().write_all(text.as_bytes());
                ExitCode::from(report.status(args.strict).exit_code())
            }
            Err(e) => {
                if args.dns.format == check::Format::Json {
                    let error = lint::render_error_json(&args.domain, &e.to_string());
                    let _ = std::io::stdout().write_all(format!("{error:#}\n").as_bytes());
                }
                eprintln!("tollgate lint: {e}");
                ExitCode::from(2)
            }
        },
        Command::Health(args) => match health::run(&args).await {
            Ok(listen) => {
                println!("ok: milter at {listen} answers");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tollgate health: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Greylist(args) => match greylist::run(&args).await {
            Ok(text) => {
                let _ = std::io::stdout().write_all(text.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tollgate greylist: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(args) => match serve::run(&args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tollgate: {e}");
                ExitCode::from(e.exit_code())
            }
        },
    }
}
