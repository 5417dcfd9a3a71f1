//! `starling keys|teams|customers|usage`: governance through any node's admin API.
//!
//! Every command is one or two HTTP calls ([`crate::admin_client`]); flags mirror the API's
//! fields ([`fields`]); output is a table, or the API's JSON with `--json` ([`output`]).

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use crate::admin_client::AdminClient;

mod fields;
mod output;

pub use fields::{AccountFields, KeyFields};

/// Where and how to reach the admin API, and how to print; accepted after any subcommand.
#[derive(Args)]
pub struct Remote {
    /// The node's HTTP base URL.
    #[arg(
        long,
        env = "STARLING_NODE",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    node: String,
    /// The admin token (default: the STARLING_ADMIN_TOKEN environment variable).
    #[arg(
        long,
        env = "STARLING_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    admin_token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

impl Remote {
    fn client(&self) -> Result<AdminClient> {
        let Some(token) = self.admin_token.as_deref().filter(|t| !t.is_empty()) else {
            bail!("no admin token: set STARLING_ADMIN_TOKEN or pass --admin-token");
        };
        AdminClient::new(&self.node, token)
    }
}

/// `starling keys …`.
#[derive(Args)]
pub struct KeysArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        fields: KeyFields,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List keys, in id order.
    List {
        /// Only keys of this team.
        #[arg(long)]
        team: Option<String>,
        /// Only keys of this customer.
        #[arg(long)]
        customer: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Show one key.
    Show {
        /// The key id (vk_…).
        id: String,
    },
    /// Change some fields of a key; the flags given replace those fields.
    Update {
        /// The key id (vk_…).
        id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: KeyFields,
        #[command(flatten)]
        toggle: Toggle,
        /// Remove a field (repeatable).
        #[arg(long, value_enum)]
        clear: Vec<fields::KeyClear>,
    },
    /// Revoke a key for good (its record stays, and it is refused as revoked).
    Revoke {
        /// The key id (vk_…).
        id: String,
    },
    /// Give a key a new secret, printed once; the old one stops working.
    Rotate {
        /// The key id (vk_…).
        id: String,
    },
}

/// `starling teams …` and `starling customers …`.
#[derive(Args)]
pub struct AccountArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: AccountCommand,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create one.
    Create {
        /// Its id ([A-Za-z0-9_.-], up to 64); generated if not given.
        #[arg(long)]
        id: Option<String>,
        /// A name for people (default: the id).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: AccountFields,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List them, in id order.
    List {
        #[command(flatten)]
        page: Page,
    },
    /// Show one.
    Show {
        /// The id.
        id: String,
    },
    /// Change some fields; the flags given replace those fields.
    Update {
        /// The id.
        id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: AccountFields,
        #[command(flatten)]
        toggle: Toggle,
        /// Remove a field (repeatable).
        #[arg(long, value_enum)]
        clear: Vec<fields::AccountClear>,
    },
    /// Delete one (refused while it has keys that are not revoked).
    Delete {
        /// The id.
        id: String,
    },
}

/// `starling usage …`.
#[derive(Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["key", "team", "customer"])))]
pub struct UsageArgs {
    #[command(flatten)]
    remote: Remote,
    /// A key's usage.
    #[arg(long)]
    key: Option<String>,
    /// A team's usage.
    #[arg(long)]
    team: Option<String>,
    /// A customer's usage.
    #[arg(long)]
    customer: Option<String>,
    /// Only this period: hourly, daily, weekly, monthly, total, or a budget's period (30d).
    #[arg(long)]
    period: Option<String>,
}

/// A page of a listing.
#[derive(Args)]
struct Page {
    /// Page size (1 to 1000).
    #[arg(long)]
    limit: Option<u32>,
    /// Start after this id (the previous page's `next`).
    #[arg(long)]
    after: Option<String>,
}

impl Page {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(limit) = self.limit {
            q.push(("limit", limit.to_string()));
        }
        if let Some(after) = &self.after {
            q.push(("after", after.clone()));
        }
        q
    }
}

