//! The Strongroom target: a server started on loopback with this build's binary, a
//! fresh data directory, tenants with users, and the `batch` record type.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use reqwest::header::{CONTENT_TYPE, ETAG, IF_MATCH};
use serde_json::{Value, json};
use strongroom_testkit::{Options, TestServer, USER_PASSWORD};

use crate::run::{Client, Mix, Op, Rng, drive};
use crate::{Http, Load, Scenario, content};

/// `strongroom-load strongroom`.
#[derive(Debug, Args)]
pub(crate) struct StrongroomArgs {
    #[command(flatten)]
    load: Load,
    /// Tenants to spread the clients over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    tenants: u32,
    /// Users per tenant (each client signs in as one of them).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    users: u32,
    #[command(flatten)]
    server: ServerArgs,
}

/// How the server under test is started.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// The `strongroom` binary (default: beside this one, e.g. target/release/strongroom).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Run on PostgreSQL (and S3 when configured): needs SR_TEST_POSTGRES from
    /// `. .ci/services.sh`.
    #[arg(long)]
    postgres: bool,
    /// The server's tokio worker threads (TOKIO_WORKER_THREADS).
    #[arg(long)]
    worker_threads: Option<u32>,
    /// Pin the server to these CPUs (`taskset` list, e.g. "0" or "0,1").
    #[arg(long)]
    cpus: Option<String>,
    /// Extra top-level TOML settings, e.g. `database.group_commit_max_batch = 1`.
    #[arg(long = "set")]
    settings: Vec<String>,
}

impl ServerArgs {
    fn bin(&self) -> anyhow::Result<PathBuf> {
        let bin = match &self.bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("the load generator's directory")?
                .join("strongroom"),
        };
        if !bin.exists() {
            bail!(
                "{} does not exist: build it first (`cargo build --release -p strongroom`) or pass --bin",
                bin.display()
            );
        }
        Ok(bin)
    }

    /// Starts the server; returns it with its pid.
    pub(crate) async fn start(&self) -> anyhow::Result<TestServer> {
        let bin = self.bin()?;
        let mut config = self.settings.join("\n");
        config.push_str("\n[regions.eu]\n");
        let mut env = Vec::new();
        if let Some(n) = self.worker_threads {
            env.push(("TOKIO_WORKER_THREADS".to_owned(), n.to_string()));
        }
        let s = TestServer::try_start(
            &bin,
            Options {
                config: Some(config),
                env,
                postgres: self.postgres,
                ..Options::default()
            },
        )
        .await
        .map_err(|(why, _)| anyhow::anyhow!(why))?;
        if let Some(cpus) = &self.cpus {
            let pinned = tokio::process::Command::new("taskset")
                .args(["-a", "-p", "-c", cpus, &s.pid().to_string()])
                .output()
                .await
                .context("taskset")?;
            if !pinned.status.success() {
                bail!("taskset: {}", String::from_utf8_lossy(&pinned.stderr));
            }
        }
        Ok(s)
    }
}

/// One signed-in user of one tenant.
#[derive(Debug, Clone)]
struct Seat {
    tenant: String,
    email: String,
    token: String,
}

/// Creates `tenants` tenants, each with an admin, the record type and `users` users
/// (preparer and auditor); returns one seat per user.
async fn populate(s: &TestServer, tenants: u32, users: u32) -> anyhow::Result<Vec<Seat>> {
    let api = s.api();
    let op = s.operator_token().await;
    let mut seats = Vec::new();
    for t in 0..tenants {
        let slug = format!("load{t}");
        api.create_tenant(&op, &slug).await;
        let admin_email = format!("admin@{slug}.example");
        let out = s
            .cli(
                &[
                    "user",
                    "create",
                    "--tenant",
                    &slug,
                    "--email",
                    &admin_email,
                    "--role",
                    "admin",
                    "--password-stdin",
                ],
                Some(USER_PASSWORD),
            )
            .await;
        if !out.status.success() {
            bail!("user create: {}", String::from_utf8_lossy(&out.stderr));
        }
        let admin = api.sign_in(&slug, &admin_email).await.access;
        api.put(
            &format!("/v1/t/{slug}/record-types/batch"),
            &admin,
            record_type(),
        )
        .await
        .ok(200);
        for u in 0..users {
            let email = format!("user{u}@{slug}.example");
            let body = json!({"email": email, "password": USER_PASSWORD,
                "roles": ["preparer", "auditor"], "full_name": format!("User {u}")});
            api.post(&format!("/v1/t/{slug}/users"), Some(&admin), body)
                .await
                .ok(201);
            let token = api.sign_in(&slug, &email).await.access;
            seats.push(Seat {
                tenant: slug.clone(),
                email,
                token,
            });
        }
    }
    Ok(seats)
}

