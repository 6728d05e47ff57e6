//! The real `depot` binary as a child process, with a clean environment.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_depot");

/// A `depot` command with only the given environment (plus PATH), run in `dir`.
pub fn depot(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(dir);
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `depot args…` to completion.
pub fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    depot(dir, env).args(args).output().expect("depot runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `depot serve` whose API address was read from its JSON log.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    logs: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `depot <args>` with JSON logs on an ephemeral port and waits until it listens.
    pub fn start(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        Self::start_limited(dir, env, args, None)
    }

    /// [`Server::start`], with at most `open_files` file descriptors (`ulimit -n`) when given.
    pub fn start_limited(
        dir: &Path,
        env: &[(&str, &str)],
        args: &[&str],
        open_files: Option<u32>,
    ) -> Self {
        Self::spawn(dir, env, args, open_files, "api")
    }

    /// `depot worker`, started once its metrics listener (its only one) is up; `addr` is the
    /// metrics address.
    pub fn start_worker(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::spawn(dir, env, &["worker"], None, "metrics")
    }

    fn spawn(
        dir: &Path,
        env: &[(&str, &str)],
        args: &[&str],
        open_files: Option<u32>,
        listener: &str,
    ) -> Self {
        let mut env: Vec<(&str, &str)> = env.to_vec();
        env.extend([
            ("DEPOT_HTTP_ADDR", "127.0.0.1:0"),
            ("DEPOT_METRICS_ADDR", "127.0.0.1:0"),
            ("DEPOT_LOG_FORMAT", "json"),
        ]);
        let mut command = depot(dir, &env);
        if let Some(limit) = open_files {
            // The shell lowers its limit, then becomes depot (same pid, so signals reach it).
            let mut limited = Command::new("sh");
            limited
                .env_clear()
                .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
                .current_dir(dir)
                .arg("-c")
                .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                .arg(BIN);
            command = limited;
        }
        let mut child = command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("depot starts");
        let (tx, logs) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = logs.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "depot did not start listening; output:\n{}",
                    seen.join("\n")
                );
            };
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                && json["message"] == "listening"
                && json["listener"] == listener
            {
                let addr = json["addr"]
                    .as_str()
                    .expect("addr field")
                    .parse()
                    .expect("socket address");
                return Self { child, addr, logs };
            }
            seen.push(line);
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("depot did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Server {
    /// The output lines received so far (after the "listening" line), parsed as JSON where
    /// they are JSON.
    pub fn json_logs(&self) -> Vec<serde_json::Value> {
        self.logs
            .try_iter()
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