/// `--enable` / `--disable` on update.
#[derive(Args)]
#[group(multiple = false)]
struct Toggle {
    /// Enable it.
    #[arg(long)]
    enable: bool,
    /// Disable it (refused until enabled again).
    #[arg(long)]
    disable: bool,
}

impl Toggle {
    fn apply(&self, body: &mut serde_json::Map<String, Value>) {
        if self.enable || self.disable {
            body.insert("enabled".into(), Value::Bool(self.enable));
        }
    }
}

/// `starling budget …`.
#[derive(Subcommand)]
pub enum BudgetCommand {
    /// Hand the budget rights of a node that is gone for good to the node you call, which also
    /// takes over minting the budgets the dead node minted. Run it once, on one node.
    Reclaim {
        /// The id of the dead node.
        #[arg(long = "node")]
        dead_node: String,
        /// The HTTP base URL of a live node to run it on.
        #[arg(long, env = "STARLING_NODE", default_value = "http://127.0.0.1:8080")]
        via: String,
        /// The admin token (default: the STARLING_ADMIN_TOKEN environment variable).
        #[arg(long, env = "STARLING_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A governance command, as `main` dispatches it.
pub enum Command {
    /// `starling budget …`.
    Budget(BudgetCommand),
    /// `starling keys …`.
    Keys(KeysArgs),
    /// `starling teams …`.
    Teams(AccountArgs),
    /// `starling customers …`.
    Customers(AccountArgs),
    /// `starling usage …`.
    Usage(UsageArgs),
}

/// Runs a governance command. An error is printed as `error: <message>` and exits with 1.
pub fn run(command: Command) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        match command {
            Command::Keys(args) => keys(args).await,
            Command::Teams(args) => accounts("teams", "team", args).await,
            Command::Customers(args) => accounts("customers", "customer", args).await,
            Command::Usage(args) => usage(args).await,
            Command::Budget(BudgetCommand::Reclaim {
                dead_node,
                via,
                admin_token,
                json,
            }) => reclaim(&dead_node, &via, &admin_token, json).await,
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

async fn keys(args: KeysArgs) -> Result<()> {
    let json = args.remote.json;
    let api = args.remote.client()?;
    match args.command {
        KeysCommand::Create {
            name,
            fields,
            disabled,
        } => {
            let mut body = fields.to_body()?;
            body.insert("name".into(), name.into());
            if disabled {
                body.insert("enabled".into(), false.into());
            }
            let key = api
                .call(Method::POST, &["keys"], &[], Some(&Value::Object(body)))
                .await?;
            output::secret(&key, json, "created");
        }
        KeysCommand::List {
            team,
            customer,
            page,
        } => {
            let mut query = page.query();
            query.extend(team.map(|t| ("team", t)));
            query.extend(customer.map(|c| ("customer", c)));
            let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let list = api.get(&["keys"], &pairs).await?;
            output::listing(&list, json, output::key_rows);
        }
        KeysCommand::Show { id } => {
            let key = api.get(&["keys", &id], &[]).await?;
            output::object(&key, json);
        }
        KeysCommand::Update {
            id,
            name,
            fields,
            toggle,
            clear,
        } => {
            let mut body = fields.to_body()?;
            if let Some(name) = name {
                body.insert("name".into(), name.into());
            }
            toggle.apply(&mut body);
            fields::clear(&mut body, clear.iter().map(|c| c.field()))?;
            if body.is_empty() {
                bail!("nothing to update: give at least one field to change");
            }
            let key = api
                .call(
                    Method::PATCH,
                    &["keys", &id],
                    &[],
                    Some(&Value::Object(body)),
                )
                .await?;
            output::object(&key, json);
        }
        KeysCommand::Revoke { id } => {
            let key = api
                .call(Method::POST, &["keys", &id, "revoke"], &[], None)
                .await?;
            output::object(&key, json);
        }
        KeysCommand::Rotate { id } => {
            let key = api
                .call(Method::POST, &["keys", &id, "rotate"], &[], None)
                .await?;
            output::secret(&key, json, "rotated");
        }
    }
    Ok(())
}

async fn accounts(path: &str, noun: &str, args: AccountArgs) -> Result<()> {
    let json = args.remote.json;
    let api = args.remote.client()?;
    match args.command {
        AccountCommand::Create {
            id,
            name,
            fields,
            disabled,
        } => {
            let mut body = fields.to_body()?;
            body.extend(id.map(|id| ("id".to_owned(), id.into())));
            body.extend(name.map(|n| ("name".to_owned(), n.into())));
            if disabled {
                body.insert("enabled".into(), false.into());
            }
            let account = api
                .call(Method::POST, &[path], &[], Some(&Value::Object(body)))
                .await?;
            output::object(&account, json);
        }
        AccountCommand::List { page } => {
            let query = page.query();
            let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let list = api.get(&[path], &pairs).await?;
            output::listing(&list, json, output::account_rows);
        }
        AccountCommand::Show { id } => {
            let account = api.get(&[path, &id], &[]).await?;
            output::object(&account, json);
        }
        AccountCommand::Update {
            id,
            name,
            fields,
            toggle,
            clear,
        } => {
            let mut body = fields.to_body()?;
            if let Some(name) = name {
                body.insert("name".into(), name.into());
            }
            toggle.apply(&mut body);
            fields::clear(&mut body, clear.iter().map(|c| c.field()))?;
            if body.is_empty() {
                bail!("nothing to update: give at least one field to change");
            }
            let account = api
                .call(Method::PATCH, &[path, &id], &[], Some(&Value::Object(body)))
                .await?;
            output::object(&account, json);
        }
        AccountCommand::Delete { id } => {
            let answer = api.call(Method::DELETE, &[path, &id], &[], None).await?;
            if json {
                output::json(&answer);
            } else {
                println!("deleted {noun} {id}");
            }
        }
    }
    Ok(())
}

async fn usage(args: UsageArgs) -> Result<()> {
    let api = args.remote.client()?;
    let scope = match (&args.key, &args.team, &args.customer) {
        (Some(id), _, _) => format!("key:{id}"),
        (_, Some(id), _) => format!("team:{id}"),
        (_, _, Some(id)) => format!("customer:{id}"),
        // clap's required group makes this unreachable; say so rather than panic.
        _ => bail!("give --key, --team or --customer"),
    };
    let mut query = vec![("scope", scope.as_str())];
    if let Some(period) = &args.period {
        query.push(("period", period));
    }
    let report = api.get(&["usage"], &query).await?;
    output::usage(&report, args.remote.json);
    Ok(())
}

async fn reclaim(dead_node: &str, via: &str, token: &str, json: bool) -> Result<()> {
    let api = crate::admin_client::AdminClient::new(via, token)?;
    let body = serde_json::json!({ "node": dead_node });
    let answer = api
        .call(
            reqwest::Method::POST,
            &["budget", "reclaim"],
            &[],
            Some(&body),
        )
        .await?;
    if json {
        println!("{answer:#}");
    } else {
        println!(
            "reclaimed ${} from {dead_node} into {} ({} budgets; mint duty moved for {} entries)",
            answer["reclaimed_usd"].as_str().unwrap_or("0"),
            answer["reclaimed_by"].as_str().unwrap_or("?"),
            answer["budgets"].as_array().map_or(0, Vec::len),
            answer["mint_duty_moved"],
        );
        for budget in answer["budgets"].as_array().into_iter().flatten() {
            println!(
                "  {} {}: ${}",
                budget["budget"].as_str().unwrap_or("?"),
                budget["period"].as_str().unwrap_or("?"),
                budget["reclaimed_usd"].as_str().unwrap_or("0"),
            );
        }
    }
    Ok(())
}
