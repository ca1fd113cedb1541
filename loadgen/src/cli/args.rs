//! The arguments of `imbench run`, and the run configuration made from them and the scenario.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use imbench_loadgen::run::compare::Leg;
use imbench_loadgen::{Overrides, ProgressMode, RunConfig, Scenario, ServerSpec};
use imbench_server::Secret;
use imbench_transport::{ClientTrust, Transport};

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Scenario file (TOML). Without one, the built-in twin of scenarios/default.toml.
    pub(crate) scenario: Option<PathBuf>,
    /// Transport(s): quic, tcp, tls, ws, wss, a comma list naming each once, or all. With several, the
    /// scenario runs once per transport, same seed and schedule, and a comparison table ends
    /// the output.
    #[arg(long, default_value = "quic", value_parser = parse_transports)]
    pub(crate) transport: TransportList,
    /// Simulated clients.
    #[arg(long, allow_negative_numbers = true, value_parser = at_least_one_client)]
    pub(crate) clients: Option<usize>,
    /// Measured period, e.g. 30s or 2m.
    #[arg(long, allow_hyphen_values = true, value_parser = imbench_loadgen::config::duration::parse)]
    pub(crate) duration: Option<Duration>,
    /// Warm-up before measuring.
    #[arg(long, allow_hyphen_values = true, value_parser = imbench_loadgen::config::duration::parse)]
    pub(crate) warmup: Option<Duration>,
    /// Period over which clients connect.
    #[arg(long, allow_hyphen_values = true, value_parser = imbench_loadgen::config::duration::parse)]
    pub(crate) ramp_up: Option<Duration>,
    /// Longest wait for outstanding deliveries after the last send.
    #[arg(long, allow_hyphen_values = true, value_parser = imbench_loadgen::config::duration::parse)]
    pub(crate) drain: Option<Duration>,
    /// Seed for schedules, sizes and partners.
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) seed: Option<u64>,
    /// Direct messages per second per client.
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) rate: Option<f64>,
    /// Messages per second to each group (the scenario's groups.rate)
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) group_rate: Option<f64>,
    /// Connections started per second at most (generator.connect_rate; default by transport:
    /// 1000 for quic, tls and wss, whose handshakes are TLS's; 5000 for tcp and ws). A shorter
    /// ramp-up is stretched to clients / rate
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) connect_rate: Option<f64>,
    /// How sends wait for their time: precise (timer thread, µs), tokio (1 ms wheel), or auto
    /// (precise up to 2,000 sends/s, tokio above; the default)
    #[arg(long, value_enum)]
    pub(crate) timer: Option<imbench_loadgen::config::scenario::TimerKind>,
    /// What a client does when it connects again ([churn]): resume its own TLS session
    /// (ticket, the default), also send Hello as 0-RTT data over QUIC (0rtt), or do a full
    /// handshake every time (off). A first connection is always a full handshake
    #[arg(long, value_enum, ignore_case = true)]
    pub(crate) resumption: Option<imbench_loadgen::config::scenario::ResumptionName>,
    /// Capacity mode: run the scenario again and again with every rate multiplied by a growing
    /// factor until an SLO fails, then report the highest load that held
    #[arg(long)]
    pub(crate) find_max: bool,
    /// Run shard I of N of the scenario's clients (client k is in shard k % N + 1), against
    /// the --server the other shards use; add the shards' reports with `imbench merge`
    /// (direct chat, churn, groups and files)
    #[arg(long, value_name = "I/N", conflicts_with = "find_max")]
    pub(crate) shard: Option<imbench_loadgen::Shard>,
    /// Run one of N shards, the one $JOB_COMPLETION_INDEX names (0-based, as a Kubernetes
    /// Indexed Job sets it in each pod): index i runs shard i+1/N. For pods and scripts that
    /// start every shard with the same arguments
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = a_count, conflicts_with_all = ["find_max", "shard"])]
    pub(crate) shards: Option<usize>,
    /// Run the scenario N times in a row (into run-1 … run-N of the report folder) and print
    /// the spread of each headline figure; repeat.json holds it. The folder is a baseline for
    /// `imbench compare --fail-on-regression`
    #[arg(long, default_value_t = 1, value_name = "N", allow_negative_numbers = true, value_parser = a_count, conflicts_with_all = ["find_max", "shard", "shards"])]
    pub(crate) repeat: usize,
    /// With --find-max: each step's load over the previous one's
    #[arg(
        long,
        default_value_t = 1.5,
        requires = "find_max",
        allow_negative_numbers = true
    )]
    pub(crate) growth: f64,
    /// With --find-max: most rising steps
    #[arg(
        long,
        default_value_t = 12,
        requires = "find_max",
        allow_negative_numbers = true
    )]
    pub(crate) max_steps: usize,
    /// With --find-max: narrowings between the last load that held and the first that failed,
    /// each at their geometric midpoint (at most 10)
    #[arg(
        long,
        default_value_t = 2,
        requires = "find_max",
        allow_negative_numbers = true
    )]
    pub(crate) refine: usize,
    /// An SLO such as 'direct.p99<500ms' or 'lost==0' (repeatable; added to the scenario's).
    #[arg(long = "slo")]
    pub(crate) slo: Vec<String>,
    /// A system to load instead of the embedded server (repeatable: the scenario runs once per
    /// target, same seed and schedule, and a comparison table ends the output):
    /// nats://[USER:PASS@|TOKEN@]HOST:PORT[/PREFIX][?jetstream=memory|file] (a NATS server;
    /// nats+tls:// for TLS, with ca=FILE among the options),
    /// mqtt://[USER:PASS@]HOST:PORT[/PREFIX][?version=3.1.1|5&qos=0|1|2&session=clean|persistent]
    /// (an MQTT 3.1.1 or 5 broker; mqtts:// for TLS, with ca=FILE among the options),
    /// xmpp://[NAME[:PASSWORD]@]HOST:PORT[/DOMAIN][?muc=SERVICE&register=yes|no&tls=starttls|no&ca=FILE]
    /// (an XMPP server; NAME holds {user}, default imbench-{user}), or
    /// imbench+TRANSPORT://HOST:PORT (a running imbench-server; with --secret-file, and --cert
    /// for quic, tls and wss). NAME=URL names the target in the table and the reports (say
    /// ejabberd=xmpp://…); otherwise it is named by its protocol
    #[arg(long, value_name = "URL", value_parser = TargetParser,
          conflicts_with_all = ["server", "transport"])]
    pub(crate) target: Vec<GivenTarget>,
    /// Address of a running imbench-server, or TRANSPORT=ADDR per transport (repeatable), as
    /// imbench-server prints. Without it, the server runs in-process.
    #[arg(long, requires = "secret_file", value_parser = parse_server)]
    pub(crate) server: Vec<ServerArg>,
    /// PEM certificate to trust for --server (imbench-server writes one); needed for quic, tls
    /// and wss, not for plain tcp and ws.
    #[arg(long)]
    pub(crate) cert: Option<PathBuf>,
    /// File with the server's token secret (imbench-server writes one).
    #[arg(long)]
    pub(crate) secret_file: Option<PathBuf>,
    /// Name to verify the server certificate for (default: the --server host name, or its IP).
    #[arg(long)]
    pub(crate) server_name: Option<String>,
    /// The network between clients and the embedded server, emulated packet by packet
    /// (needs root): lan, wifi, 4g, 3g, lossy, or loopback for none. Replaces the scenario's
    /// [network]. For a server of your own, hold a path with `imbench path` and give
    /// --namespace (`loopback` goes with --server or --target: it takes a scenario's
    /// [network] away).
    // Not refused beside --server or --target by clap: the run's own refusal says what to
    // do instead (`imbench path`).
    #[arg(long, value_name = "PROFILE", value_parser = network_profile)]
    pub(crate) network: Option<String>,
    /// Run the clients inside this network namespace: the client side of a path that
    /// `imbench path` holds, to load a server started on its server side (needs root).
    #[arg(long, value_name = "NAME", conflicts_with = "network")]
    pub(crate) namespace: Option<String>,
    /// Report folder (default: reports/<scenario>-<UTC time>).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Progress display: auto (live line on a terminal), plain, or quiet.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub(crate) progress: ProgressArg,
    /// Address to serve live figures on for Prometheus while the run goes (`GET /metrics`,
    /// plain HTTP), with the embedded server's beside them; e.g. 127.0.0.1:9465, or a bare port
    /// for that port on 127.0.0.1.
    #[arg(long, value_parser = imbench_server::scrape::parse_listen_addr)]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Clone, Debug)]
