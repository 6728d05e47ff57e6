//! `depot admin dead-letters list|replay|purge`: messages parked after exhausting their
//! attempts, on whichever broker is configured.

use clap::Subcommand;
use depot_adapters::broker::DeadLetterSelector;
use depot_app::AppContext;

#[derive(Subcommand)]
pub enum DeadLetterAction {
    /// List parked messages with the reason.
    List {
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Deliver parked messages again, with a fresh attempt budget.
    Replay(DeadLetterTarget),
    /// Delete parked messages.
    Purge(DeadLetterTarget),
}

/// Which parked messages: one by id, those of a queue, or (explicitly) all.
#[derive(clap::Args)]
pub struct DeadLetterTarget {
    #[arg(long)]
    id: Option<uuid::Uuid>,
    #[arg(long)]
    queue: Option<String>,
    #[arg(long, conflicts_with_all = ["id", "queue"])]
    all: bool,
}

impl DeadLetterTarget {
    /// Refuses an empty target: replaying or purging everything takes `--all`.
    fn selector(&self) -> anyhow::Result<DeadLetterSelector> {
        if self.id.is_none() && self.queue.is_none() && !self.all {
            anyhow::bail!("say which messages: --id ID, --queue NAME or --all");
        }
        Ok(DeadLetterSelector {
            id: self.id,
            queue: self.queue.clone(),
        })
    }
}

pub async fn run(ctx: &AppContext, action: DeadLetterAction) -> anyhow::Result<()> {
    match action {
        DeadLetterAction::List { queue, limit } => {
            let parked = ctx.broker().dead_letters(queue.as_deref(), limit).await?;
            println!(
                "{} dead letters ({} broker)",
                parked.len(),
                ctx.broker().kind()
            );
            for d in parked {
                let kind = d.message.as_ref().map_or("?", |m| m.event_type.as_str());
                let message_id = d
                    .message
                    .as_ref()
                    .map(|m| m.id.to_string())
                    .unwrap_or_default();
                println!(
                    "{}  queue={} type={} message={} attempts={} parked_at={} reason={}",
                    d.id,
                    d.queue,
                    kind,
                    message_id,
                    d.attempts,
                    d.parked_at.to_rfc3339(),
                    d.reason.unwrap_or_default()
                );
            }
        }
        DeadLetterAction::Replay(target) => {
            let n = ctx.broker().replay(&target.selector()?).await?;
            println!("replayed {n}");
        }
        DeadLetterAction::Purge(target) => {
            let n = ctx.broker().purge(&target.selector()?).await?;
            println!("purged {n}");
        }
    }
    Ok(())
}