/// The record type: the fields of [`content`], two signatures, `batch_no` searchable.
fn record_type() -> Value {
    json!({
        "schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["batch_no", "quantity"],
            "additionalProperties": false,
            "properties": {
                "batch_no": {"type": "string", "maxLength": 32},
                "quantity": {"type": "integer", "minimum": 0},
                "notes": {"type": "string", "maxLength": 4096}
            }
        },
        // The clients sign "authored"; an approval by someone else would come after.
        "signature_policy": {"steps": [
            {"meaning": "authored", "permission": "records:write"},
            {"meaning": "approved", "permission": "records:approve"}
        ]},
        "searchable": ["batch_no"],
        "retention_days": 3650
    })
}

/// One client of the Strongroom API.
struct Strongroom {
    http: reqwest::Client,
    base: String,
    seat: Seat,
    /// Drafts this client created: (id, etag), newest last.
    mine: Vec<(String, String)>,
    /// Records seeded before the run, per tenant: (id, batch number).
    seeded: Arc<Vec<(String, String)>>,
    id: u64,
}

fn etag(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl Strongroom {
    fn url(&self, path: &str) -> String {
        format!("{}/v1/t/{}{path}", self.base, self.seat.tenant)
    }

    async fn create(&mut self, n: u64) -> u16 {
        let body = json!({"type": "batch", "content": content(self.id * 1_000_000 + n)});
        let r = self
            .http
            .post(self.url("/records"))
            .bearer_auth(&self.seat.token)
            .json(&body)
            .send()
            .await;
        let Ok(r) = r else { return 0 };
        let status = r.status().as_u16();
        let tag = etag(&r);
        if let (201, Some(tag), Ok(v)) = (status, tag, r.json::<Value>().await)
            && let Some(id) = v["id"].as_str()
        {
            if self.mine.len() >= 1000 {
                self.mine.remove(0);
            }
            self.mine.push((id.to_owned(), tag));
        }
        status
    }

    async fn get(&self, path: &str) -> u16 {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.seat.token)
            .send()
            .await;
        match r {
            Ok(r) => {
                let status = r.status().as_u16();
                // Read the whole body, as a client would.
                let _ = r.bytes().await;
                status
            }
            Err(_) => 0,
        }
    }

    fn some_record(&self, rng: &mut Rng) -> Option<(String, String)> {
        if !self.seeded.is_empty() {
            let i = rng.below(self.seeded.len() as u64) as usize;
            return self.seeded.get(i).cloned();
        }
        let i = rng.below(self.mine.len() as u64) as usize;
        self.mine.get(i).map(|(id, _)| (id.clone(), String::new()))
    }

    async fn update(&mut self, n: u64, rng: &mut Rng) -> u16 {
        if self.mine.is_empty() {
            return self.create(n).await;
        }
        let i = rng.below(self.mine.len() as u64) as usize;
        let (id, tag) = self.mine[i].clone();
        let body = json!({"content": content(self.id * 1_000_000 + n)});
        let r = self
            .http
            .put(self.url(&format!("/records/{id}/content")))
            .bearer_auth(&self.seat.token)
            .header(IF_MATCH, tag)
            .json(&body)
            .send()
            .await;
        let Ok(r) = r else { return 0 };
        let status = r.status().as_u16();
        match etag(&r) {
            Some(tag) if status == 200 => self.mine[i].1 = tag,
            _ => {
                self.mine.remove(i);
            }
        }
        let _ = r.bytes().await;
        status
    }

    async fn post_if(
        &self,
        path: &str,
        tag: &str,
        body: &Value,
    ) -> Result<(u16, Option<String>), ()> {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.seat.token)
            .header(IF_MATCH, tag)
            .header(CONTENT_TYPE, "application/json")
            .json(body)
            .send()
            .await
            .map_err(|_| ())?;
        let status = r.status().as_u16();
        let tag = etag(&r);
        let _ = r.bytes().await;
        Ok((status, tag))
    }

    /// Submits one of this client's drafts and signs it "authored".
    async fn sign(&mut self, n: u64) -> u16 {
        let Some((id, tag)) = self.mine.pop() else {
            return self.create(n).await;
        };
        let Ok((status, tag)) = self
            .post_if(&format!("/records/{id}/submit"), &tag, &json!({}))
            .await
        else {
            return 0;
        };
        let Some(tag) = tag.filter(|_| status == 200) else {
            return status;
        };
        let body =
            json!({"meaning": "authored", "password": USER_PASSWORD, "email": self.seat.email});
        match self
            .post_if(&format!("/records/{id}/versions/1/signatures"), &tag, &body)
            .await
        {
            Ok((status, _)) => status,
            Err(()) => 0,
        }
    }
}

