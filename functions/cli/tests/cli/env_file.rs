//! The `instapipe` binary takes its configuration from `--env-file`, over the shell's
//! environment: the AWS SDK's endpoint and credentials and the functions' variables. A small fake
//! DynamoDB endpoint records what the CLI asks.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// (X-Amz-Target, body) of each request the fake endpoint received.
type Requests = Arc<Mutex<Vec<(String, String)>>>;

/// Answers every request with an empty Query result; keeps (X-Amz-Target, body) of each.
fn fake_dynamodb() -> (u16, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let record = record.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let (mut target, mut length) = (String::new(), 0usize);
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return; // the client closed the connection
                    }
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        let Some((name, value)) = line.trim_end().split_once(':') else { break };
                        match name.to_ascii_lowercase().as_str() {
                            "x-amz-target" => target = value.trim().to_string(),
                            "content-length" => length = value.trim().parse().unwrap(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    record.lock().unwrap().push((target, String::from_utf8_lossy(&body).into_owned()));
                    let answer = r#"{"Count":0,"Items":[],"ScannedCount":0}"#;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    stream.write_all(response.as_bytes()).unwrap();
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn the_env_file_configures_the_cli_over_the_shell_environment() {
    let (port, seen) = fake_dynamodb();
    let file = std::env::temp_dir().join(format!("instapipe-env-file-test-{}.env", std::process::id()));
    std::fs::write(
        &file,
        format!(
            "# as `make run` writes it, with dotenv's comments, quotes and `export`\n\
             AWS_REGION=us-east-1\n\
             AWS_ACCESS_KEY_ID=test\n\
             AWS_SECRET_ACCESS_KEY=test\n\
             export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:{port}\n\
             TABLE_NAME=\"table-from-the-env-file\"\n\
             SCHEDULE_GROUP=instapipe-posts\n\
             SCHEDULER_ROLE_ARN=arn:aws:iam::123456789012:role/instapipe-scheduler\n\
             CREATE_CONTAINER_FUNCTION_ARN=arn:aws:lambda:us-east-1:123456789012:function:instapipe-create-container\n\
             POLL_STATUS_FUNCTION_ARN=arn:aws:lambda:us-east-1:123456789012:function:instapipe-poll-status\n"
        ),
    )
    .unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_instapipe"))
        .arg("--env-file")
        .arg(&file)
        .args(["posts", "list", "--state", "FAILED", "--output", "json"])
        // The shell points elsewhere: the file wins.
        .env("TABLE_NAME", "table-from-the-shell")
        .env("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
        .env_remove("INSTAPIPE_ENV_FILE")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(json, serde_json::json!({ "destinations": [] }));
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "the CLI asked the endpoint of the env file");
    for (target, body) in seen.iter() {
        assert_eq!(target, "DynamoDB_20120810.Query", "{body}");
        assert!(body.contains(r#""TableName":"table-from-the-env-file""#), "{body}");
    }
}

#[test]
fn a_missing_env_file_is_an_error_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_instapipe"))
        .args(["--env-file", "/nonexistent/instapipe.env", "posts", "list"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("env file /nonexistent/instapipe.env"), "{stderr}");
}
