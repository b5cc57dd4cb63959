//! The monthly compliance email (`[compliance] to, day`): from day `day` of each month (UTC),
//! the leader mails `patchday compliance` for the previous month ([`crate::compliance`]): the
//! Markdown as the body, the HTML and JSON attached. It runs in the scheduler's pass (so only on
//! the leader, and a virtual clock jumps to it like to a fire) and is queued in the outbox under
//! the once-only key `compliance:<YYYY-MM>`: a restart, a second pass or another daemon that
//! leads later queues nothing more. A month whose mailing day passed while no daemon ran is
//! mailed at the next start within that month; an older one is not mailed (the CLI gives it).

use chrono::{DateTime, Datelike as _, NaiveDate, Utc};

use super::Shared;
use crate::config::ComplianceConfig;
use crate::store::{Change, EmailAttachment, NewEmail, Store, StoreError};

/// Queues last month's report if its day has come; returns when the next one is due.
pub async fn pass<S: Store>(shared: &Shared<S>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let Some(config) = &shared.compliance else {
        return Ok(None);
    };
    let now = shared.clock.now();
    let this_month = first_of_month(now.date_naive());
    let due = mailing_day(this_month, config.day);
    if now < due {
        return Ok(Some(due));
    }
    let last_month = this_month
        .checked_sub_months(chrono::Months::new(1))
        .unwrap_or(this_month);
    let email = email(shared, config, last_month, this_month, now).await?;
    let change = Change {
        emails: vec![email],
        fence: shared.cluster.fence(),
        ..Change::default()
    };
    shared.engine.store.commit(vec![change]).await?;
    shared.mail.notify_one();
    let next_month = this_month
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(this_month);
    Ok(Some(mailing_day(next_month, config.day)))
}

fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// 00:00 UTC on day `day` of the month that starts on `first`.
fn mailing_day(first: NaiveDate, day: u32) -> DateTime<Utc> {
    first
        .with_day(day)
        .unwrap_or(first)
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
}

/// The report of runs started in `[from, to)` (whole months, UTC) as an email.
async fn email<S: Store>(
    shared: &Shared<S>,
    config: &ComplianceConfig,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> Result<NewEmail, StoreError> {
    let at = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
    let report = crate::compliance::report(&*shared.engine.store, at(from), at(to)).await?;
    let month = from.format("%Y-%m").to_string();
    let attachment = |ext: &str, content_type: &str, content: String| EmailAttachment {
        filename: format!("patch-sla-compliance-{month}.{ext}"),
        content_type: content_type.into(),
        content,
    };
    Ok(NewEmail {
        run_id: None,
        to: config.to.clone(),
        subject: format!(
            "[patchday] patch SLA compliance {month}: {} of {} hosts within SLA",
            report["hosts_within_sla"], report["hosts"]
        ),
        body: crate::compliance::markdown(&report),
        html: None,
        created_at: now,
        attachments: vec![
            attachment(
                "html",
                "text/html; charset=utf-8",
                crate::compliance::html(&report),
            ),
            attachment(
                "json",
                "application/json",
                serde_json::to_string_pretty(&report).unwrap_or_default(),
            ),
        ],
        key: Some(format!("compliance:{month}")),
    })
}