pub(crate) struct TransportList(pub(crate) Vec<Transport>);

pub(crate) fn parse_transports(s: &str) -> Result<TransportList, String> {
    let mut list = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            // "quic,,tcp" is a typo more often than a choice: say so rather than guess.
            return Err(format!(
                "{s:?} has an empty name between commas; give transports as quic,tcp,…"
            ));
        }
        if part.eq_ignore_ascii_case("all") {
            list.extend(Transport::ALL);
        } else {
            let transport = part.parse::<Transport>()?;
            // Named twice, it would still run once: a person who meant two runs of it is
            // told how to get them ("all" beside a name is not a repetition).
            if s.split(',')
                .filter(|p| p.trim().parse::<Transport>() == Ok(transport))
                .count()
                > 1
            {
                return Err(format!(
                    "{s:?} names {transport} twice: each transport runs once; for several runs of one, use --repeat N"
                ));
            }
            list.push(transport);
        }
    }
    let mut seen = std::collections::HashSet::new();
    list.retain(|t| seen.insert(*t));
    if list.is_empty() {
        return Err("no transport named".into());
    }
    Ok(TransportList(list))
}

/// `--target URL`: a system other than imbench's server.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Nats(imbench_loadgen::driver::nats::NatsTarget),
    Mqtt(imbench_loadgen::driver::mqtt::MqttTarget),
    Xmpp(imbench_loadgen::driver::xmpp::XmppTarget),
    Imbench(Transport, ServerArg),
}

/// A `--target` as given: what it names, its URL as reports show it (no password), and the
/// name it was given, if any.
#[derive(Clone, Debug)]
pub(crate) struct GivenTarget {
    pub(crate) target: Target,
    pub(crate) shown: String,
    pub(crate) name: Option<String>,
}

/// The longest name a target may be given: it heads a column of the comparison table.
const TARGET_NAME_MAX: usize = 32;

/// Splits `NAME=URL` into its name and URL; a URL alone has no name. The name is whatever
/// comes before an `=` ahead of the scheme's `://` (a scheme has no `=`; a URL's options come
/// after it).
fn split_target_name(given: &str) -> Result<(Option<&str>, &str), String> {
    let Some(name) = given
        .find("://")
        .and_then(|end| given[..end].split_once('='))
        .map(|(name, _)| name)
    else {
        return Ok((None, given));
    };
    let url = &given[name.len() + 1..];
    // No `.`: a report's interval log tags each histogram `name.metric`.
    let fits = !name.is_empty()
        && name.len() <= TARGET_NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !fits {
        return Err(format!(
            "{name:?} cannot name a target: a name (NAME=URL) is 1 to {TARGET_NAME_MAX} ASCII letters, digits, '-' or '_'"
        ));
    }
    // Reports take a run named after a transport for one over it (what a reconnect costs,
    // its datagrams).
    if name.parse::<Transport>().is_ok() {
        return Err(format!(
            "{name:?} cannot name a target: it is a transport's name (quic, tcp, tls, ws, wss), which reports would take it for"
        ));
    }
    Ok((Some(name), url))
}

/// Parses `--target`; its errors show the URL without its password (clap's own message would
/// repeat the value as given).
#[derive(Clone)]
struct TargetParser;

impl clap::builder::TypedValueParser for TargetParser {
    type Value = GivenTarget;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<GivenTarget, clap::Error> {
        use imbench_loadgen::driver::url::{hide_secrets, without_secrets};
        let invalid = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '--target <URL>': {why}\n"),
            )
            .with_cmd(cmd)
        };
        let given = value
            .to_str()
            .ok_or_else(|| invalid("the URL is not UTF-8".into()))?;
        let (name, given) = split_target_name(given).map_err(invalid)?;
        let shown = without_secrets(given);
        match parse_target(given) {
            Ok(target) => Ok(GivenTarget {
                target,
                shown,
                name: name.map(str::to_string),
            }),
            Err(e) => Err(invalid(format!("{shown}: {}", hide_secrets(&e, given)))),
        }
    }
}