impl Client for Strongroom {
    async fn op(&mut self, op: Op, n: u64, rng: &mut Rng) -> u16 {
        match op {
            Op::Create => self.create(n).await,
            Op::Read => match self.some_record(rng) {
                Some((id, _)) => self.get(&format!("/records/{id}")).await,
                None => self.create(n).await,
            },
            Op::List => match self.some_record(rng) {
                Some((_, batch_no)) if !batch_no.is_empty() => {
                    self.get(&format!(
                        "/records?type=batch&field.batch_no={batch_no}&limit=20"
                    ))
                    .await
                }
                _ => {
                    self.get(&format!(
                        "/records?type=batch&field.batch_no=B-{}&limit=20",
                        n
                    ))
                    .await
                }
            },
            Op::Update => self.update(n, rng).await,
            Op::Audit => self.get("/audit/entries?limit=50").await,
            Op::Sign => self.sign(n).await,
        }
    }
}

/// An HTTPS client trusting only the server's certificate, speaking `http`.
pub(crate) fn client(cert: &[u8], http: Http) -> anyhow::Result<reqwest::Client> {
    let cert = reqwest::Certificate::from_pem(cert)?;
    let b = reqwest::Client::builder()
        .tls_certs_only([cert])
        .https_only(true)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1024);
    let b = match http {
        Http::One => b.http1_only(),
        Http::Two => b.http2_prior_knowledge(),
    };
    Ok(b.build()?)
}

/// Creates `per_tenant` records in every tenant (16 at a time); returns them per tenant.
async fn seed(
    http: &reqwest::Client,
    base: &str,
    seats: &[Seat],
    per_tenant: u32,
) -> anyhow::Result<std::collections::BTreeMap<String, Arc<Vec<(String, String)>>>> {
    let mut out = std::collections::BTreeMap::new();
    let mut firsts: Vec<&Seat> = Vec::new();
    for s in seats {
        if !firsts.iter().any(|f| f.tenant == s.tenant) {
            firsts.push(s);
        }
    }
    for seat in firsts {
        let mut made = Vec::new();
        for chunk in (0..per_tenant).collect::<Vec<_>>().chunks(16) {
            let calls = chunk.iter().map(|i| {
                let batch_no = format!("S-{i}");
                let mut c = content(u64::from(*i));
                c["batch_no"] = json!(batch_no);
                let req = http
                    .post(format!("{base}/v1/t/{}/records", seat.tenant))
                    .bearer_auth(&seat.token)
                    .json(&json!({"type": "batch", "content": c}))
                    .send();
                async move {
                    let v: Value = req.await?.error_for_status()?.json().await?;
                    let id = v["id"].as_str().context("a created record has no id")?;
                    anyhow::Ok((id.to_owned(), batch_no))
                }
            });
            for r in futures_join(calls).await? {
                made.push(r?);
            }
        }
        out.insert(seat.tenant.clone(), Arc::new(made));
    }
    Ok(out)
}

/// Runs futures concurrently and collects their results in order.
async fn futures_join<F, T>(futures: impl IntoIterator<Item = F>) -> anyhow::Result<Vec<T>>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.context("a set-up task failed")?);
    }
    Ok(out)
}

