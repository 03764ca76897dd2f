//! `strongroom records`: read a tenant's record types and records, and verify them,
//! straight from the data directory (the local administrator reads; nobody signs here).

use anyhow::Context;
use strongroom_core::platform::RecordQuery;
use strongroom_core::records::RecordId;
use strongroom_core::records::definition::TypeName;
use strongroom_core::tenant::Slug;

use super::RecordsCommand;
use super::admin::println_out;

pub(super) async fn run(admin: &super::Admin, cmd: RecordsCommand) -> anyhow::Result<()> {
    let (platform, me) = (&admin.platform, &admin.me);
    match cmd {
        RecordsCommand::Types { tenant, output } => {
            let types = platform.record_types(me, &Slug::parse(&tenant)?).await?;
            if output.json {
                return println_out(&serde_json::to_string_pretty(&types)?);
            }
            let mut text = String::new();
            for t in &types {
                let meanings: Vec<&str> = t
                    .definition
                    .signature_policy
                    .steps
                    .iter()
                    .map(|s| s.meaning.as_str())
                    .collect();
                text.push_str(&format!(
                    "{:<24} v{:<4} signatures: {}\n",
                    t.name,
                    t.version,
                    meanings.join(" -> ")
                ));
            }
            println_out(text.trim_end())
        }
        RecordsCommand::List {
            tenant,
            record_type,
            output,
        } => list(admin, &tenant, record_type.as_deref(), output.json).await,
        RecordsCommand::Show { tenant, record } => {
            let id = RecordId::parse(&record).context("--record takes a record id")?;
            let view = platform.record(me, &Slug::parse(&tenant)?, &id).await?;
            println_out(&serde_json::to_string_pretty(&view)?)
        }
        RecordsCommand::Verify {
            tenant,
            record,
            output,
        } => verify(admin, &tenant, record.as_deref(), output.json).await,
    }
}

async fn verify(
    admin: &super::Admin,
    tenant: &str,
    record: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let (platform, me) = (&admin.platform, &admin.me);

    let only = record
        .map(|r| RecordId::parse(r).context("--record takes a record id"))
        .transpose()?;
    let report = platform
        .verify_records(me, &Slug::parse(tenant)?, only.as_ref())
        .await?;
    if json {
        println_out(&serde_json::to_string_pretty(&report)?)?;
    } else {
        let mut text = format!(
            "checked {} records, {} versions, {} revisions, {} signatures, {} attachments against checkpoint size {}\n",
            report.records,
            report.versions,
            report.revisions,
            report.signatures,
            report.attachments,
            report.checkpoint_size
        );
        for f in &report.failures {
            let at = f.version.map(|v| format!(" v{v}")).unwrap_or_default();
            text.push_str(&format!("FAIL {}{at}: {}\n", f.record, f.problem));
        }
        if report.failures.is_empty() {
            text.push_str("OK: every hash, signature and audit binding verified\n");
        }
        println_out(text.trim_end())?;
    }
    anyhow::ensure!(
        report.failures.is_empty(),
        "{} check(s) failed",
        report.failures.len()
    );
    Ok(())
}

async fn list(
    admin: &super::Admin,
    tenant: &str,
    record_type: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let (platform, me) = (&admin.platform, &admin.me);

    let query = RecordQuery {
        type_name: record_type.map(TypeName::parse).transpose()?,
        ..RecordQuery::default()
    };
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = platform
            .records(me, &Slug::parse(tenant)?, query.clone(), after, 100)
            .await?;
        let done = page.len() < 100;
        after = page.last().and_then(|r| RecordId::parse(&r.id));
        all.extend(page);
        if done {
            break;
        }
    }
    if json {
        return println_out(&serde_json::to_string_pretty(&all)?);
    }
    let mut text = String::new();
    for r in &all {
        text.push_str(&format!(
            "{}  {:<16} v{:<3} {:<10} {}\n",
            r.id, r.type_name, r.current_version, r.status, r.updated_at
        ));
    }
    println_out(text.trim_end())
}
