//! The PocketBase target, for the side-by-side comparison: a PocketBase started by
//! `bench/compare.sh` on loopback; this side creates the `batches` collection (the
//! same fields as Strongroom's record type, only authenticated users may create, read
//! and list), a user, and drives creates, reads by id and filtered lists with the same
//! payload and client settings as the Strongroom target.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::run::{Client, Mix, Op, Rng, drive};
use crate::{Http, Load, Scenario, content};

/// `strongroom-load pocketbase`.
#[derive(Debug, Args)]
pub(crate) struct PocketbaseArgs {
    #[command(flatten)]
    load: Load,
    /// PocketBase's address (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    url: String,
    /// A superuser's e-mail (created with `pocketbase superuser upsert`).
    #[arg(long)]
    admin_email: String,
    /// The superuser's password.
    #[arg(long)]
    admin_password: String,
    /// PocketBase's pid, for its memory.
    #[arg(long)]
    pid: Option<u32>,
}

const PASSWORD: &str = "load generator password 1";

async fn call(req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let r = req.send().await?;
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))
}

/// Creates the collection and a user; returns the user's token.
async fn prepare(http: &reqwest::Client, args: &PocketbaseArgs) -> anyhow::Result<String> {
    let base = &args.url;
    let admin = call(
        http.post(format!(
            "{base}/api/collections/_superusers/auth-with-password"
        ))
        .json(&json!({"identity": args.admin_email, "password": args.admin_password})),
    )
    .await
    .context("superuser sign-in")?;
    let admin = admin["token"]
        .as_str()
        .context("superuser token")?
        .to_owned();
    let rule = "@request.auth.id != ''";
    let collection = json!({
        "name": "batches", "type": "base",
        "fields": [
            {"name": "batch_no", "type": "text", "required": true, "max": 32},
            {"name": "quantity", "type": "number", "onlyInt": true, "min": 0},
            {"name": "notes", "type": "text", "max": 4096}
        ],
        "indexes": ["CREATE INDEX idx_batches_batch_no ON batches (batch_no)"],
        "listRule": rule, "viewRule": rule, "createRule": rule
    });
    call(
        http.post(format!("{base}/api/collections"))
            .header("authorization", &admin)
            .json(&collection),
    )
    .await
    .context("creating the batches collection")?;
    let email = "load@pocketbase.example";
    call(
        http.post(format!("{base}/api/collections/users/records")).header("authorization", &admin).json(
            &json!({"email": email, "password": PASSWORD, "passwordConfirm": PASSWORD, "verified": true}),
        ),
    )
    .await
    .context("creating the user")?;
    let user = call(
        http.post(format!("{base}/api/collections/users/auth-with-password"))
            .json(&json!({"identity": email, "password": PASSWORD})),
    )
    .await
    .context("user sign-in")?;
    Ok(user["token"].as_str().context("user token")?.to_owned())
}

struct Pocketbase {
    http: reqwest::Client,
    base: String,
    token: String,
    seeded: Arc<Vec<(String, String)>>,
    id: u64,
}

impl Pocketbase {
    async fn status(&self, req: reqwest::RequestBuilder) -> u16 {
        match req.header("authorization", &self.token).send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                let _ = r.bytes().await;
                s
            }
            Err(_) => 0,
        }
    }
}

impl Client for Pocketbase {
    async fn op(&mut self, op: Op, n: u64, rng: &mut Rng) -> u16 {
        let records = format!("{}/api/collections/batches/records", self.base);
        let pick = |rng: &mut Rng| {
            let i = rng.below(self.seeded.len() as u64) as usize;
            self.seeded.get(i).cloned()
        };
        match op {
            Op::Read => match pick(rng) {
                Some((id, _)) => self.status(self.http.get(format!("{records}/{id}"))).await,
                None => 0,
            },
            Op::List => match pick(rng) {
                Some((_, batch_no)) => {
                    // (batch_no='S-1'), percent-encoded.
                    let url =
                        format!("{records}?perPage=20&filter=%28batch_no%3D%27{batch_no}%27%29");
                    let req = self.http.get(url);
                    self.status(req).await
                }
                None => 0,
            },
            // Creates (and any other operation: PocketBase has no signatures or trail).
            _ => {
                let body = json!(content(self.id * 1_000_000 + n));
                self.status(self.http.post(&records).json(&body)).await
            }
        }
    }
}

/// Creates `n` records to read and list; returns (id, batch number) of each.
async fn seed(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    n: u32,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut seeded = Vec::new();
    for i in 0..n {
        let batch_no = format!("S-{i}");
        let mut c = content(u64::from(i));
        c["batch_no"] = json!(batch_no);
        let url = format!("{base}/api/collections/batches/records");
        let v = call(http.post(url).header("authorization", token).json(&c)).await?;
        let id = v["id"].as_str().context("a created record has no id")?;
        seeded.push((id.to_owned(), batch_no));
    }
    Ok(seeded)
}

/// `strongroom-load pocketbase`.
pub(crate) async fn run(args: PocketbaseArgs) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(&args.url).context("--url")?;
    let host = url.host_str().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback || url.scheme() != "http" || !url.username().is_empty() || url.password().is_some()
    {
        bail!("--url must be a plain http:// address on loopback, not {url}");
    }
    let load = &args.load;
    let mix = match load.scenario {
        Scenario::Create => Mix::only(Op::Create),
        Scenario::Read => Mix::only(Op::Read),
        Scenario::List => Mix::only(Op::List),
        Scenario::Mixed => bail!("PocketBase has only create, read and list"),
    };
    let builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1024);
    let http = match load.http {
        Http::One => builder.http1_only(),
        Http::Two => builder.http2_prior_knowledge(),
    }
    .build()?;
    let token = prepare(&http, &args).await?;
    let seeded = if load.scenario == Scenario::Create {
        Vec::new()
    } else {
        seed(&http, &args.url, &token, load.seed).await?
    };
    let seeded = Arc::new(seeded);
    let clients = (0..load.concurrency)
        .map(|i| Pocketbase {
            http: http.clone(),
            base: args.url.clone(),
            token: token.clone(),
            seeded: seeded.clone(),
            id: u64::from(i),
        })
        .collect();
    let measured = drive(load, clients, &mix).await?;
    let label = format!(
        "pocketbase {:?}, HTTP/{}, {} clients",
        load.scenario,
        if load.http == Http::One { "1.1" } else { "2" },
        load.concurrency
    );
    crate::report::print(&label, &measured, args.pid, load.json);
    Ok(())
}