pub(crate) fn parse_target(given: &str) -> Result<Target, String> {
    // A URL's scheme is not case-sensitive (RFC 3986, 3.1): `MQTT://` is `mqtt://`.
    let (scheme, s) = match given.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            let s = format!("{scheme}://{rest}");
            (scheme, s)
        }
        None => (String::new(), given.to_string()),
    };
    let s = s.as_str();
    match scheme.as_str() {
        "nats" | "nats+tls" => imbench_loadgen::driver::nats::NatsTarget::parse(s)
            .map(Target::Nats)
            .map_err(|e| e.to_string()),
        "mqtt" | "mqtts" => imbench_loadgen::driver::mqtt::MqttTarget::parse(s)
            .map(Target::Mqtt)
            .map_err(|e| e.to_string()),
        "xmpp" => imbench_loadgen::driver::xmpp::XmppTarget::parse(s)
            .map(Target::Xmpp)
            .map_err(|e| e.to_string()),
        _ if scheme.starts_with("imbench+") => {
            let transport = scheme["imbench+".len()..].parse::<Transport>()?;
            let rest = &s[scheme.len() + 3..];
            let given = parse_server(rest.trim_end_matches('/'))?;
            Ok(Target::Imbench(transport, given))
        }
        _ => Err(format!(
            "{}: a target is nats://HOST:PORT (nats+tls:// for TLS), mqtt://HOST:PORT (mqtts:// for TLS), xmpp://HOST:PORT (?tls=starttls for TLS) or imbench+TRANSPORT://HOST:PORT (TRANSPORT: quic, tcp, tls, ws, wss)",
            match (scheme.as_str(), misspelt_scheme(given)) {
                ("", Some(meant)) => format!("no \"://\" after the scheme (did you mean {meant}://?)"),
                ("", None) => "no scheme (SCHEME://HOST:PORT)".to_string(),
                _ => format!("no target has the scheme {scheme:?}"),
            }
        )),
    }
}

/// The scheme a URL without `://` begins with, when it begins with one a target has and
/// something like a mangled `://` after it (`nats:/HOST`, `mqtt//HOST`, `xmpp:HOST`).
fn misspelt_scheme(given: &str) -> Option<&'static str> {
    const SCHEMES: [&str; 5] = ["nats+tls", "nats", "mqtts", "mqtt", "xmpp"];
    let lower = given.to_ascii_lowercase();
    SCHEMES.into_iter().find(|scheme| {
        lower
            .strip_prefix(scheme)
            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('/'))
    })
}

/// `--server ADDR` or `--server TRANSPORT=ADDR`.
#[derive(Clone, Debug)]
pub(crate) struct ServerArg {
    pub(crate) transport: Option<Transport>,
    pub(crate) addr: SocketAddr,
    /// The host name it was given by, if not by an IP address.
    pub(crate) host: Option<String>,
}

