//! `instapipe-local run` as a user or a process manager runs it, in a process of its own: stopped
//! with SIGTERM it stops every process it started and frees its ports; killed with SIGKILL, its
//! services stop by themselves within seconds. (Linux: the processes are found through /proc.)
//! Self-contained (no `common`), so it moves as one module into a merged test binary.
#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A process: its pid and its start time (so that a recycled pid is not taken for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: u32,
    start: u64,
}

/// (parent, state, start time) from /proc/PID/stat.
fn stat(pid: u32) -> Option<(u32, char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // state is field 3 of stat, ppid 4, starttime 22: here 0, 1 and 19.
    Some((fields.get(1)?.parse().ok()?, fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

fn command_line(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline")).map(|b| String::from_utf8_lossy(&b).replace('\0', " ")).unwrap_or_default()
}

/// Every live descendant of `root`, with its command line.
fn descendants(root: u32) -> BTreeMap<Proc, String> {
    let mut parent_of = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
            && let Some((ppid, state, start)) = stat(pid)
            && state != 'Z'
        {
            parent_of.insert(pid, (ppid, start));
        }
    }
    let mut found = BTreeMap::new();
    for (&pid, &(_, start)) in &parent_of {
        let mut at = pid;
        while let Some(&(ppid, _)) = parent_of.get(&at) {
            if ppid == root {
                found.insert(Proc { pid, start }, command_line(pid));
                break;
            }
            at = ppid;
        }
    }
    found
}

/// Alive: the same process (pid and start time) and not a zombie.
fn alive(p: Proc) -> bool {
    stat(p.pid).is_some_and(|(_, state, start)| start == p.start && state != 'Z')
}

fn port_is_free(port: u16) -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() && TcpListener::bind(addr).is_ok()
}

/// The port of the first banner line that starts with `label` (`  moto             http://127.0.0.1:5000`).
fn port_after(banner: &[String], label: &str) -> u16 {
    let line = banner.iter().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("no {label:?} line in {banner:#?}"));
    let rest = line.split("http://127.0.0.1:").nth(1).unwrap_or_else(|| panic!("no URL in {line:?}"));
    rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

struct Running {
    child: Child,
    ports: Vec<(&'static str, u16)>,
    started: BTreeMap<Proc, String>,
}

/// Starts `instapipe-local run` on free ports and waits until it serves.
fn start_stack(env_dir: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_instapipe-local"))
        .arg("run")
        .envs([
            ("DYNAMODB_PORT", "0"),
            ("MOTO_PORT", "0"),
            ("INSTAPIPE_PORT", "0"),
            ("GRAPH_SIM_PORT", "0"),
            ("GRAPH_SIM_IMAGE_DELAY_MS", "200"),
            ("RUST_LOG", "warn"),
        ])
        .env("INSTAPIPE_ENV_FILE", env_dir.join("local.env"))
        .env_remove("GRAPH_API_BASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Killed on drop, so a test that fails half-way leaves no stack running (its services follow).
    let mut running = Running { child, ports: Vec::new(), started: BTreeMap::new() };
    let (lines, banner_lines) = mpsc::channel();
    // Reads to the end, so the stack never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut banner = Vec::new();
    loop {
        let line = banner_lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("instapipe-local did not reach serving ({e}); it printed {banner:#?}"));
        let serving = line.starts_with("State changes of every post follow");
        banner.push(line);
        if serving {
            break;
        }
    }
    running.ports = vec![
        ("DynamoDB Local", port_after(&banner, "DynamoDB Local")),
        ("moto", port_after(&banner, "moto")),
        ("Graph API simulator", port_after(&banner, "Graph API")),
        ("ingest-webhook", port_after(&banner, "generic webhook")),
    ];
    running.started = descendants(running.child.id());
    let commands: Vec<&String> = running.started.values().collect();
    assert!(commands.iter().any(|c| c.contains("DynamoDBLocal.jar")), "DynamoDB Local runs: {commands:#?}");
    assert!(commands.iter().any(|c| c.contains("moto_server")), "moto runs: {commands:#?}");
    for (name, port) in &running.ports {
        assert!(!port_is_free(*port), "{name} listens on {port} while the stack runs");
    }
    running
}

impl Drop for Running {
    /// Whatever happened in the test, nothing it started is left: the stack, and what it started.
    fn drop(&mut self) {
        let tree = descendants(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for p in tree.keys().chain(self.started.keys()).filter(|p| alive(**p)) {
            // SAFETY: kill(2) of a process this test identified by pid and start time.
            unsafe { libc::kill(p.pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "instapipe-local did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls until every process the stack started is gone and its ports are free, or `within` ends.
fn assert_nothing_left(running: &Running, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<(&Proc, &String)> = running.started.iter().filter(|(p, _)| alive(**p)).collect();
        let taken: Vec<&(&str, u16)> = running.ports.iter().filter(|(_, port)| !port_is_free(*port)).collect();
        if left.is_empty() && taken.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            // Leave nothing behind for the next test either.
            for (p, _) in &left {
                // SAFETY: kill(2) of a process this test identified by pid and start time.
                unsafe { libc::kill(p.pid as libc::pid_t, libc::SIGKILL) };
            }
            panic!("after {within:?}: still running {left:#?}; ports still taken {taken:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_stops_the_services_and_frees_the_ports() {
    let dir = std::env::temp_dir().join(format!("instapipe-lifecycle-term-{}", std::process::id()));
    let mut running = start_stack(&dir);
    // The CLI's settings for this stack, as `instapipe --env-file` reads them.
    let env_file = dir.join("local.env");
    let vars: BTreeMap<String, String> = instapipe_cli::read_env_file(&env_file).unwrap().into_iter().collect();
    let dynamodb_port = running.ports[0].1;
    assert_eq!(vars.get("AWS_ENDPOINT_URL_DYNAMODB"), Some(&format!("http://127.0.0.1:{dynamodb_port}")), "{vars:#?}");
    assert_eq!(vars.get("AWS_ENDPOINT_URL_SCHEDULER"), Some(&format!("http://127.0.0.1:{}", running.ports[1].1)), "{vars:#?}");
    assert_eq!(vars.get("TABLE_NAME").map(String::as_str), Some("instapipe-posts"), "{vars:#?}");
    let routing = instapipe_core::routing::Routing::from_json(vars.get("ROUTING_CONFIG").map(String::as_str)).unwrap();
    assert!(routing.wordpress("https://news.example.org/").is_some(), "the demo routing, for `instapipe routes`: {vars:#?}");

    signal(&running.child, libc::SIGTERM);
    let status = wait_exit(&mut running.child, Duration::from_secs(30));
    assert!(status.success(), "a stop on SIGTERM is a clean exit: {status}");
    // Stopped before exiting: nothing to wait for.
    assert_nothing_left(&running, Duration::ZERO);
    assert!(!env_file.exists(), "the env file goes with the stack");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn after_sigkill_the_services_stop_by_themselves_within_seconds() {
    let dir = std::env::temp_dir().join(format!("instapipe-lifecycle-kill-{}", std::process::id()));
    let mut running = start_stack(&dir);
    signal(&running.child, libc::SIGKILL);
    wait_exit(&mut running.child, Duration::from_secs(10));
    assert_nothing_left(&running, Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_port_in_use_at_start_up_is_named_with_what_holds_it() {
    // A stand-in for a DynamoDB Local left by an earlier run: a listener whose command line names
    // DynamoDBLocal.jar (what the stack looks for), in no stack's process group.
    let mut leftover = Command::new("python3")
        .args(["-c", "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(120)"])
        .arg("DynamoDBLocal.jar")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(leftover.stdout.take().unwrap()).read_line(&mut port).unwrap();
    let port: u16 = port.trim().parse().unwrap();

    let run = Command::new(env!("CARGO_BIN_EXE_instapipe-local"))
        .arg("run")
        .envs([("DYNAMODB_PORT", port.to_string()), ("MOTO_PORT", "0".into()), ("INSTAPIPE_PORT", "0".into()), ("GRAPH_SIM_PORT", "0".into())])
        .env("INSTAPIPE_ENV_FILE", std::env::temp_dir().join(format!("instapipe-lifecycle-port-{}.env", std::process::id())))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = leftover.kill();
    let _ = leftover.wait();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let pid = leftover.id();
    assert!(
        stderr.contains(&format!("port {port} (DynamoDB Local, DYNAMODB_PORT) is already in use by DynamoDB Local (pid {pid}), left running by an earlier local stack")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("stop it with `kill {pid}`")), "{stderr}");

    // Any other program: named by its pid and command line.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let err = instapipe_local::services::ensure_port_free(port, "moto", "MOTO_PORT").unwrap_err();
    assert!(err.starts_with(&format!("port {port} (moto, MOTO_PORT) is already in use by pid {}", std::process::id())), "{err}");
    drop(listener);
    assert_eq!(instapipe_local::services::ensure_port_free(port, "moto", "MOTO_PORT"), Ok(()));
}
