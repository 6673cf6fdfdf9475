//! `leafe-host serve` over real HTTP on loopback, as a user starts it:
//! SandboxFusion's `/run_code`, the session API with snapshot/restore
//! across two server processes, limits, the token, metrics and SIGTERM.
//! The official clients' tests (sandbox-fusion) are in `serve_clients.rs`.

use super::common::leafe_command;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `leafe-host serve` process on an ephemeral loopback port.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    pub fn start(flags: &[&str]) -> Server {
        Server::start_with_env(flags, &[])
    }

    pub fn start_with_env(flags: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = leafe_command();
        cmd.arg("serve");
        if !flags.contains(&"--bind") {
            cmd.args(["--bind", "127.0.0.1:0"]);
        }
        cmd.args(flags);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server::spawn(cmd)
    }

    /// Start `cmd`, a server that prints `serving on URL` on stderr.
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("the server exited before listening")
                .unwrap();
            if let Some(rest) = line.strip_prefix("serving on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Server { child, url }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait(mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into()
}

/// (status, headers as one lowercase string, body as JSON or text).
pub fn call(
    method: &str,
    url: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, String, Value) {
    let agent = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let response = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        ("DELETE", _) => {
            let mut r = agent.delete(url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        (_, b) => {
            let mut r = agent.post(url).header("Content-Type", "application/json");
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send(b.unwrap_or(""))
        }
    };
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    let headers = format!("{:?}", response.headers()).to_ascii_lowercase();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

fn post(url: &str, body: Value) -> (u16, Value) {
    let (status, _, v) = call("POST", url, Some(&body.to_string()), None);
    (status, v)
}

fn run_code(server: &Server, body: Value) -> Value {
    let (status, v) = post(&format!("{}/run_code", server.url), body);
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn run_code_speaks_sandbox_fusion() {
    let server = Server::start(&["--max-body-kb", "4", "--concurrency", "2"]);
    let hello = run_code(
        &server,
        json!({"code": "print('hello')", "language": "python"}),
    );
    assert_eq!(hello["status"], "Success", "{hello}");
    assert_eq!(hello["run_result"]["status"], "Finished");
    assert_eq!(hello["run_result"]["return_code"], 0);
    assert_eq!(hello["run_result"]["stdout"], "hello\n");
    assert_eq!(hello["sandbox_sha256"], leafe_builtins::PYTHON_SHA256);

    let echo = run_code(
        &server,
        json!({"code": "print(input()[::-1])", "stdin": "abc\n", "language": "python3"}),
    );
    assert_eq!(echo["run_result"]["stdout"], "cba\n", "{echo}");

    let crash = run_code(&server, json!({"code": "1/0", "language": "python"}));
    assert_eq!(crash["status"], "Failed");
    assert_eq!(crash["run_result"]["status"], "Finished");
    assert_eq!(crash["run_result"]["return_code"], 1);
    assert!(
        crash["run_result"]["stderr"]
            .as_str()
            .unwrap()
            .contains("ZeroDivisionError")
    );

    let syntax = run_code(&server, json!({"code": "def f(:", "language": "python"}));
    assert_eq!(syntax["status"], "Failed");
    assert!(
        syntax["run_result"]["stderr"]
            .as_str()
            .unwrap()
            .contains("SyntaxError")
    );

    let slow = run_code(
        &server,
        json!({"code": "while True: pass", "language": "python", "run_timeout": 1}),
    );
    assert_eq!(slow["status"], "Failed");
    assert_eq!(slow["run_result"]["status"], "TimeLimitExceeded", "{slow}");

    let exit = run_code(
        &server,
        json!({"code": "import sys; sys.exit(3)", "language": "python"}),
    );
    assert_eq!(exit["status"], "Failed");
    assert_eq!(exit["run_result"]["return_code"], 3);

    let cpp = run_code(&server, json!({"code": "int main(){}", "language": "cpp"}));
    assert_eq!(cpp["status"], "Failed");
    assert!(
        cpp["message"]
            .as_str()
            .unwrap()
            .contains("python and python3"),
        "{cpp}"
    );

    // Nothing reaches the host: no files, no network.
    let escape = run_code(
        &server,
        json!({"code": "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 22), 1)\n    print('connected')\nexcept Exception as e:\n    print('refused', type(e).__name__)\ntry:\n    print(open('/etc/passwd').read()[:10])\nexcept Exception as e:\n    print('no file', type(e).__name__)", "language": "python"}),
    );
    let out = escape["run_result"]["stdout"].as_str().unwrap_or("");
    assert!(
        !out.contains("connected") && !out.contains("root:"),
        "{escape}"
    );

    let url = format!("{}/run_code", server.url);
    let (status, _, e) = call("POST", &url, Some("{not json"), None);
    assert_eq!(status, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"),
        "{e}"
    );
    let big = json!({"code": format!("x = '{}'", "a".repeat(8000)), "language": "python"});
    let (status, _, _) = call("POST", &url, Some(&big.to_string()), None);
    assert_eq!(status, 413);

    let (status, _, metrics) = call("GET", &format!("{}/metrics", server.url), None, None);
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("leafe_sandbox_verdicts_total{verdict=\"time-limit\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("leafe_requests_total{route=\"/run_code\",class=\"2xx\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("leafe_sessions 0"), "{metrics}");
}

#[test]
fn openenv_reset_refuses_a_task_beyond_u32_and_fields_of_the_wrong_type() {
    let server = Server::start(&[]);
    let reset = |body: Value| post(&format!("{}/reset", server.url), body);
    for (body, field) in [
        (json!({"task": 4_294_967_296u64}), "task"),
        (json!({"task": -1}), "task"),
        (json!({"task": 1.5}), "task"),
        (json!({"seed": "7"}), "seed"),
        (json!({"split": 3}), "split"),
        (json!({"options": ["size=6x6"]}), "options"),
    ] {
        let (status, v) = reset(body.clone());
        assert_eq!(status, 400, "{body} -> {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("\"{field}\"")), "{body} -> {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }
    let (status, v) = reset(json!({"task": 1, "seed": 3}));
    assert_eq!(status, 200, "{v}");
    assert!(v["observation"]["text"].as_str().is_some(), "{v}");
}

fn create(server: &Server, body: Value) -> (u16, Value) {
    post(&format!("{}/sessions", server.url), body)
}

fn session_post(server: &Server, id: &str, what: &str, body: Value) -> (u16, Value) {
    post(&format!("{}/sessions/{id}/{what}", server.url), body)
}

fn expert(server: &Server, id: &str) -> String {
    let (status, _, v) = call(
        "GET",
        &format!("{}/sessions/{id}/expert", server.url),
        None,
        None,
    );
    assert_eq!(status, 200, "{v}");
    v["action"].as_str().unwrap().to_string()
}

fn step(server: &Server, id: &str, action: &str) -> Value {
    let (status, v) = session_post(server, id, "step", json!({ "action": action }));
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn sessions_snapshot_and_restore_within_and_across_processes() {
    let a = Server::start(&["--max-sessions", "2"]);
    let b = Server::start(&[]);
    let (status, s) = create(&a, json!({"env": "sokoban", "task": 3, "seed": 1}));
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_string();
    for _ in 0..3 {
        step(&a, &id, &expert(&a, &id));
    }
    let (status, snap) = session_post(&a, &id, "snapshot", json!({}));
    assert_eq!(status, 200);
    let state = snap["state"].as_str().unwrap().to_string();
    let (_, _, here) = call("GET", &format!("{}/sessions/{id}", a.url), None, None);
    let at_k = here["observation"].as_str().unwrap().to_string();
    let next = expert(&a, &id);
    let after_k = step(&a, &id, &next);
    step(&a, &id, &expert(&a, &id));

    // Back to step k in the same session: the same observation, and the
    // same move gives the same next observation.
    let (status, r) = session_post(&a, &id, "restore", json!({ "state": state }));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["observation"], at_k.as_str());
    assert_eq!(step(&a, &id, &next), after_k);

    // Into another server process: a new session from the snapshot.
    let (status, moved) = create(&b, json!({ "state": state }));
    assert_eq!(status, 201, "{moved}");
    assert_eq!(moved["observation"], at_k.as_str());
    let moved_id = moved["id"].as_str().unwrap();
    assert_eq!(step(&b, moved_id, &next), after_k);

    // The snapshot of one environment does not go into another.
    let (status, g) = create(&a, json!({"env": "guess"}));
    assert_eq!(status, 201);
    let gid = g["id"].as_str().unwrap();
    let (status, e) = session_post(&a, gid, "restore", json!({ "state": state }));
    assert_eq!(status, 409, "{e}");

    // Limits and unknowns.
    let (status, headers, e) = call(
        "POST",
        &format!("{}/sessions", a.url),
        Some(r#"{"env": "sokoban"}"#),
        None,
    );
    assert_eq!(status, 429, "{e}");
    assert!(headers.contains("retry-after"), "{headers}");
    let (status, e) = create(&a, json!({"env": "chess"}));
    assert_eq!(status, 404);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("sokoban"),
        "{e}"
    );
    let (status, e) = session_post(&a, "nope", "step", json!({"action": "up"}));
    assert_eq!(status, 404, "{e}");
    let (status, _) = session_post(&a, &id, "restore", json!({"state": "bm90IGEgc25hcHNob3Q="}));
    assert_eq!(status, 400);
    let (status, e) = session_post(&a, &id, "step", json!({"move": "up"}));
    assert_eq!(status, 400, "{e}");

    let (_, _, list) = call("GET", &format!("{}/sessions", a.url), None, None);
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2, "{list}");
    let (status, _, _) = call("DELETE", &format!("{}/sessions/{gid}", a.url), None, None);
    assert_eq!(status, 204);
    let (status, _, _) = call("DELETE", &format!("{}/sessions/{gid}", a.url), None, None);
    assert_eq!(status, 404);
    let (status, _) = create(&a, json!({"env": "sokoban"}));
    assert_eq!(status, 201, "a closed session frees its place");
}

#[test]
fn idle_sessions_expire_and_a_restarted_server_answers_404() {
    let a = Server::start(&["--session-idle-secs", "1"]);
    let (_, s) = create(&a, json!({"env": "guess"}));
    let id = s["id"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (status, e) = session_post(&a, &id, "step", json!({"action": "50"}));
    assert_eq!(status, 404, "{e}");
    drop(a);
    let b = Server::start(&[]);
    let (status, _) = session_post(&b, &id, "step", json!({"action": "50"}));
    assert_eq!(status, 404);
}

#[test]
fn a_token_guards_every_route_but_health() {
    let server = Server::start_with_env(
        &["--token-env", "LEAFE_TEST_TOKEN"],
        &[("LEAFE_TEST_TOKEN", "s3cret")],
    );
    let (status, _, health) = call("GET", &format!("{}/health", server.url), None, None);
    assert_eq!(status, 200);
    // Which interpreter build /run_code uses; the code environments say the
    // same, the others none.
    let sandbox = health["sandbox_sha256"].as_str().unwrap_or_default();
    assert_eq!(sandbox.len(), 64, "{health}");
    let (status, _, envs) = call("GET", &format!("{}/envs", server.url), None, Some("s3cret"));
    assert_eq!(status, 200, "{envs}");
    let said = |name: &str| {
        envs["envs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["sandbox_sha256"].clone())
    };
    assert_eq!(said("mbpp"), Some(Value::from(sandbox)), "{envs}");
    assert_eq!(said("sokoban"), Some(Value::Null), "{envs}");
    for (method, path) in [
        ("GET", "/metrics"),
        ("POST", "/run_code"),
        ("GET", "/sessions"),
    ] {
        let url = format!("{}{path}", server.url);
        let (status, _, _) = call(method, &url, Some("{}"), None);
        assert_eq!(status, 401, "{path} without the token");
        let (status, _, _) = call(method, &url, Some("{}"), Some("wrong!"));
        assert_eq!(status, 401, "{path} with a wrong token");
    }
    let (status, _, _) = call(
        "GET",
        &format!("{}/sessions", server.url),
        None,
        Some("s3cret"),
    );
    assert_eq!(status, 200);

    let open = leafe_command()
        .args(["serve", "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!open.status.success());
    assert!(String::from_utf8_lossy(&open.stderr).contains("--token-env"));
}

#[test]
fn sigterm_finishes_the_running_request_and_exits_0() {
    let server = Server::start(&["--grace-secs", "20"]);
    let url = format!("{}/run_code", server.url);
    let running = std::thread::spawn(move || {
        let body = json!({"code": "while True: pass", "language": "python", "run_timeout": 2});
        call("POST", &url, Some(&body.to_string()), None)
    });
    std::thread::sleep(std::time::Duration::from_millis(700));
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(server.pid() as i32, libc::SIGTERM);
    }
    let (status, _, v) = running.join().unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["run_result"]["status"], "TimeLimitExceeded");
    assert!(server.wait().success());
}

#[test]
fn a_client_that_leaves_mid_run_frees_its_slot_and_a_slow_upload_gets_408() {
    use std::io::{Read, Write};
    let server = Server::start(&["--concurrency", "1", "--body-timeout-secs", "1"]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let body =
        json!({"code": "while True: pass", "language": "python", "run_timeout": 60}).to_string();
    let mut gone = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        gone,
        "POST /run_code HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    drop(gone);
    // The one slot comes back long before the abandoned run's 60 s.
    let started = std::time::Instant::now();
    let hello = run_code(&server, json!({"code": "print(1)", "language": "python"}));
    assert_eq!(hello["status"], "Success", "{hello}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the abandoned run kept its slot for {:?}",
        started.elapsed()
    );

    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        slow,
        "POST /run_code HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"code\""
    )
    .unwrap();
    let mut reply = String::new();
    let _ = slow.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
}

#[test]
fn hostile_programs_through_the_server_never_reach_the_host() {
    let marker = format!("leafe-escape-{}", std::process::id());
    let server = Server::start_with_env(&[], &[("LEAFE_HOST_SECRET", "do-not-leak")]);
    let url = server.url.clone();
    let port = url.rsplit(':').next().unwrap().to_string();
    let programs = [
        format!("open('/tmp/{marker}', 'w').write('x')"),
        format!("import os\nos.makedirs('/tmp/{marker}-dir')"),
        "import os\nprint(dict(os.environ))".to_string(),
        format!("import subprocess\nsubprocess.run(['touch', '/tmp/{marker}-sub'])"),
        format!("import os\nos.system('touch /tmp/{marker}-sys')"),
        format!(
            "import socket\ns = socket.create_connection(('127.0.0.1', {port}), 2)\ns.sendall(b'GET /health HTTP/1.0\\r\\n\\r\\n')\nprint(s.recv(100))"
        ),
        "import ctypes\nctypes.CDLL(None).abort()".to_string(),
        "import threading\nthreading.Thread(target=lambda: None).start()".to_string(),
    ];
    for program in &programs {
        let v = run_code(&server, json!({"code": program, "language": "python"}));
        let out = format!("{v}");
        assert!(!out.contains("do-not-leak"), "{program}: {out}");
        assert!(!out.contains("200 OK"), "{program}: {out}");
        assert!(v["run_result"]["status"] == "Finished", "{program}: {out}");
    }
    for suffix in ["", "-dir", "-sub", "-sys"] {
        let path = format!("/tmp/{marker}{suffix}");
        assert!(!std::path::Path::new(&path).exists(), "{path} was created");
    }
    // The limits hold too, and say which in `message`.
    let bomb = run_code(
        &server,
        json!({"code": "x = []\nwhile True:\n    x.append([0] * 10**6)", "language": "python"}),
    );
    assert_eq!(bomb["run_result"]["return_code"], 137, "{bomb}");
    assert!(
        bomb["message"].as_str().unwrap().contains("memory limit"),
        "{bomb}"
    );
    let flood = run_code(
        &server,
        json!({"code": "while True: print('x' * 1000)", "language": "python"}),
    );
    assert!(
        flood["message"].as_str().unwrap().contains("output limit"),
        "{flood}"
    );
    let deep = run_code(
        &server,
        json!({"code": "def f(n): return f(n + 1)\nf(0)", "language": "python"}),
    );
    assert_eq!(deep["status"], "Failed", "{deep}");
    let (status, _, _) = call("GET", &format!("{url}/health"), None, None);
    assert_eq!(status, 200);
}