/// `HOST:PORT` with an IP address or a host name (a Kubernetes Service's, say), resolved once,
/// now: a run loads one server address from start to end.
pub(crate) fn parse_server(s: &str) -> Result<ServerArg, String> {
    use std::net::ToSocketAddrs;
    if let Some((scheme, rest)) = s.trim().split_once("://") {
        // The address alone: a URL may end in a path or a query.
        let addr = rest.split(['/', '?']).next().unwrap_or(rest);
        let own = scheme.to_ascii_lowercase();
        let own = own.strip_prefix("imbench+").unwrap_or(&own);
        return Err(match own.parse::<Transport>() {
            Ok(t) => format!(
                "--server takes TRANSPORT=HOST:PORT, not a URL: write {t}={addr} (or --target imbench+{t}://{addr})"
            ),
            Err(_) => format!(
                "--server is imbench's own server's address, not a URL: another system is \
                 loaded with --target {scheme}://{rest}"
            ),
        });
    }
    let (transport, addr) = match s.split_once('=') {
        Some((t, a)) => (Some(t.parse::<Transport>()?), a.trim()),
        None => (None, s.trim()),
    };
    if let Ok(ip) = addr.parse::<SocketAddr>() {
        return Ok(ServerArg {
            transport,
            addr: ip,
            host: None,
        });
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| {
        format!("{addr:?} is not an address such as 127.0.0.1:4433 or imbench-server:4433")
    })?;
    port.parse::<u16>()
        .map_err(|_| format!("{addr:?}: {port:?} is not a port"))?;
    let found = addr
        .to_socket_addrs()
        .map_err(|e| format!("{host:?} does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{host:?} resolves to no address"))?;
    Ok(ServerArg {
        transport,
        addr: found,
        host: Some(host.to_string()),
    })
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProgressArg {
    Auto,
    Plain,
    Quiet,
}

/// What a run loads, one leg per transport or target, in the order given.
fn legs(args: &RunArgs) -> anyhow::Result<Vec<Leg>> {
    if !args.target.is_empty() {
        let imbench: Vec<Transport> = args
            .target
            .iter()
            .filter_map(|t| match &t.target {
                Target::Imbench(transport, _) => Some(*transport),
                _ => None,
            })
            .collect();
        if imbench.is_empty()
            && (args.cert.is_some() || args.secret_file.is_some() || args.server_name.is_some())
        {
            anyhow::bail!(
                "--cert, --secret-file and --server-name go with --server or an imbench+… target"
            );
        }
        // Read at the first imbench+… target, once for all of them.
        let mut credentials = None;
        let mut legs = Vec::new();
        for given in &args.target {
            let target_url = Some(given.shown.clone());
            legs.push(match &given.target {
                // Another system's clients speak its own protocol over TCP.
                Target::Nats(t) => Leg {
                    transport: Transport::Tcp,
                    server: ServerSpec::Nats(t.clone()),
                    label: None,
                    target_url: target_url.clone(),
                },
                Target::Mqtt(t) => Leg {
                    transport: Transport::Tcp,
                    server: ServerSpec::Mqtt(t.clone()),
                    label: None,
                    target_url: target_url.clone(),
                },
                Target::Xmpp(t) => Leg {
                    transport: Transport::Tcp,
                    server: ServerSpec::Xmpp(t.clone()),
                    label: None,
                    target_url: target_url.clone(),
                },
                Target::Imbench(transport, given) => {
                    let read = match credentials {
                        Some(ref c) => c,
                        None => credentials.insert(Credentials::read(args, &imbench)?),
                    };
                    Leg {
                        transport: *transport,
                        server: read.remote(args, given),
                        label: None,
                        target_url: target_url.clone(),
                    }
                }
            });
        }
        for (leg, given) in legs.iter_mut().zip(&args.target) {
            leg.label.clone_from(&given.name);
        }
        name_apart(&mut legs)?;
        return Ok(legs);
    }
    let transports = &args.transport.0;
    if args.server.is_empty() && args.server_name.is_some() {
        // The embedded server's certificate is made for the name the clients dial.
        anyhow::bail!("--server-name goes with --server: the embedded server needs none");
    }
    match (args.server.is_empty(), &args.cert, &args.secret_file) {
        (true, None, None) => Ok(transports
            .iter()
            .map(|&transport| Leg {
                transport,
                server: ServerSpec::Embedded,
                label: None,
                target_url: None,
            })
            .collect()),
        (false, _, Some(_)) => {
            // The same transport twice: one of the addresses would be ignored.
            for (i, s) in args.server.iter().enumerate() {
                if args.server[..i].iter().any(|e| e.transport == s.transport) {
                    let which = s
                        .transport
                        .map_or("a plain --server HOST:PORT".to_string(), |t| {
                            format!("--server {t}=…")
                        });
                    anyhow::bail!("{which} is given twice: give one address for each transport");
                }
            }
            let by_plain: Vec<String> = transports
                .iter()
                .filter(|&&t| !args.server.iter().any(|s| s.transport == Some(t)))
                .map(Transport::to_string)
                .collect();
            let plain_given = args.server.iter().any(|s| s.transport.is_none());
            if by_plain.len() > 1 && !plain_given {
                anyhow::bail!(
                    "no --server address for {}: give --server TRANSPORT=HOST:PORT for each",
                    by_plain.join(", ")
                );
            }
            if by_plain.len() > 1 {
                // One address cannot be the port of several transports' listeners.
                anyhow::bail!(
                    "a plain --server HOST:PORT serves one transport, and {} would all use it: give --server TRANSPORT=HOST:PORT for each",
                    by_plain.join(", ")
                );
            }
            // A transport with no address is said before any credential it would need: most
            // likely the addresses are of other transports and --transport was left out.
            if let Some(t) = transports
                .iter()
                .find(|&&t| server_for(&args.server, t).is_none())
            {
                let named: Vec<String> = args
                    .server
                    .iter()
                    .filter_map(|s| s.transport.map(|t| t.to_string()))
                    .collect();
                let (given, them) = if named.len() == 1 {
                    ("the --server given names", "it")
                } else {
                    ("the --server addresses given name", "them")
                };
                anyhow::bail!(
                    "no --server address for {t}, which this run uses (the scenario's transport, or --transport's): {given} {}; run {them} with --transport {}, or give --server {t}=HOST:PORT",
                    named.join(", "),
                    named.join(",")
                );
            }
            let credentials = Credentials::read(args, transports)?;
            transports
                .iter()
                .map(|&t| {
                    let given = server_for(&args.server, t).ok_or_else(|| {
                        anyhow::anyhow!("no --server address for {t}: give --server {t}=HOST:PORT")
                    })?;
                    Ok(Leg {
                        transport: t,
                        server: credentials.remote(args, given),
                        label: None,
                        target_url: None,
                    })
                })
                .collect()
        }
        _ => anyhow::bail!("--cert and --secret-file go with --server"),
    }
}

/// Names legs that reports would otherwise name alike (two NATS servers, say): the second
/// `nats` becomes `nats-2`, and so on, around the names given (NAME=URL), which must differ
/// from each other and stay as given.
fn name_apart(legs: &mut [Leg]) -> anyhow::Result<()> {
    // JetStream streams are named by the prefix with its dots as `_`: two prefixes that differ
    // only there would take one stream on one server, the second refused as another's.
    // One server however its loopback address is spelled (`localhost`, `127.0.0.1`).
    let server = |host_port: &str| {
        let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, ""));
        let host = host.trim_matches(['[', ']']);
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        format!("{}:{port}", if loopback { "loopback" } else { host })
    };
    let streams: Vec<(&str, String, &str, String)> = legs
        .iter()
        .filter_map(|l| match &l.server {
            ServerSpec::Nats(t) if t.jetstream.is_some() => Some((
                t.host_port.as_str(),
                server(&t.host_port),
                t.prefix.as_str(),
                t.stream_name(),
            )),
            _ => None,
        })
        .collect();
    for (i, (at, same, prefix, stream)) in streams.iter().enumerate() {
        if let Some((_, _, other, _)) = streams[..i]
            .iter()
            .find(|(_, s, p, st)| s == same && p != prefix && st == stream)
        {
            anyhow::bail!(
                "the prefixes {other:?} and {prefix:?} both name the JetStream stream {stream:?} on {at} (a stream's name is its prefix with `_` for `.`): give prefixes apart"
            );
        }
    }
    // A name in another protocol's family (`nats=mqtt://…`) would pass for that protocol's
    // run, in this report and in a regression gate that matches runs by name.
    for leg in legs.iter() {
        let Some(name) = &leg.label else { continue };
        let own = imbench_loadgen::run::run_name(None, &leg.server, leg.transport);
        if let Some(family) = protocol_family(name).filter(|f| Some(*f) != protocol_family(&own)) {
            anyhow::bail!(
                "{name:?} cannot name a {own} target: names beginning {family:?} are those of {family} targets, which reports would take it for; give another"
            );
        }
    }
    let given: Vec<&String> = legs.iter().filter_map(|l| l.label.as_ref()).collect();
    for (i, name) in given.iter().enumerate() {
        if given[..i].contains(name) {
            anyhow::bail!("two targets are named {name:?}: give each its own name (NAME=URL)");
        }
    }
    let given: std::collections::HashSet<String> = given.into_iter().cloned().collect();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for leg in legs.iter_mut().filter(|l| l.label.is_none()) {
        let name = imbench_loadgen::run::run_name(None, &leg.server, leg.transport);
        let n = seen.entry(name.clone()).or_insert(0);
        // The next of `nats`, `nats-2`, `nats-3` … that no target was given as its name.
        let label = loop {
            *n += 1;
            let label = if *n == 1 {
                name.clone()
            } else {
                format!("{name}-{n}")
            };
            if !given.contains(&label) {
                break label;
            }
        };
        if *n > 1 {
            leg.label = Some(label);
        }
    }
    Ok(())
}

/// The protocol whose runs a name is the automatic name of (`nats`, `nats-tls`, `nats-2`,
/// `mqtt5-qos1` …), if any.
fn protocol_family(name: &str) -> Option<&'static str> {
    // MQTT 5 first: its runs are `mqtt5…`, and a 3.1.1 target's name must not pass for one.
    ["nats", "mqtt5", "mqtt", "xmpp", "memory"]
        .into_iter()
        .find(|p| {
            name.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '+']))
        })
}

