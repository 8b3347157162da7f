//! `page_to_page`: what users feel, JavaScript `publish` in one app's page to the
//! JavaScript handler in another app's page, with 2 and with 20 live apps.
//!
//! Pages cannot time this themselves: WebKit coarsens `performance.now()` to 1 ms (and
//! offers no finer clock to pages that are not cross-origin isolated). So the
//! benchmark's own clock times round trips through pages:
//!
//! - the reported figures: bench → page → bench. The bench publishes, the answering
//!   page's handler publishes an acknowledgement. A page-to-page message is one page's
//!   outbound path (JavaScript `publish` → host → broker), one routing, and another
//!   page's inbound path (broker → host → WebKit → handler); this round trip is exactly
//!   one inbound and one outbound path of a page, plus the two hops between bench and
//!   broker — an upper bound of the page-to-page latency by one broker hop.
//! - `two_pages`: bench → page → page → bench, through a relay page to the answering
//!   one: two page-to-page messages in a row, for context.
//!
//! The other apps are live (loaded, bridge connected, subscribed to topics of their
//! own) but not part of the exchange. Runs the release `weft` on a private Xvfb.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::{Value, json};
use weft_client::Client;
use weft_e2e::{Display, TestEnv};
use weft_proto::Topic;

use super::clock::{histogram, now_ns, summary};
use crate::{connect_when_up, start_shell, write_page_workspace};

/// Runs the scenario with `apps` live apps and `samples` timed round trips.
pub fn page_to_page(apps: usize, samples: u64, warmup: u64) -> anyhow::Result<Value> {
    let display = Display::start();
    let env = TestEnv::new();
    let workspace = write_workspace(&env, apps)?;
    let shell = start_shell(&env, &display, &[workspace.as_os_str()])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(measure(&env, apps, samples, warmup));
    shell.stop();
    result
}

fn write_workspace(env: &TestEnv, apps: usize) -> anyhow::Result<std::path::PathBuf> {
    let list: Vec<Value> = (0..apps)
        .map(|i| {
            let id = match i {
                0 => "relay".to_owned(),
                1 => "answer".to_owned(),
                n => format!("live{n}"),
            };
            json!({"appId": id, "url": "index.html",
                   "bounds": {"x": (i % 8) * 150, "y": (i / 8) * 160, "width": 140, "height": 150}})
        })
        .collect();
    write_page_workspace(env, "p2p", list)
}

async fn measure(env: &TestEnv, apps: usize, samples: u64, warmup: u64) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let client = connect_when_up(env, deadline).await?;
    let mut ready = client.subscribe(&Topic::new("bench.p2p.ready")?).await?;
    let mut acks = client.subscribe(&Topic::new("bench.p2p.ack")?).await?;
    let mut seen = HashSet::new();
    while seen.len() < apps {
        let d = tokio::time::timeout_at(deadline.into(), ready.next())
            .await
            .context("the pages did not all get ready within 120 s")?
            .context("the shell closed the connection")?;
        seen.insert(d.sender.instance_id.clone());
    }

    let one_page = time_round_trips(&client, &mut acks, "bench.p2p.ab", samples, warmup).await?;
    let two_pages = time_round_trips(&client, &mut acks, "bench.p2p.go", samples, warmup).await?;
    let mut v = summary(&one_page);
    v["scenario"] = json!("page_to_page");
    v["backend"] = json!("weft");
    v["apps"] = json!(apps);
    v["measured"] = json!(
        "bench -> page -> bench: a page's inbound and outbound paths plus two bench-broker \
         hops (upper bound of page to page by one broker hop)"
    );
    v["two_pages"] = summary(&two_pages);
    Ok(v)
}

/// Times `samples` round trips that start with a publish on `topic` and end with the
/// answering page's acknowledgement.
async fn time_round_trips(
    client: &Client,
    acks: &mut weft_client::Subscription,
    topic: &str,
    samples: u64,
    warmup: u64,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let topic = Topic::new(topic)?;
    let mut h = histogram();
    for i in 0..samples + warmup {
        let tag = format!("\"{topic}-{i}\"");
        let start = now_ns();
        client.publish(&topic, tag.clone()).await?;
        loop {
            let d = tokio::time::timeout(Duration::from_secs(10), acks.next())
                .await
                .context("no acknowledgement within 10 s")?
                .context("the shell closed the connection")?;
            if d.payload == tag.as_bytes() {
                break;
            }
        }
        if i >= warmup {
            h.record((now_ns() - start).max(1))?;
        }
    }
    Ok(h)
}
