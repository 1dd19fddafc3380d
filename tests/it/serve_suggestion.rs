//! `sextant serve` answering Katib's Suggestion API and health probes over loopback, and
//! rejecting bad input with INVALID_ARGUMENT naming what is wrong, without falling over; and the
//! bounds on what one request may cost: large batches, suggestions nobody waits for, SIGTERM
//! during one, concurrent requests, and the memory of concurrent large DBManager reports
//! (measured from `/proc` of the server process).

use std::process::Command;
use std::time::{Duration, Instant};

use sextant_proto::api;
use sextant_proto::api::db_manager_client::DbManagerClient;
use sextant_proto::api::suggestion_client::SuggestionClient;
use sextant_proto::health::HealthCheckRequest;
use sextant_proto::health::health_check_response::ServingStatus;
use sextant_proto::health::health_client::HealthClient;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::support::Server;
use sextant_test_support::postgres_url;

fn double(name: &str, min: &str, max: &str, step: &str) -> api::ParameterSpec {
    api::ParameterSpec {
        name: name.into(),
        parameter_type: api::ParameterType::Double as i32,
        feasible_space: Some(api::FeasibleSpace {
            min: min.into(),
            max: max.into(),
            step: step.into(),
            ..Default::default()
        }),
        condition: None,
    }
}

fn list(name: &str, parameter_type: api::ParameterType, values: &[&str]) -> api::ParameterSpec {
    api::ParameterSpec {
        name: name.into(),
        parameter_type: parameter_type as i32,
        feasible_space: Some(api::FeasibleSpace {
            list: values.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        }),
        condition: None,
    }
}

fn experiment(algorithm: &str, parameters: Vec<api::ParameterSpec>) -> api::Experiment {
    api::Experiment {
        name: "e2e".into(),
        spec: Some(api::ExperimentSpec {
            parameter_specs: Some(api::experiment_spec::ParameterSpecs { parameters }),
            objective: Some(api::ObjectiveSpec {
                r#type: api::ObjectiveType::Minimize as i32,
                objective_metric_name: "loss".into(),
                ..Default::default()
            }),
            algorithm: Some(api::AlgorithmSpec {
                algorithm_name: algorithm.into(),
                algorithm_settings: vec![api::AlgorithmSetting {
                    name: "random_state".into(),
                    value: "1".into(),
                }],
            }),
            ..Default::default()
        }),
    }
}

fn request(experiment: api::Experiment, count: i32) -> api::GetSuggestionsRequest {
    api::GetSuggestionsRequest {
        experiment: Some(experiment),
        trials: Vec::new(),
        current_request_number: count,
        total_request_number: count,
    }
}

fn good_parameters() -> Vec<api::ParameterSpec> {
    vec![
        double("lr", "0.01", "0.05", "0.01"),
        list("opt", api::ParameterType::Categorical, &["sgd", "adam"]),
    ]
}

async fn client(server: &Server) -> SuggestionClient<Channel> {
    SuggestionClient::connect(server.endpoint())
        .await
        .expect("connect")
}