/// A `--network` profile by name, refused as the flag's (not the scenario's) when unknown.
pub(crate) fn network_profile(name: &str) -> Result<String, String> {
    use imbench_loadgen::config::network::{profile_names, NetworkSection};
    NetworkSection::named(name)
        .path()
        .map(|_| name.to_string())
        .map_err(|_| {
            format!(
                "no network profile is called {name:?}; one of: {}",
                profile_names()
            )
        })
}

/// `imbench path --network`'s profile: one that is a path to hold (loopback is none).
pub(crate) fn held_path_profile(name: &str) -> Result<String, String> {
    use imbench_loadgen::config::network::{path_profile_names, NetworkSection};
    match NetworkSection::named(name).path() {
        Ok(Some(_)) => Ok(name.to_string()),
        Ok(None) => Err(format!(
            "{name} is no path to hold; one of: {}",
            path_profile_names()
        )),
        Err(_) => Err(format!(
            "no network profile is called {name:?}; one of: {}",
            path_profile_names()
        )),
    }
}

/// Says so when a secret file may be read by others: imbench-server refuses such a file (anyone
/// who reads it can log in as anyone); the generator only needs to read it, so it goes on.
fn warn_if_shared(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // A device or a pipe (`/dev/null`) holds no secret of its own: chmod is no advice.
        if let Some(meta) = std::fs::metadata(path).ok().filter(|m| m.is_file()) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                imbench_loadgen::errln!(
                    "imbench: note: {} may be read by others (mode {mode:o}); anyone who reads it can log in as any user, and imbench-server refuses such a file: chmod 600 {}",
                    path.display(),
                    path.display()
                );
            }
        }
    }
}

/// What every leg on imbench's own server is reached with: the certificate to trust and the
/// token secret, read once for all of them.
struct Credentials {
    trust: ClientTrust,
    secret: Secret,
}

impl Credentials {
    /// Reads --cert and --secret-file; `transports` are all those the run uses on imbench's
    /// server, to say early which of them needs --cert.
    fn read(args: &RunArgs, transports: &[Transport]) -> anyhow::Result<Credentials> {
        use anyhow::Context;
        let Some(secret) = &args.secret_file else {
            anyhow::bail!(
                "imbench's server needs its token secret: give --secret-file (imbench-server writes it to imbench-server-files/secret)"
            );
        };
        let trust = match &args.cert {
            Some(cert) => ClientTrust::from_pem_file(cert).context("reading --cert")?,
            None => {
                let tls = [Transport::Quic, Transport::Tls, Transport::Wss];
                if let Some(t) = transports.iter().find(|t| tls.contains(t)) {
                    anyhow::bail!(
                        "{t} verifies the server's certificate: give --cert (imbench-server writes it to imbench-server-files/cert.pem)"
                    );
                }
                // Plain TCP and WebSocket verify no certificate.
                ClientTrust { roots: Vec::new() }
            }
        };
        warn_if_shared(secret);
        let secret = Secret::from_file(secret).context("reading --secret-file")?;
        Ok(Credentials { trust, secret })
    }

    /// A running imbench-server at `given`.
    fn remote(&self, args: &RunArgs, given: &ServerArg) -> ServerSpec {
        ServerSpec::Remote {
            addr: given.addr,
            trust: self.trust.clone(),
            secret: Box::new(self.secret.clone()),
            // A server given by name is verified for that name (as imbench-server's
            // `--cert-name` made its certificate).
            server_name: args.server_name.clone().or_else(|| given.host.clone()),
        }
    }
}

/// The address of `transport` among the `--server` flags: a tagged one, or an untagged one
/// when only one transport runs.
pub(crate) fn server_for(servers: &[ServerArg], transport: Transport) -> Option<&ServerArg> {
    servers
        .iter()
        .find(|s| s.transport == Some(transport))
        .or_else(|| servers.iter().find(|s| s.transport.is_none()))
}

/// The environment variable a Kubernetes Indexed Job sets to each pod's index, from 0.
pub(crate) const SHARD_INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

/// Shard `index + 1` of `count`, `index` being [`SHARD_INDEX_VAR`]'s value.
fn shard_from_env(count: usize, index: Option<&str>) -> anyhow::Result<imbench_loadgen::Shard> {
    if count == 0 {
        anyhow::bail!("--shards must be at least 1");
    }
    let Some(index) = index else {
        anyhow::bail!(
            "--shards {count} takes the shard from {SHARD_INDEX_VAR} (0 to {}, as a Kubernetes Indexed Job sets it), which is not set; or give --shard I/N",
            count.saturating_sub(1)
        );
    };
    let i: usize = index.trim().parse().map_err(|_| {
        anyhow::anyhow!("{SHARD_INDEX_VAR}={index:?} is not a shard index (0, 1, 2 …)")
    })?;
    format!("{}/{count}", i.saturating_add(1))
        .parse()
        .map_err(|_| anyhow::anyhow!("{SHARD_INDEX_VAR}={i} is not below --shards {count}"))
}

/// `--clients`: a whole number, at least 1.
/// A count such as --repeat's or --shards's: a whole number (0 is judged where it is used, with
/// what it would mean), said so for a negative or fractional one rather than as a bad digit.
fn a_count(text: &str) -> Result<usize, String> {
    text.trim()
        .parse::<usize>()
        .map_err(|_| format!("{text:?} is not a whole number of 1 or more"))
}

fn at_least_one_client(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("a run needs at least 1 client".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{text:?} is not a number of clients: {e}")),
    }
}

