//! The `openai` policy over real HTTP on loopback, against a small scripted
//! server: prompts, parsing, retries, rate limits, errors, timeouts, and a
//! run that keeps going when the endpoint misbehaves.

use crate::common::{read_request, tree_nodes};
use leafe_host::llm::{ChatClient, ChatConfig, ChatError, Message};
use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One scripted reply.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
    headers: Vec<(String, String)>,
}

fn answer(content: &str) -> Reply {
    let body = serde_json::json!({
        "id": "x", "object": "chat.completion", "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13,
                  "prompt_tokens_details": {"cached_tokens": 8}}
    });
    Reply {
        status: 200,
        body: body.to_string(),
        delay: Duration::ZERO,
        headers: vec![],
    }
}

fn status(code: u16, body: &str) -> Reply {
    Reply {
        status: code,
        body: body.into(),
        delay: Duration::ZERO,
        headers: vec![],
    }
}

/// A chat-completions server that plays `script` in order (repeating the
/// last reply) and records each request body.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<serde_json::Value>>>,
}

type Script = Mutex<VecDeque<Reply>>;

impl Server {
    fn start(script: Vec<Reply>) -> Server {
        Server::routed(script, Vec::new())
    }

    /// Requests whose system prompt is the reflector's get `reflections`.
    fn routed(policy: Vec<Reply>, reflections: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let scripts = Arc::new((
            Mutex::new(VecDeque::from(policy)),
            Mutex::new(VecDeque::from(reflections)),
        ));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (scripts, seen) = (scripts.clone(), seen.clone());
                std::thread::spawn(move || serve_one(stream, &scripts.0, &scripts.1, &seen));
            }
        });
        Server { addr, requests }
    }

    fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve_one(
    stream: TcpStream,
    policy: &Script,
    reflections: &Script,
    seen: &Mutex<Vec<serde_json::Value>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    while let Some((_, _, body)) = read_request(&mut reader) {
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let reflecting = request["messages"][0]["content"]
            .as_str()
            .is_some_and(|s| s.starts_with("You review a failed attempt"));
        seen.lock().unwrap().push(request);
        let script = if reflecting { reflections } else { policy };
        let reply = {
            let mut s = script.lock().unwrap();
            if s.len() > 1 {
                s.pop_front().unwrap()
            } else {
                s.front().cloned().unwrap()
            }
        };
        std::thread::sleep(reply.delay);
        let mut out = format!(
            "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&reply.body);
        let mut w = &stream;
        if w.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

fn client(url: String, retries: u32, timeout: Duration) -> ChatClient {
    ChatClient::new(ChatConfig {
        base_url: url,
        model: "scripted".into(),
        api_key: Some("sk-test".into()),
        temperature: 0.5,
        top_p: 0.9,
        max_tokens: 64,
        timeout,
        retries,
        backoff: Duration::from_millis(10),
        concurrency: 2,
    })
    .unwrap()
}

fn ask(c: &ChatClient) -> Result<Vec<String>, ChatError> {
    c.complete(&[Message::new("user", "hi")], 1, Some(7))
}

#[test]
fn a_request_carries_the_settings_and_counts_tokens() {
    let server = Server::start(vec![answer("Action: up")]);
    let c = client(server.url(), 0, Duration::from_secs(10));
    assert_eq!(ask(&c).unwrap(), vec!["Action: up"]);
    let req = &server.requests()[0];
    assert_eq!(req["model"], "scripted");
    assert_eq!(req["messages"][0]["content"], "hi");
    assert_eq!(req["temperature"], 0.5);
    assert_eq!(req["max_tokens"], 64);
    assert_eq!(req["seed"], 7);
    let t = c.totals();
    assert_eq!(
        (t.requests, t.prompt_tokens, t.completion_tokens),
        (1, 10, 3)
    );
    // The server's prefix-cache hits, as OpenAI's usage reports them.
    assert_eq!(t.cached_prompt_tokens, 8);
}

#[test]
fn server_errors_and_rate_limits_are_retried() {
    let mut limited = status(429, "{\"error\": \"slow down\"}");
    limited.headers.push(("Retry-After".into(), "0".into()));
    let server = Server::start(vec![
        status(500, "oops"),
        limited,
        status(503, "busy"),
        answer("fine"),
    ]);
    let c = client(server.url(), 5, Duration::from_secs(10));
    assert_eq!(ask(&c).unwrap(), vec!["fine"]);
    let t = c.totals();
    assert_eq!((t.requests, t.retries, t.failures), (4, 3, 0));
}

#[test]
fn client_errors_bad_json_and_a_dead_endpoint_are_clear() {
    let server = Server::start(vec![status(400, "{\"error\": \"bad model\"}")]);
    let c = client(server.url(), 3, Duration::from_secs(10));
    let err = ask(&c).unwrap_err();
    assert!(matches!(err, ChatError::Http { status: 400, .. }), "{err}");
    assert!(err.to_string().contains("bad model"));
    assert_eq!(c.totals().retries, 0, "a 4xx is not retried");

    let server = Server::start(vec![status(200, "this is not json")]);
    let err = ask(&client(server.url(), 3, Duration::from_secs(10))).unwrap_err();
    assert!(matches!(err, ChatError::BadResponse { .. }), "{err}");

    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client(
        format!("http://127.0.0.1:{port}/v1"),
        2,
        Duration::from_secs(5),
    );
    let err = ask(&c).unwrap_err();
    assert!(matches!(err, ChatError::Unreachable { .. }), "{err}");
    assert_eq!(c.totals().retries, 2);
}

#[test]
fn a_slow_server_times_out_and_is_retried() {
    let mut slow = answer("late");
    slow.delay = Duration::from_secs(3);
    let server = Server::start(vec![slow, answer("quick")]);
    let c = client(server.url(), 1, Duration::from_millis(500));
    let start = Instant::now();
    assert_eq!(ask(&c).unwrap(), vec!["quick"]);
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(c.totals().retries, 1);
}

fn leafe(args: &[&str]) -> std::process::Output {
    crate::common::leafe_command()
        .args(args)
        .env("OPENAI_API_KEY", "sk-from-env")
        .output()
        .unwrap()
}

#[test]
fn the_openai_policy_plays_and_malformed_answers_cost_a_step() {
    // Guess the number: a chatty answer, one with no action at all, then
    // answers that walk to the secret by bisection are not needed — the
    // script just repeats its last reply until the budget runs out.
    let server = Server::start(vec![
        answer("Let me think.\nAction: 50"),
        answer("I have no idea what to do here."),
        answer("<think>lower or higher?</think>Action: 25"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = leafe(&[
        "run",
        "--env",
        "guess",
        "--policy",
        "openai",
        "--base-url",
        &server.url(),
        "--model",
        "scripted",
        "--tasks",
        "1",
        "--budget",
        "5",
        "--max-depth",
        "0",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["steps"], 5, "{summary}");
    assert_eq!(summary["llm"]["requests"], 5);
    assert_eq!(summary["llm"]["prompt_tokens"], 50);
    assert_eq!(summary["llm"]["cached_prompt_tokens"], 40);

    let tree = std::fs::read_to_string(out.join("tree.jsonl")).unwrap();
    let nodes: Vec<serde_json::Value> = tree
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "node")
        .collect();
    assert_eq!(nodes[1]["action"], "50");
    assert_eq!(nodes[2]["action"], "I have no idea what to do here.");
    assert!(
        nodes[2]["observation"]
            .as_str()
            .unwrap()
            .contains("is not a number"),
        "format feedback from the environment: {}",
        nodes[2]["observation"]
    );
    assert_eq!(nodes[3]["action"], "25");

    // The prompt: the environment's action hint, the history, the key.
    let requests = server.requests();
    let last = &requests[requests.len() - 1]["messages"];
    let system = last[0]["content"].as_str().unwrap();
    assert!(system.contains("\"guess\"") && system.contains("Guess the secret whole number"));
    assert_eq!(last[1]["role"], "user");
    assert_eq!(last[2]["role"], "assistant");
    assert_eq!(last[2]["content"], "Action: 50");
    assert!(last.as_array().unwrap().len() >= 8, "{last}");
}

#[test]
fn a_failing_endpoint_ends_tasks_with_an_error_and_the_run_goes_on() {
    let server = Server::start(vec![status(401, "{\"error\": \"bad key\"}")]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = leafe(&[
        "run",
        "--env",
        "guess",
        "--policy",
        "openai",
        "--base-url",
        &server.url(),
        "--model",
        "m",
        "--tasks",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("task 0 failed") && stdout.contains("HTTP 401"),
        "{stdout}"
    );
    assert!(out.join("summary.json").exists());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["errors"], 3);
    assert_eq!(summary["llm"]["failures"], 3);
    assert_eq!(
        server.requests().len(),
        3,
        "no retries on 401; the key came from $OPENAI_API_KEY"
    );

    for (args, needle) in [
        (
            vec!["run", "--policy", "openai"],
            "need --base-url and --model",
        ),
        (
            vec![
                "run",
                "--policy",
                "openai",
                "--base-url",
                "localhost:1",
                "--model",
                "m",
            ],
            "must start with http",
        ),
        (
            vec![
                "run",
                "--policy",
                "openai",
                "--base-url",
                "http://x",
                "--model",
                "m",
                "--temperature",
                "9",
            ],
            "--temperature",
        ),
    ] {
        let out = leafe(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn the_llm_reflector_names_the_step_and_its_lesson_reaches_the_prompt() {
    let server = Server::routed(
        vec![answer("Action: 101")],
        vec![
            answer("I think it was the second guess."),
            answer("```json\n{\"step\": 2, \"experience\": \"Guess lower than 101.\"}\n```"),
            status(400, "{\"error\": \"no more\"}"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = leafe(&[
        "run",
        "--env",
        "guess",
        "--policy",
        "openai",
        "--reflector",
        "llm",
        "--base-url",
        &server.url(),
        "--model",
        "m",
        "--task",
        "0",
        "--opt",
        "max-steps=3",
        "--budget",
        "9",
        "--max-depth",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let nodes = tree_nodes(&out);
    let revised: Vec<&serde_json::Value> = nodes
        .iter()
        .filter(|n| n["experience"].is_string())
        .collect();
    assert_eq!(revised.len(), 2, "two backtracks: {nodes:?}");
    // The model's lesson, after one repair request: back to the state before step 2.
    assert_eq!(revised[0]["experience"], "Guess lower than 101.");
    assert_eq!(revised[0]["parent"], 1);
    assert_eq!(revised[0]["rejected"], "101");
    // The endpoint refused the second reflection: the rule-based one decided, on the record.
    let fallback = revised[1]["experience"].as_str().unwrap();
    assert!(
        fallback.starts_with("[rule-based fallback: the endpoint failed"),
        "{fallback}"
    );
    // The summary counts how the reflections went.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["reflections"],
        serde_json::json!({"asked": 2, "json_first_try": 0, "json_after_repair": 1,
                           "no_mistake": 0, "fell_back": 1})
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains(
        "reflections: 2 asked · 0 JSON at once · 1 after the repair request · 0 no mistake · 1 fell back"
    ));

    let requests = server.requests();
    let reflections: Vec<&serde_json::Value> = requests
        .iter()
        .filter(|r| {
            r["messages"][0]["content"]
                .as_str()
                .unwrap()
                .starts_with("You review")
        })
        .collect();
    assert_eq!(
        reflections.len(),
        3,
        "one repair retry, then one refused request"
    );
    let repair = &reflections[1]["messages"];
    assert_eq!(repair[2]["role"], "assistant");
    assert!(
        repair[3]["content"]
            .as_str()
            .unwrap()
            .contains("not the JSON asked for")
    );
    // The revised rollout's prompt carries the lesson.
    let with_lesson = requests.iter().any(|r| {
        r["messages"]
            .as_array()
            .unwrap()
            .last()
            .and_then(|m| m["content"].as_str())
            .is_some_and(|c| c.contains("Lessons from earlier attempts:\n- Guess lower than 101."))
    });
    assert!(with_lesson);
}

#[test]
fn reflect_every_k_steps_checks_midway_and_goes_on_when_nothing_is_wrong() {
    let server = Server::routed(
        vec![answer("Action: 101")],
        vec![answer("{\"step\": null}")],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = leafe(&[
        "run",
        "--env",
        "guess",
        "--policy",
        "openai",
        "--reflector",
        "llm",
        "--reflect-every",
        "2",
        "--base-url",
        &server.url(),
        "--model",
        "m",
        "--task",
        "0",
        "--opt",
        "max-steps=6",
        "--budget",
        "6",
        "--max-depth",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let nodes = tree_nodes(&out);
    // One unbroken rollout of 6 steps: the checks after steps 2 and 4 found nothing.
    assert_eq!(nodes.len(), 7);
    assert!(
        nodes
            .iter()
            .all(|n| n["branch"] == 0 && n["experience"].is_null())
    );
    let checks = server
        .requests()
        .iter()
        .filter(|r| {
            let text = r["messages"][1]["content"].as_str().unwrap_or("");
            text.contains("The attempt is not over yet")
        })
        .count();
    assert_eq!(checks, 2);
}

/// A run's recorded prompt settings let `export` rebuild each correction's
/// prompt exactly as the policy saw it, less the lessons (with the history
/// window the lessons left room for); the model's whole answer is kept.
#[test]
fn export_rebuilds_the_prompts_the_policy_saw_without_the_lessons() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    // The secret of guess task 0, from the expert.
    let expert = leafe(&[
        "run",
        "--env",
        "guess",
        "--task",
        "0",
        "--noise",
        "0",
        "--out",
        &path("expert"),
    ]);
    assert!(expert.status.success());
    let secret = tree_nodes(&dir.path().join("expert"))
        .iter()
        .find(|n| n["success"] == true)
        .and_then(|n| n["action"].as_str().map(str::to_string))
        .unwrap();

    let lesson = format!(
        "Guessing 101 again and again wastes steps. {}",
        "Go lower. ".repeat(40)
    );
    let server = Server::routed(
        vec![
            answer("Hmm.\nAction: 101"),
            answer("Hmm.\nAction: 101"),
            answer("Hmm.\nAction: 101"),
            answer("Hmm.\nAction: 101"),
            answer(&format!("I know it now.\nAction: {secret}")),
        ],
        vec![answer(
            &serde_json::json!({"step": 3, "experience": lesson}).to_string(),
        )],
    );
    let run = leafe(&[
        "run",
        "--env",
        "guess",
        "--policy",
        "openai",
        "--reflector",
        "llm",
        "--base-url",
        &server.url(),
        "--model",
        "m",
        "--task",
        "0",
        "--opt",
        "max-steps=4",
        "--budget",
        "8",
        "--max-depth",
        "1",
        // Room for the history without the lesson, not with it.
        "--history-chars",
        "1000",
        "--out",
        &path("run"),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let nodes = tree_nodes(&dir.path().join("run"));
    let fixed = nodes.iter().find(|n| n["experience"].is_string()).unwrap();
    assert_eq!(
        (fixed["parent"].as_u64(), fixed["success"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(fixed["answer"], format!("I know it now.\nAction: {secret}"));

    // What the policy was asked at the branch point, lesson and all.
    let asked: Vec<serde_json::Value> = server
        .requests()
        .into_iter()
        .filter(|r| {
            let last = r["messages"].as_array().unwrap().last().unwrap();
            last["content"]
                .as_str()
                .unwrap()
                .contains("Lessons from earlier attempts")
        })
        .map(|r| r["messages"].clone())
        .collect();
    assert_eq!(asked.len(), 1);
    let mut expected: Vec<(String, String)> = asked[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().into(),
                m["content"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        expected
            .iter()
            .any(|m| m.1.contains("earlier steps are left out]")),
        "the lesson pushed a turn out of the window: {expected:?}"
    );
    let last = expected.last_mut().unwrap();
    let cut = last.1.find("\n\nLessons from earlier attempts:").unwrap();
    last.1.truncate(cut);

    let records = |extra: &[&str]| -> Vec<serde_json::Value> {
        let (out, run) = (path("data.jsonl"), path("run"));
        let mut args = vec!["export", &run, "--out", &out];
        args.extend(extra);
        let done = leafe(&args);
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|r: &serde_json::Value| r["kind"] == "cf")
            .collect()
    };
    let turns = |list: &serde_json::Value| -> Vec<(String, String)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().unwrap().into(),
                    m["content"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let inline = records(&[]);
    assert_eq!(inline.len(), 1);
    let mut messages = turns(&inline[0]["messages"]);
    assert_eq!(
        messages.pop().unwrap(),
        ("assistant".into(), format!("Action: {secret}"))
    );
    assert_eq!(messages, expected, "the prompt as asked, less the lesson");

    let split = records(&["--target", "answer", "--weights", "split"]);
    assert_eq!(turns(&split[0]["prompt"]), expected);
    assert_eq!(
        turns(&split[0]["completion"]),
        [(
            "assistant".to_string(),
            format!("I know it now.\nAction: {secret}")
        )]
    );
}