#[tokio::test]
async fn health_answers_for_katib_probe_names() {
    let server = Server::start(&[]).expect("server starts");
    let mut health = HealthClient::connect(server.endpoint())
        .await
        .expect("connect");
    for service in ["", "api.v1.beta1.Suggestion", "manager.v1beta1.Suggestion"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|status| panic!("{service:?}: {status}"));
        assert_eq!(reply.into_inner().status, ServingStatus::Serving as i32);
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_parameter_and_the_server_survives() {
    let server = Server::start(&[]).expect("server starts");
    let mut suggestion = client(&server).await;
    let unknown_type = api::ParameterSpec {
        name: "mystery".into(),
        parameter_type: 99,
        feasible_space: Some(api::FeasibleSpace::default()),
        condition: None,
    };
    let cases: Vec<(&str, api::GetSuggestionsRequest, Vec<&str>)> = vec![
        (
            "min > max",
            request(experiment("random", vec![double("lr", "5", "1", "")]), 1),
            vec!["lr", "min 5 > max 1"],
        ),
        (
            "empty categorical",
            request(
                experiment(
                    "random",
                    vec![list("opt", api::ParameterType::Categorical, &[])],
                ),
                1,
            ),
            vec!["opt", "feasibleSpace.list"],
        ),
        (
            "unknown type",
            request(experiment("random", vec![unknown_type]), 1),
            vec!["mystery", "unknown parameter type"],
        ),
        (
            "non-numeric bound",
            request(experiment("random", vec![double("lr", "low", "1", "")]), 1),
            vec!["lr", "feasibleSpace.min", "not a finite number"],
        ),
        (
            "zero step",
            request(experiment("grid", vec![double("lr", "0", "1", "0")]), 1),
            vec!["lr", "feasibleSpace.step"],
        ),
        (
            "negative step",
            request(experiment("grid", vec![double("lr", "0", "1", "-0.1")]), 1),
            vec!["lr", "feasibleSpace.step"],
        ),
        (
            "count 0",
            request(experiment("random", good_parameters()), 0),
            vec!["current_request_number"],
        ),
        (
            "absurd count",
            request(experiment("random", good_parameters()), i32::MAX),
            vec!["current_request_number"],
        ),
        (
            "unknown algorithm",
            request(experiment("simulated-annealing", good_parameters()), 1),
            vec!["simulated-annealing", "random", "grid", "sobol"],
        ),
        (
            "a succeeded trial names an unknown parameter",
            api::GetSuggestionsRequest {
                trials: vec![api::Trial {
                    name: "old".into(),
                    spec: Some(api::TrialSpec {
                        parameter_assignments: Some(api::trial_spec::ParameterAssignments {
                            assignments: vec![
                                api::ParameterAssignment {
                                    name: "lr".into(),
                                    value: "0.01".into(),
                                },
                                api::ParameterAssignment {
                                    name: "momentum".into(),
                                    value: "0.9".into(),
                                },
                            ],
                        }),
                        ..Default::default()
                    }),
                    // A trial with a result must fit; one without would be skipped.
                    status: Some(api::TrialStatus {
                        condition: api::trial_status::TrialConditionType::Succeeded as i32,
                        ..Default::default()
                    }),
                }],
                ..request(experiment("random", good_parameters()), 1)
            },
            vec!["momentum", "trials[0]"],
        ),
    ];
    for (case, request, needles) in cases {
        let status = suggestion.get_suggestions(request).await.expect_err(case);
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status}");
        for needle in needles {
            assert!(
                status.message().contains(needle),
                "{case}: {needle:?} not in {:?}",
                status.message()
            );
        }
    }
    let reply = suggestion
        .get_suggestions(request(experiment("random", good_parameters()), 3))
        .await
        .expect("still serving after bad input");
    assert_eq!(reply.into_inner().parameter_assignments.len(), 3);
}