/// Turns the flags into one validated configuration, and what it loads: the first leg's
/// configuration, and every leg (one per transport or target).
pub(crate) fn configure(args: &RunArgs) -> anyhow::Result<(RunConfig, Vec<Leg>)> {
    let mut scenario = match &args.scenario {
        Some(path) => Scenario::from_file(path)?,
        None => Scenario::builtin_default(),
    };
    scenario.apply(&Overrides {
        clients: args.clients,
        duration: args.duration,
        warmup: args.warmup,
        ramp_up: args.ramp_up,
        drain: args.drain,
        seed: args.seed,
        rate: args.rate,
        group_rate: args.group_rate,
        slo: args.slo.clone(),
        connect_rate: args.connect_rate,
        timer: args.timer,
        resumption: args.resumption,
        network: args.network.clone(),
    })?;
    // Before anything is made or reached: a misspelt or misused figure is a usage error, named
    // with the file it is in when it is not one of the --slo flags.
    if let Err(e) = imbench_loadgen::run::check_slo_names(&scenario) {
        let in_file = match (&e, &args.scenario) {
            (imbench_loadgen::run::RunError::Slo { expr, .. }, Some(path))
                if !args
                    .slo
                    .iter()
                    .any(|flag| imbench_loadgen::config::slo::Slo::same_expr(flag, expr)) =>
            {
                Some(path)
            }
            _ => None,
        };
        return Err(match in_file {
            Some(path) => imbench_loadgen::config::scenario::ScenarioError::in_slo_table(
                &path.display().to_string(),
                e,
            )
            .into(),
            None => e.into(),
        });
    }
    // The targets and transports first: a note before a refusal is read as part of it.
    let legs = legs(args)?;
    if let (false, Some(path)) = (scenario.default_slos.is_empty(), &args.scenario) {
        imbench_loadgen::errln!(
            "imbench: note: {} has no [slo] table, so the run is judged on its accounting: {}; an --slo on one of those figures takes its place, an empty [slo] table judges nothing (under churn, a target that by its protocol keeps nothing for a client away, core NATS or an MQTT broker with clean sessions or at QoS 0, is not judged on lost, and says so; an XMPP server without offline storage is judged on it)",
            path.display(),
            scenario.default_slos.join(", ")
        );
    }
    for flag in unused_flags(args, &scenario, &legs) {
        imbench_loadgen::errln!("imbench: note: {flag}");
    }
    let out_dir = Some(args.out.clone().unwrap_or_else(|| {
        let stamp = folder_stamp(std::time::SystemTime::now());
        PathBuf::from("reports").join(format!("{}-{stamp}", folder_name(&scenario.name)))
    }));
    let progress = match args.progress {
        ProgressArg::Auto => ProgressMode::Auto,
        ProgressArg::Plain => ProgressMode::Plain,
        ProgressArg::Quiet => ProgressMode::Quiet,
    };
    let config = RunConfig {
        out_dir,
        progress,
        shard: match args.shards {
            Some(count) => Some(shard_from_env(
                count,
                std::env::var(SHARD_INDEX_VAR).ok().as_deref(),
            )?),
            None => args.shard,
        },
        label: legs[0].label.clone(),
        target_url: legs[0].target_url.clone(),
        ..RunConfig::new(scenario, legs[0].server.clone(), legs[0].transport)
    };
    Ok((config, legs))
}