/// `strongroom-load strongroom`: start, populate, seed, drive, report.
pub(crate) async fn run(args: StrongroomArgs) -> anyhow::Result<()> {
    let load = &args.load;
    let mix = match load.scenario {
        Scenario::Create => Mix::only(Op::Create),
        Scenario::Read => Mix::only(Op::Read),
        Scenario::List => Mix::only(Op::List),
        Scenario::Mixed => Mix::parse(&load.mix)?,
    };
    let s = args.server.start().await?;
    let seats = populate(&s, args.tenants, args.users).await?;
    let http = client(&s.cert_pem(), load.http)?;
    let seeded = if matches!(
        load.scenario,
        Scenario::Read | Scenario::List | Scenario::Mixed
    ) {
        seed(&http, &s.base, &seats, load.seed).await?
    } else {
        Default::default()
    };
    let clients: Vec<Strongroom> = (0..load.concurrency)
        .map(|i| {
            let seat = seats[i as usize % seats.len()].clone();
            Strongroom {
                http: http.clone(),
                base: s.base.clone(),
                seeded: seeded.get(&seat.tenant).cloned().unwrap_or_default(),
                seat,
                mine: Vec::new(),
                id: u64::from(i),
            }
        })
        .collect();
    let measured = drive(load, clients, &mix).await?;
    let label = format!(
        "strongroom {:?} on {}, HTTP/{}, {} clients, {} tenants",
        load.scenario,
        if args.server.postgres {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        if load.http == Http::One { "1.1" } else { "2" },
        load.concurrency,
        args.tenants
    );
    crate::report::print(&label, &measured, Some(s.pid()), load.json);
    s.stop().await;
    Ok(())
}

/// `strongroom-load idle`.
#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    /// Tenants to create before measuring.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    tenants: u32,
    /// Seconds of idleness measured.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    secs: u64,
    /// Print the report as one JSON object too.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Creates many tenants (each with a first write, so each has a trail and keys), lets
/// the server settle, then measures its CPU time and memory over an idle window.
pub(crate) async fn idle(args: IdleArgs) -> anyhow::Result<()> {
    let s = args.server.start().await?;
    let op = s.operator_token().await;
    let http = client(&s.cert_pem(), Http::One)?;
    let started = Instant::now();
    let slugs: Vec<u32> = (0..args.tenants).collect();
    for chunk in slugs.chunks(16) {
        let calls = chunk.iter().map(|t| {
            let req = http
                .post(format!("{}/v1/tenants", s.base))
                .bearer_auth(&op)
                .json(&json!({"slug": format!("idle{t}"), "display_name": "idle", "region": "eu"}))
                .send();
            async move { anyhow::Ok(req.await?.error_for_status()?.status()) }
        });
        for r in futures_join(calls).await? {
            r?;
        }
    }
    let created = started.elapsed();
    let pid = s.pid();
    // Every new tenant's first entries are checkpointed once; wait until the server is
    // quiet (a 5-second window under 2% of a core, at most 10 minutes) before the
    // measured window, and say how long that took.
    let settling = Instant::now();
    loop {
        let before = crate::report::cpu_secs(pid).context("cpu time")?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let busy = (crate::report::cpu_secs(pid).context("cpu time")? - before) / 5.0;
        if busy < 0.02 {
            break;
        }
        if settling.elapsed() > Duration::from_secs(600) {
            bail!(
                "the server did not settle within 10 minutes ({:.1}% of a core)",
                busy * 100.0
            );
        }
    }
    let settled = settling.elapsed();
    let cpu0 = crate::report::cpu_secs(pid).context("cpu time")?;
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    let cpu1 = crate::report::cpu_secs(pid).context("cpu time")?;
    let (peak, now) = crate::report::rss_mib(pid).context("rss")?;
    let share = (cpu1 - cpu0) / args.secs as f64 * 100.0;
    println!(
        "{} tenants (created in {:.1} s, first checkpoints done {:.0} s later): idle CPU {share:.2}% of one core over {} s, RSS {now:.1} MiB (peak {peak:.1} MiB)",
        args.tenants,
        created.as_secs_f64(),
        settled.as_secs_f64(),
        args.secs
    );
    if args.json {
        println!(
            "{}",
            json!({"tenants": args.tenants, "idle_cpu_percent": share, "rss_mib": now, "peak_rss_mib": peak})
        );
    }
    s.stop().await;
    Ok(())
}