#[tokio::test]
async fn grid_exhaustion_is_out_of_range() {
    let server = Server::start(&[]).expect("server starts");
    let mut suggestion = client(&server).await;
    let grid = experiment("grid", good_parameters());
    let reply = suggestion
        .get_suggestions(request(grid.clone(), 10))
        .await
        .expect("ten combinations exist")
        .into_inner();
    let trials: Vec<api::Trial> = reply
        .parameter_assignments
        .into_iter()
        .enumerate()
        .map(|(index, suggestion)| api::Trial {
            name: format!("t{index}"),
            spec: Some(api::TrialSpec {
                parameter_assignments: Some(api::trial_spec::ParameterAssignments {
                    assignments: suggestion.assignments,
                }),
                ..Default::default()
            }),
            status: None,
        })
        .collect();
    let status = suggestion
        .get_suggestions(api::GetSuggestionsRequest {
            trials,
            ..request(grid, 1)
        })
        .await
        .expect_err("every combination is taken");
    assert_eq!(status.code(), Code::OutOfRange, "{status}");
    assert!(status.message().contains("exhausted"), "{status}");
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let mut server = Server::start(&[]).expect("server starts");
    let pid = server.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = server.child.try_wait().expect("wait") {
            assert!(exit.success(), "exit status {exit}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// === Bounded cost: large batches, cancellation, shutdown, concurrency, report memory ===
// The async tests here run on several threads: they block on `/proc` readings while tonic's
// tasks run.

/// A space of six doubles, the kind where a Gaussian process costs the most per suggestion.
fn six_doubles() -> Vec<api::ParameterSpec> {
    (0..6)
        .map(|index| double(&format!("x{index}"), "0", "1", ""))
        .collect()
}

/// `count` finished trials on [`six_doubles`] with a smooth loss, as Katib sends a history.
fn finished_trials(count: usize) -> Vec<api::Trial> {
    (0..count)
        .map(|index| {
            // A deterministic spread over the cube (a scaled golden-ratio sequence per axis).
            let values: Vec<f64> = (0..6)
                .map(|axis| ((index + 1) as f64 * (0.618_034 + 0.1 * axis as f64)).fract())
                .collect();
            let loss: f64 = values.iter().map(|x| (x - 0.3) * (x - 0.3)).sum();
            api::Trial {
                name: format!("t{index}"),
                spec: Some(api::TrialSpec {
                    parameter_assignments: Some(api::trial_spec::ParameterAssignments {
                        assignments: values
                            .iter()
                            .enumerate()
                            .map(|(axis, value)| api::ParameterAssignment {
                                name: format!("x{axis}"),
                                value: value.to_string(),
                            })
                            .collect(),
                    }),
                    ..Default::default()
                }),
                status: Some(api::TrialStatus {
                    condition: api::trial_status::TrialConditionType::Succeeded as i32,
                    observation: Some(api::Observation {
                        metrics: vec![api::Metric {
                            name: "loss".into(),
                            value: loss.to_string(),
                        }],
                    }),
                    ..Default::default()
                }),
            }
        })
        .collect()
}

/// A GetSuggestions request for `algorithm` on six doubles with `history` finished trials.
fn heavy_request(algorithm: &str, history: usize, count: i32) -> api::GetSuggestionsRequest {
    api::GetSuggestionsRequest {
        trials: finished_trials(history),
        ..request(experiment(algorithm, six_doubles()), count)
    }
}

/// A request that computes for seconds even within the bounds: a Gaussian process over 2,000
/// finished and 256 running trials, asked for a full model-based batch.
fn slow_request() -> api::GetSuggestionsRequest {
    let mut request = heavy_request("bayesianoptimization", 2256, 10_000);
    for trial in &mut request.trials[2000..] {
        trial.status = Some(api::TrialStatus {
            condition: api::trial_status::TrialConditionType::Running as i32,
            ..Default::default()
        });
    }
    request
}

/// Waits until the server spends under 10 clock ticks (0.1 s of CPU) in one second, which
/// an abandoned computation would not: it stops at the algorithm's next cancellation check,
/// within one phase of its work. How long that took is printed, not asserted (a loaded
/// machine stretches it); the bound only tells a stop from none.
fn settles_to_idle(pid: u32, after: &str) {
    let started = Instant::now();
    loop {
        let ticks = ticks_over_one_second(pid);
        if ticks < 10 {
            eprintln!(
                "idle {:.1} s after {after} ({ticks} ticks in the last second)",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still computing 30 s after {after}: {ticks} ticks in the last second"
        );
    }
}

/// Clock ticks the process has spent on a CPU, user and system (`/proc/PID/stat` fields 14, 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // The command name in parentheses may hold spaces; the fields after it are plain.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split(' ')
        .collect();
    let ticks = |index: usize| fields[index].parse::<u64>().expect("ticks");
    // Fields 14 and 15 of the whole line are the 12th and 13th after the name.
    ticks(11) + ticks(12)
}

/// A `/proc/PID/status` size in KiB, e.g. `VmRSS` or `VmHWM`.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in status"))
}

/// The CPU the server spends over one second, in clock ticks (100 per busy core-second).
fn ticks_over_one_second(pid: u32) -> u64 {
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    cpu_ticks(pid) - before
}

/// Returns once the server computes (0.2 of a core or more over a second) for `call`, which must
/// still be waiting for its answer then.
fn wait_until_busy<T>(pid: u32, call: &tokio::task::JoinHandle<T>) {
    loop {
        assert!(
            !call.is_finished(),
            "the slow request ended before it was seen computing"
        );
        if ticks_over_one_second(pid) >= 20 {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_assignments_from_every_algorithm_answer() {
    let server = Server::start(&[]).expect("server starts");
    let mut suggestion = client(&server).await;
    for algorithm in [
        "bayesianoptimization",
        "tpe",
        "multivariate-tpe",
        "random",
        "sobol",
        "cmaes",
    ] {
        let started = Instant::now();
        let reply = suggestion
            .get_suggestions(heavy_request(algorithm, 100, 10_000))
            .await
            .unwrap_or_else(|status| panic!("{algorithm}: {status}"))
            .into_inner();
        // The figure the README quotes; not asserted, the machine may be loaded.
        eprintln!(
            "{algorithm}: 10,000 assignments after 100 trials in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        assert_eq!(reply.parameter_assignments.len(), 10_000, "{algorithm}");
        if algorithm.contains("tpe") || algorithm == "bayesianoptimization" {
            let filled = reply
                .parameter_assignments
                .iter()
                .filter(|assignment| {
                    assignment.labels.get("sextant.dev/suggestion-source")
                        == Some(&"quasi-random".to_string())
                })
                .count();
            assert_eq!(
                filled,
                10_000 - sextant_algorithms::algorithm::MODEL_BATCH_LIMIT,
                "{algorithm}: the model chooses the first points, Sobol fills the rest"
            );
        }
    }
}

// Several threads: the test blocks on `/proc` readings while tonic's tasks run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_goes_away_stops_computing() {
    let server = Server::start(&[]).expect("server starts");
    let pid = server.child.id();
    let mut suggestion = client(&server).await;

    // The client's deadline passes: tonic drops the request, and the work must stop with it.
    let mut with_deadline = Request::new(slow_request());
    with_deadline.set_timeout(Duration::from_millis(500));
    let status = suggestion
        .get_suggestions(with_deadline)
        .await
        .expect_err("the deadline passes first");
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status}"
    );
    settles_to_idle(pid, "the deadline passed");

    // The client is dropped mid-request.
    let mut abandoned = suggestion.clone();
    let call = tokio::spawn(async move { abandoned.get_suggestions(slow_request()).await });
    wait_until_busy(pid, &call);
    call.abort();
    let _ = call.await;
    settles_to_idle(pid, "the client left");

    // Still serving.
    let reply = suggestion
        .get_suggestions(request(experiment("random", good_parameters()), 2))
        .await
        .expect("serves after cancelled work");
    assert_eq!(reply.into_inner().parameter_assignments.len(), 2);
}

// Several threads: the test blocks on `/proc` readings while tonic's tasks run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_concurrency_limit_are_resource_exhausted() {
    let server = Server::start(&["--max-concurrent-suggestions", "1"]).expect("server starts");
    let pid = server.child.id();
    let mut first = client(&server).await;
    let mut second = first.clone();
    let running = tokio::spawn(async move { first.get_suggestions(slow_request()).await });
    wait_until_busy(pid, &running);
    let status = second
        .get_suggestions(request(experiment("random", good_parameters()), 1))
        .await
        .expect_err("the only slot is taken");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    assert!(
        status.message().contains("--max-concurrent-suggestions"),
        "{status}"
    );
    running.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_server_timeout_is_deadline_exceeded() {
    let server = Server::start(&["--suggestion-timeout", "1"]).expect("server starts");
    let mut suggestion = client(&server).await;
    let status = suggestion
        .get_suggestions(slow_request())
        .await
        .expect_err("the server's limit passes first");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    assert!(
        status.message().contains("--suggestion-timeout"),
        "{status}"
    );
}

#[test]
fn sigterm_during_a_long_suggestion_ends_it_and_exits() {
    let mut server = Server::start(&[]).expect("server starts");
    let pid = server.child.id();
    let endpoint = server.endpoint();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let call = runtime.spawn(async move {
        let mut suggestion = SuggestionClient::connect(endpoint).await.expect("connect");
        suggestion.get_suggestions(slow_request()).await
    });
    wait_until_busy(pid, &call);
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // Generous: without the fix the server stays up for minutes.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(exit) = server.child.try_wait().expect("wait") {
            assert!(exit.success(), "exit status {exit}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let reply = runtime.block_on(call).expect("client task");
    let status = reply.expect_err("the computation was ended");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
}

/// A report of about `bytes` bytes on the wire: entries of one metric with `value_bytes`-long
/// values.
fn report_of(
    trial_name: &str,
    bytes: usize,
    value_bytes: usize,
) -> api::ReportObservationLogRequest {
    let entry = api::MetricLog {
        time_stamp: "2026-12-02T19:00:00.123456Z".into(),
        metric: Some(api::Metric {
            name: "loss".into(),
            value: "7".repeat(value_bytes),
        }),
    };
    // Wire size of one entry: its fields plus their tags and lengths.
    let entry_bytes = prost::Message::encoded_len(&entry) + 4;
    api::ReportObservationLogRequest {
        trial_name: trial_name.into(),
        observation_log: Some(api::ObservationLog {
            metric_logs: vec![entry; bytes / entry_bytes],
        }),
    }
}

/// Reports that together would take the server far past its memory limit, sent at once: eight
/// of the largest size it accepts are all stored, eight ten times larger are refused before
/// they are read, its peak resident memory stays under 256 MiB, and what the reports took is
/// handed back once they are stored. The store is PostgreSQL, so that no embedded database's
/// page cache counts as the server's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_maximum_size_reports_keep_memory_bounded() {
    const BOUND_KIB: u64 = 256 << 10;
    const RETAINED_KIB: u64 = 24 << 10;
    let server = Server::start_with_db(&postgres_url(), &[]).expect("server starts");
    let pid = server.child.id();
    let idle = memory_kib(pid, "RssAnon");
    let max_bytes = sextant_store::service::DEFAULT_MAX_REPORT_BYTES;
    let channel = || async {
        tonic::transport::Endpoint::from_shared(server.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    };
    // The shared database keeps what a run stores: start and end without this test's logs.
    let forget_reports = || async {
        let mut db = DbManagerClient::new(channel().await);
        for index in 0..8 {
            db.delete_observation_log(api::DeleteObservationLogRequest {
                trial_name: format!("memory-fits-{index}"),
            })
            .await
            .expect("delete a report");
        }
    };
    forget_reports().await;
    let mut calls = Vec::new();
    for index in 0..8 {
        // Each client on its own connection, as separate collectors would be.
        let mut db = DbManagerClient::new(channel().await)
            .max_encoding_message_size(sextant_proto::MAX_MESSAGE_BYTES);
        // Just under the limit, with short values as metrics have.
        let fits = report_of(&format!("memory-fits-{index}"), max_bytes - 4096, 8);
        calls.push(tokio::spawn(async move {
            db.report_observation_log(fits).await.map(|_| ())
        }));
    }
    for index in 0..8 {
        let mut db = DbManagerClient::new(channel().await)
            .max_encoding_message_size(sextant_proto::MAX_MESSAGE_BYTES);
        let too_large = report_of(&format!("memory-large-{index}"), 10 * max_bytes, 1000);
        calls.push(tokio::spawn(async move {
            db.report_observation_log(too_large).await.map(|_| ())
        }));
    }
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.expect("client task"));
    }
    for (index, result) in results.iter().enumerate() {
        if index < 8 {
            result
                .as_ref()
                .unwrap_or_else(|status| panic!("report {index}: {status}"));
        } else {
            let status = result.as_ref().expect_err("larger than the limit");
            assert_eq!(status.code(), Code::OutOfRange, "{status}");
        }
    }
    let mut db = DbManagerClient::new(channel().await);
    let stored = db
        .get_observation_log(api::GetObservationLogRequest {
            trial_name: "memory-fits-7".into(),
            ..Default::default()
        })
        .await
        .expect("read back")
        .into_inner();
    let expected = report_of("memory-fits-7", max_bytes - 4096, 8)
        .observation_log
        .expect("log")
        .metric_logs
        .len();
    assert_eq!(
        stored.observation_log.expect("log").metric_logs.len(),
        expected
    );
    let peak = memory_kib(pid, "VmHWM");
    forget_reports().await;
    assert!(peak < BOUND_KIB, "peak RSS {peak} KiB");
    // What the reports took goes back to the system once they are stored; what may stay is the
    // connection pool's buffers and allocator slack.
    let retained_bound = idle + RETAINED_KIB;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = memory_kib(pid, "RssAnon");
    while after > retained_bound && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = memory_kib(pid, "RssAnon");
    }
    eprintln!(
        "8 concurrent {max_bytes}-byte reports ({expected} points each) and 8 refused: peak RSS {} MiB; \
         anonymous memory {} MiB idle, {} MiB after",
        peak >> 10,
        idle >> 10,
        after >> 10
    );
    assert!(
        after <= retained_bound,
        "anonymous memory stayed at {after} KiB, idle it was {idle} KiB"
    );
}