/// Flags given that would change nothing in this run, each with why: a user who gave one
/// expected it to (a script giving the same flags to every scenario is told, not stopped).
fn unused_flags(args: &RunArgs, scenario: &Scenario, legs: &[Leg]) -> Vec<String> {
    let mut unused = Vec::new();
    let name = &scenario.name;
    if args.group_rate.is_some() && scenario.groups.count == 0 {
        unused.push(format!(
            "--group-rate changes nothing: scenario {name:?} has no groups ([groups] count)"
        ));
    }
    let ours = |l: &Leg| matches!(l.server, ServerSpec::Embedded | ServerSpec::Remote { .. });
    let with_tls = |l: &Leg| ours(l) && l.transport.uses_tls();
    if args.resumption.is_some() {
        if !scenario.churn.enabled() {
            unused.push(format!(
                "--resumption changes nothing: it is how a client connects again, and scenario {name:?} has no [churn]"
            ));
        } else if !legs.iter().any(with_tls) {
            unused.push(
                "--resumption changes nothing: it resumes imbench's own clients' TLS sessions (quic, tls, wss), and this run has none".into(),
            );
        }
    }
    if args.cert.is_some() && !legs.iter().any(with_tls) {
        unused.push("--cert is not used: tcp and ws verify no certificate".into());
    }
    // A server given for a transport this run does not use: a typo in --transport, perhaps.
    let running: Vec<Transport> = legs.iter().map(|l| l.transport).collect();
    for given in &args.server {
        if let Some(t) = given.transport.filter(|t| !running.contains(t)) {
            unused.push(format!(
                "--server {t}={} is not used: this run goes over {}",
                given.addr,
                running
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    unused
}

/// A scenario's name as one folder name: anything but letters, digits, `.`, `_` and `-`
/// becomes `-`, so a name like `../x` cannot put the report outside `reports/`.
fn folder_name(name: &str) -> String {
    // A file name holds at most 255 bytes; the time stamp and a repeat's or step's suffix
    // need room after the name.
    const MOST: usize = 100;
    let safe: String = name
        .chars()
        .take(MOST)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    match safe.trim_matches('.') {
        "" => "scenario".to_string(),
        _ => safe,
    }
}

/// The default report folder's time stamp (`20261204T150102Z`). A clock before 1970 or past
/// the year 9999, which RFC 3339 cannot write (humantime panics), gives seconds instead.
fn folder_stamp(now: std::time::SystemTime) -> String {
    /// 10000-01-01T00:00:00Z in seconds since the epoch.
    const YEAR_10000: u64 = 253_402_300_800;
    match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) if d.as_secs() < YEAR_10000 => humantime::format_rfc3339_seconds(now)
            .to_string()
            .replace(['-', ':'], ""),
        Ok(d) => format!("unix{}", d.as_secs()),
        Err(e) => format!("before-unix{}", e.duration().as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::{folder_name, parse_server, parse_target, parse_transports, shard_from_env};
    use imbench_transport::Transport;

    #[test]
    fn two_prefixes_of_one_jetstream_stream_are_refused() {
        let args = run_args(&[
            "--target",
            "nats://127.0.0.1:4222/x.y?jetstream=file",
            "--target",
            "nats://localhost:4222/x_y?jetstream=file",
        ])
        .expect("the flags parse");
        let e = super::configure(&args).err().expect("refused").to_string();
        assert!(e.contains("both name the JetStream stream \"x_y\""), "{e}");
        // On two servers, or without JetStream, they are apart.
        for other in [
            "nats://127.0.0.1:4223/x_y?jetstream=file",
            "nats://127.0.0.1:4222/x_y",
        ] {
            let args = run_args(&[
                "--target",
                "nats://127.0.0.1:4222/x.y?jetstream=file",
                "--target",
                other,
            ])
            .expect("the flags parse");
            assert!(super::configure(&args).is_ok(), "{other}");
        }
    }

    #[test]
    fn a_server_name_for_the_embedded_server_is_refused() {
        let args = run_args(&["--server-name", "foo"]).expect("the flags parse");
        let e = super::configure(&args).err().expect("refused").to_string();
        assert!(e.contains("--server-name goes with --server"), "{e}");
    }

    #[test]
    fn a_path_to_hold_is_named_among_the_paths_only() {
        assert_eq!(super::held_path_profile("4G").as_deref(), Ok("4G"));
        let loopback = super::held_path_profile("loopback").unwrap_err();
        assert!(
            loopback.starts_with("loopback is no path to hold; one of: lan"),
            "{loopback}"
        );
        let typo = super::held_path_profile("nope").unwrap_err();
        assert!(
            typo.contains("\"nope\"") && typo.contains("lan, wifi"),
            "{typo}"
        );
        assert!(!typo.contains("loopback"), "{typo}");
        // `imbench run` takes loopback: no path at all.
        assert!(super::network_profile("loopback").is_ok());
    }

    /// `imbench run` with these flags, its scenario taken from scenarios/.
    fn run_args(flags: &[&str]) -> Result<super::RunArgs, clap::Error> {
        use clap::Parser;
        #[derive(Parser)]
        struct Run {
            #[command(flatten)]
            args: super::RunArgs,
        }
        let run = Run::try_parse_from(std::iter::once("run").chain(flags.iter().copied()))?;
        let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/");
        let mut args = run.args;
        args.scenario = args
            .scenario
            .map(|s| std::path::Path::new(scenarios).join(s));
        Ok(args)
    }

    /// The flags said to be unused by `imbench run` with these flags.
    fn unused(flags: &[&str]) -> Vec<String> {
        let args = run_args(flags).expect("the flags parse");
        let (config, legs) = super::configure(&args).expect("a configuration");
        super::unused_flags(&args, &config.scenario, &legs)
    }

    /// A negative or fractional count is said to be one, not taken for a flag (clap's hint
    /// to write `-- -1` would make it the scenario's name).
    #[test]
    fn a_count_that_is_not_a_whole_number_is_said_to_be_one() {
        for flags in [["--repeat", "-1"], ["--shards", "-2"], ["--repeat", "1.5"]] {
            let Err(e) = run_args(&flags) else {
                panic!("{flags:?} parsed");
            };
            let e = e.to_string();
            assert!(e.contains("is not a whole number of 1 or more"), "{e}");
            assert!(!e.contains("-- -"), "{e}");
        }
        assert_eq!(run_args(&["--repeat", "3"]).expect("parses").repeat, 3);
    }

    #[test]
    fn a_server_only_of_transports_the_run_does_not_use_says_to_run_them() {
        let flags = [
            "smoke.toml",
            "--server",
            "tcp=127.0.0.1:9",
            "--secret-file",
            "/nonexistent/secret",
        ];
        let args = run_args(&flags).expect("the flags parse");
        let Err(e) = super::legs(&args) else {
            panic!("no address for quic");
        };
        let e = e.to_string();
        assert!(
            e.contains("no --server address for quic")
                && e.contains("run it with --transport tcp")
                && !e.contains("--cert"),
            "{e}"
        );
    }

    #[test]
    fn a_target_is_named_as_given_or_by_its_protocol_and_no_two_alike() {
        let names = |targets: &[&str]| -> Result<Vec<Option<String>>, String> {
            let mut flags = vec!["smoke.toml"];
            for t in targets {
                flags.extend(["--target", t]);
            }
            let args = run_args(&flags).map_err(|e| e.to_string())?;
            let legs = super::legs(&args).map_err(|e| e.to_string())?;
            Ok(legs.into_iter().map(|l| l.label).collect())
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            names(&["nats://127.0.0.1:9", "nats://127.0.0.1:10"]),
            Ok(vec![None, some("nats-2")])
        );
        assert_eq!(
            names(&[
                "prosody=xmpp://127.0.0.1:9",
                "ejabberd=xmpp://127.0.0.1:10/localhost?register=no"
            ]),
            Ok(vec![some("prosody"), some("ejabberd")])
        );
        // A given name is kept, and the protocol's names go around it.
        assert_eq!(
            names(&[
                "nats=nats://127.0.0.1:9",
                "nats://127.0.0.1:10",
                "nats-2=nats://127.0.0.1:11",
                "nats://127.0.0.1:12"
            ]),
            Ok(vec![
                some("nats"),
                some("nats-3"),
                some("nats-2"),
                some("nats-4")
            ])
        );
        // Another protocol's name would pass for a run of that protocol.
        for (bad, own) in [
            ("nats=mqtt://127.0.0.1:9", "mqtt"),
            ("mqtt-2=nats://127.0.0.1:9", "nats"),
            ("mqtt5=mqtt://127.0.0.1:9", "mqtt"),
            ("mqtt=mqtt://127.0.0.1:9?version=5", "mqtt5"),
        ] {
            let e = names(&[bad, "nats://127.0.0.1:10"]).unwrap_err();
            assert!(e.contains(&format!("cannot name a {own}")), "{bad}: {e}");
        }
        assert!(names(&["natsy=mqtt://127.0.0.1:9"]).is_ok());
        let e = names(&["a=nats://127.0.0.1:9", "a=mqtt://127.0.0.1:10"]).unwrap_err();
        assert!(e.contains("two targets are named \"a\""), "{e}");
        for bad in [
            "=nats://127.0.0.1:9",
            "a b=nats://127.0.0.1:9",
            "a.b=nats://127.0.0.1:9",
            "QUIC=imbench+tcp://127.0.0.1:9",
            "ö=nats://127.0.0.1:9",
        ] {
            let e = names(&[bad]).unwrap_err();
            assert!(e.contains("cannot name a target"), "{bad}: {e}");
        }
        // An `=` among a URL's options is not a name.
        assert_eq!(names(&["xmpp://127.0.0.1:9?register=no"]), Ok(vec![None]));
    }

    #[test]
    fn a_flag_that_changes_nothing_is_named_with_why() {
        assert_eq!(unused(&["smoke.toml", "--group-rate", "5"]).len(), 1);
        assert!(unused(&["ci-groups.toml", "--group-rate", "5"]).is_empty());
        let said = unused(&["smoke.toml", "--resumption", "off"]);
        assert!(said[0].contains("has no [churn]"), "{said:?}");
        let said = unused(&["churn.toml", "--transport", "tcp,ws", "--resumption", "off"]);
        assert!(said[0].contains("this run has none"), "{said:?}");
        assert!(unused(&[
            "churn.toml",
            "--transport",
            "tcp,quic",
            "--resumption",
            "off"
        ])
        .is_empty());
        let dir = std::env::temp_dir().join(format!("imbench-unused-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder");
        let (cert, secret) = (dir.join("cert.pem"), dir.join("secret"));
        let identity = imbench_transport::ServerIdentity::self_signed(&["localhost"]);
        let pem = identity.expect("a certificate").cert_chain_pem;
        std::fs::write(&cert, pem).expect("a certificate file");
        std::fs::write(&secret, "ab".repeat(32)).expect("a secret file");
        let remote = |transport: &str| {
            unused(&[
                "smoke.toml",
                "--target",
                &format!("imbench+{transport}://127.0.0.1:9"),
                "--cert",
                &cert.display().to_string(),
                "--secret-file",
                &secret.display().to_string(),
            ])
        };
        let said = remote("tcp");
        assert!(said[0].contains("--cert is not used"), "{said:?}");
        assert!(remote("tls").is_empty());
        // A server for a transport the run does not go over.
        let said = unused(&[
            "smoke.toml",
            "--transport",
            "quic",
            "--server",
            "quic=127.0.0.1:9",
            "--server",
            "tcp=127.0.0.1:10",
            "--cert",
            &cert.display().to_string(),
            "--secret-file",
            &secret.display().to_string(),
        ]);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("--server tcp=127.0.0.1:10 is not used: this run goes over quic"),
            "{said:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn transports_are_named_with_commas_and_none_is_left_empty() {
        let list = parse_transports("quic, tcp,all").expect("a list");
        assert_eq!(list.0[..2], [Transport::Quic, Transport::Tcp]);
        assert_eq!(list.0.len(), Transport::ALL.len(), "each once");
        for typo in ["quic,,tcp", "quic,", ",", ""] {
            let e = parse_transports(typo).expect_err(typo);
            assert!(e.contains("empty name"), "{typo}: {e}");
        }
        let e = parse_transports("quic,tcp, QUIC").expect_err("a repetition");
        assert!(e.contains("twice") && e.contains("--repeat"), "{e}");
    }

    #[test]
    fn a_server_is_an_address_or_a_host_name_to_verify_its_certificate_for() {
        let ip = parse_server("quic=127.0.0.1:4433").unwrap();
        assert_eq!((ip.addr.port(), ip.host), (4433, None));
        let named = parse_server("localhost:4434").unwrap();
        assert!(named.addr.ip().is_loopback(), "{:?}", named.addr);
        assert_eq!(named.host.as_deref(), Some("localhost"));
        for (bad, why) in [
            ("localhost", "not an address"),
            ("localhost:quic", "not a port"),
            ("no-such-host.invalid:4433", "does not resolve"),
            ("tcp://127.0.0.1:4434/", "write tcp=127.0.0.1:4434 (or"),
            (
                "imbench+quic://h:4433",
                "write quic=h:4433 (or --target imbench+quic://h:4433)",
            ),
            ("nats://127.0.0.1:4222", "--target nats://127.0.0.1:4222"),
        ] {
            let e = parse_server(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        match parse_target("imbench+tcp://localhost:4434").unwrap() {
            super::Target::Imbench(_, given) => {
                assert_eq!(given.host.as_deref(), Some("localhost"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_targets_scheme_may_be_written_in_capitals() {
        assert!(matches!(
            parse_target("MQTT://127.0.0.1:1883"),
            Ok(super::Target::Mqtt(_))
        ));
        assert!(matches!(
            parse_target("Nats+TLS://127.0.0.1:4222"),
            Ok(super::Target::Nats(_))
        ));
        assert!(matches!(
            parse_target("IMBENCH+TCP://127.0.0.1:4434"),
            Ok(super::Target::Imbench(Transport::Tcp, _))
        ));
        let e = parse_target("HTTP://127.0.0.1:80").unwrap_err();
        assert!(e.contains("a target is nats://"), "{e}");
        assert!(e.starts_with("no target has the scheme \"http\""), "{e}");
        // A mangled "://" is named as such, with the scheme meant.
        for (given, meant) in [
            ("nats:/127.0.0.1:4222", "nats://"),
            ("nats//127.0.0.1:4222", "nats://"),
            ("Mqtts:127.0.0.1:8883", "mqtts://"),
            ("nats+tls:/h:1", "nats+tls://"),
        ] {
            let e = parse_target(given).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "no \"://\" after the scheme (did you mean {meant}?)"
                )),
                "{given}: {e}"
            );
        }
        let e = parse_target("127.0.0.1:4222").unwrap_err();
        assert!(e.starts_with("no scheme (SCHEME://HOST:PORT)"), "{e}");
        // Only the scheme: a password keeps its case.
        match parse_target("XMPP://User-{user}:PassWord@127.0.0.1:5222") {
            Ok(super::Target::Xmpp(t)) => {
                assert_eq!(
                    (t.name, t.password),
                    ("User-{user}".into(), "PassWord".into())
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pod_index_from_0_is_the_shard_from_1() {
        let shard = |i| shard_from_env(4, i).map(|s| s.to_string());
        let none = shard_from_env(0, Some("0")).unwrap_err().to_string();
        assert!(none.contains("at least 1"), "{none}");
        assert_eq!(shard(Some("0")).unwrap(), "1/4");
        assert_eq!(shard(Some("3")).unwrap(), "4/4");
        for (bad, says) in [
            (None, "not set"),
            (Some("4"), "not below --shards 4"),
            (Some("x"), "not a shard index"),
            (Some("-1"), "not a shard index"),
        ] {
            let e = shard(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_scenario_name_stays_one_folder_inside_reports() {
        assert_eq!(folder_name("direct-10k"), "direct-10k");
        assert_eq!(folder_name("../../escape"), "..-..-escape");
        assert_eq!(folder_name("a/b c"), "a-b-c");
        assert_eq!(folder_name(".."), "scenario");
        assert_eq!(folder_name(""), "scenario");
        assert_eq!(folder_name(&"x".repeat(300)).len(), 100);
    }

    #[test]
    fn a_report_folder_is_stamped_whatever_the_clock_says() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(super::folder_stamp(at(1_796_396_462)), "20261204T150102Z");
        assert_eq!(super::folder_stamp(at(253_402_300_800)), "unix253402300800");
        assert_eq!(
            super::folder_stamp(UNIX_EPOCH - Duration::from_secs(5)),
            "before-unix5"
        );
    }
}
