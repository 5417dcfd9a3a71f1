//! Tests that build real networks. They need root, `ip`, `nft`, `bash` and `timeout`, and are
//! skipped (passing, with a note on stderr) without them.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

/// The root tests run one at a time: they time connection attempts, which gets flaky when
/// several networks are built at once on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Whether this machine can run the root tests; says why not on stderr.
fn privileged(test: &str) -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("{test}: skipped, not root");
        return false;
    }
    for (program, arg) in [
        (exec::ip_tool().as_os_str(), "-V"),
        (nft_tool().as_os_str(), "--version"),
        (OsStr::new("bash"), "--version"),
        (OsStr::new("timeout"), "--version"),
    ] {
        let program = program.to_string_lossy();
        if !runs(&program, arg) {
            eprintln!("{test}: skipped, `{program}` is missing");
            return false;
        }
    }
    true
}

fn python_available() -> bool {
    runs("python3", "--version")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Yes,
    No,
}

/// Tries a TCP connection from host `from` to `to:port`. A reachable address answers at once,
/// with a SYN-ACK if something listens or a RST ("Connection refused") if not; a dropped SYN
/// gets no answer before `timeout` gives up after a second.
fn probe(net: &Net, from: usize, to: Ipv4Addr, port: u16) -> Reach {
    let output = net
        .command(from, "timeout")
        .args(["1", "bash", "-c", &format!("exec 3<>/dev/tcp/{to}/{port}")])
        .output()
        .expect("running timeout in a namespace");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() || stderr.contains("Connection refused") {
        Reach::Yes
    } else if output.status.code() == Some(124) {
        Reach::No
    } else {
        panic!(
            "probe {from} -> {to}:{port} failed oddly: {}: {stderr}",
            output.status
        );
    }
}

/// From the harness (root namespace) to a host: refused or accepted means reachable.
fn probe_from_root(to: Ipv4Addr) -> Reach {
    match TcpStream::connect_timeout(&SocketAddr::from((to, 9)), Duration::from_secs(1)) {
        Ok(_) => Reach::Yes,
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => Reach::Yes,
        Err(_) => Reach::No,
    }
}

/// Polls until `probe` gives `want` (first packets wait for ARP), or panics after 10 s.
fn eventually(what: &str, want: Reach, mut probe: impl FnMut() -> Reach) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = probe();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {got:?}, wanted {want:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a UDP datagram sent from host `from` reaches host `to`: a receiver (python) waits
/// `window` in `to` while `from` keeps sending. UDP shows one-way partitions, which TCP,
/// needing both directions, cannot.
fn udp_delivered(net: &Net, from: usize, to: usize, window: Duration) -> bool {
    let to_ip = net.hosts()[to].ip;
    let mut receiver = net
        .command(to, "python3")
        .args([
            "-c",
            "import socket, sys\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind((sys.argv[1], 5353))\n\
             s.settimeout(float(sys.argv[2]))\n\
             try:\n    s.recvfrom(64)\n\
             except socket.timeout:\n    sys.exit(3)\n",
        ])
        .arg(to_ip.to_string())
        .arg(window.as_secs_f64().to_string())
        .spawn()
        .expect("starting the UDP receiver");
    let deadline = Instant::now() + window + Duration::from_secs(10);
    loop {
        // Sent until the receiver ends, since the first datagrams may precede its bind.
        let _ = net
            .command(from, "bash")
            .args(["-c", &format!("echo hello > /dev/udp/{to_ip}/5353")])
            .status();
        if let Some(status) = receiver.try_wait().expect("polling the receiver") {
            match status.code() {
                Some(0) => return true,
                Some(3) => return false,
                _ => panic!("UDP receiver failed: {status}"),
            }
        }
        if Instant::now() > deadline {
            let _ = receiver.kill();
            panic!("UDP receiver neither received nor timed out");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The slot's namespaces, sorted.
fn namespaces_of(slot: u8) -> Vec<String> {
    let listing = run(&mut ip(["netns", "list"])).expect("ip netns list");
    let prefix = format!("sj{slot}h");
    let mut names: Vec<String> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

fn link_exists(name: &str) -> bool {
    run(&mut ip(["link", "show", "dev", name])).is_ok()
}

/// Whether a process is gone: no longer exists, or is a zombie nobody reaped (PID 1 here does
/// not always reap orphans).
fn process_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state == 'Z' || state == 'X'),
    }
}

/// Waits until `child` (killed by the sweep) has exited, and returns how.
fn reap(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("polling a child") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "child {} still running",
            child.id()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn host_count_is_checked_before_anything_else() {
    assert!(matches!(Net::create(0), Err(NetError::HostCount(0))));
    assert!(matches!(
        Net::create(MAX_HOSTS + 1),
        Err(NetError::HostCount(51))
    ));
}

#[test]
fn names_and_addresses() {
    assert_eq!(bridge_name(63), "sjbr63");
    assert_eq!(namespace_name(63, 49), "sj63h49");
    assert_eq!(veth_name(63, 49), "sj63v49");
    // Interface names must fit IFNAMSIZ - 1.
    assert!(veth_name(SLOTS - 1, MAX_HOSTS - 1).len() <= 15);
    assert_eq!(host_ip(5, 0), Ipv4Addr::new(10, 231, 5, 1));
    assert_eq!(host_ip(5, 49), Ipv4Addr::new(10, 231, 5, 50));
    assert_eq!(bridge_ip(5), Ipv4Addr::new(10, 231, 5, 254));
    assert_eq!(work_dir_path(5), Path::new("/tmp/starling-jepsen/slot-5"));
}

/// The netem path cannot run on a kernel without `sch_netem` (like the CI machine's), so the
/// exact command lines it would run are pinned here instead.
#[test]
fn netem_runs_exactly_these_tc_commands() {
    let ip = exec::ip_tool().display().to_string();
    let tc = exec::tc_tool().display().to_string();
    let line = |spec: &NetemSpec| exec::describe(&netem::netem_command("sj3h1", spec), None);
    let delay = NetemSpec {
        delay_ms: Some(60),
        jitter_ms: Some(40),
        ..NetemSpec::default()
    };
    assert_eq!(
        line(&delay),
        format!("{ip} netns exec sj3h1 {tc} qdisc replace dev eth0 root netem delay 60ms 40ms")
    );
    // Each of the nemesis's four draws (nemesis::draw), and everything at once.
    let cases = [
        (
            NetemSpec {
                loss_percent: Some(20.0),
                ..NetemSpec::default()
            },
            "loss 20%",
        ),
        (
            NetemSpec {
                delay_ms: Some(20),
                reorder_percent: Some(30.0),
                ..NetemSpec::default()
            },
            "delay 20ms reorder 30%",
        ),
        (
            NetemSpec {
                duplicate_percent: Some(30.0),
                ..NetemSpec::default()
            },
            "duplicate 30%",
        ),
        (
            NetemSpec {
                delay_ms: Some(100),
                jitter_ms: Some(20),
                loss_percent: Some(1.5),
                duplicate_percent: Some(2.0),
                reorder_percent: Some(25.0),
            },
            "delay 100ms 20ms loss 1.5% duplicate 2% reorder 25%",
        ),
    ];
    for (spec, args) in cases {
        assert_eq!(
            line(&spec),
            format!("{ip} netns exec sj3h1 {tc} qdisc replace dev eth0 root netem {args}")
        );
    }
    assert_eq!(
        exec::describe(&netem::clear_netem_command("sj0h4"), None),
        format!("{ip} netns exec sj0h4 {tc} qdisc del dev eth0 root")
    );
}

#[test]
fn network_partitions_heals_and_tears_down() {
    if !privileged("network_partitions_heals_and_tears_down") {
        return;
    }
    let _serial = serial();
    let mut net = Net::create(3).expect("creating a 3-host network");
    let slot = net.slot();
    let bridge = net.bridge_ip();
    let ips: Vec<Ipv4Addr> = net.hosts().iter().map(|host| host.ip).collect();
    assert_eq!(ips, [host_ip(slot, 0), host_ip(slot, 1), host_ip(slot, 2)]);
    assert_eq!(namespaces_of(slot).len(), 3);
    assert!(net.work_dir().is_dir());

    // A second network at the same time takes another slot.
    {
        let other = Net::create(1).expect("creating a second network");
        assert_ne!(other.slot(), slot);
    }

    // The harness's side: something listening on the bridge address, like the mock provider.
    let listener = TcpListener::bind((bridge, 0)).expect("binding on the bridge address");
    let port = listener.local_addr().expect("listener address").port();

    // Everyone reaches everyone. Host to host goes through the bridge, so this also shows that
    // br_netfilter (bridge-nf-call-iptables) lets bridged traffic through.
    for (from, &from_ip) in ips.iter().enumerate() {
        for (to, &to_ip) in ips.iter().enumerate() {
            if from != to {
                eventually(&format!("{from} -> {to}"), Reach::Yes, || {
                    probe(&net, from, to_ip, 9)
                });
            }
        }
        eventually(&format!("{from} -> bridge"), Reach::Yes, || {
            probe(&net, from, bridge, port)
        });
        eventually(&format!("root -> {from}"), Reach::Yes, || {
            probe_from_root(from_ip)
        });
    }

    // Cut 0 -> 1 only.
    net.partition([(0, 1)]).expect("partitioning");
    assert_eq!(probe(&net, 0, ips[1], 9), Reach::No, "0 -> 1 while cut");
    // TCP needs both directions, so 1 cannot connect to 0 either (0's answers are dropped)...
    assert_eq!(probe(&net, 1, ips[0], 9), Reach::No, "1 -> 0 over TCP");
    // ...but nobody's traffic with the bridge, nor between other hosts, is touched.
    assert_eq!(probe(&net, 0, bridge, port), Reach::Yes);
    assert_eq!(probe(&net, 1, bridge, port), Reach::Yes);
    assert_eq!(probe(&net, 0, ips[2], 9), Reach::Yes);
    assert_eq!(probe(&net, 2, ips[1], 9), Reach::Yes);
    assert_eq!(probe_from_root(ips[0]), Reach::Yes);
    assert_eq!(probe_from_root(ips[1]), Reach::Yes);
    if python_available() {
        // One way really is one way.
        assert!(
            udp_delivered(&net, 1, 0, Duration::from_secs(5)),
            "1 -> 0 UDP must get through"
        );
        assert!(
            !udp_delivered(&net, 0, 1, Duration::from_secs(2)),
            "0 -> 1 UDP must be dropped"
        );
    } else {
        eprintln!("no python3: one-way UDP check skipped");
    }

    // A new partition replaces the old one.
    net.partition(vec![(1, 2), (2, 1)])
        .expect("partitioning again");
    assert_eq!(
        probe(&net, 0, ips[1], 9),
        Reach::Yes,
        "0 -> 1 after replace"
    );
    assert_eq!(probe(&net, 1, ips[2], 9), Reach::No);
    assert_eq!(probe(&net, 2, ips[1], 9), Reach::No);

    net.heal().expect("healing");
    for (from, to) in [(0, 1), (1, 0), (1, 2), (2, 1)] {
        assert_eq!(probe(&net, from, ips[to], 9), Reach::Yes, "{from} -> {to}");
    }
    let tables = net
        .command(1, nft_tool())
        .args(["list", "tables"])
        .output()
        .expect("nft list tables");
    assert!(tables.status.success());
    assert!(!String::from_utf8_lossy(&tables.stdout).contains(NFT_TABLE));

    assert!(matches!(
        net.partition([(2, 2)]),
        Err(NetError::SelfPair(2))
    ));
    assert!(matches!(
        net.partition([(0, 3)]),
        Err(NetError::NoSuchHost { index: 3, hosts: 3 })
    ));

    // netem, where the kernel has it; clearing works either way.
    net.clear_netem(0)
        .expect("clearing netem that was never set");
    let spec = NetemSpec {
        delay_ms: Some(50),
        loss_percent: Some(1.0),
        ..NetemSpec::default()
    };
    match net.netem(0, &spec) {
        Ok(()) => {
            let shown = net
                .command(0, exec::tc_tool())
                .args(["qdisc", "show", "dev", HOST_INTERFACE])
                .output()
                .expect("tc qdisc show");
            let shown = String::from_utf8_lossy(&shown.stdout);
            assert!(shown.contains("netem"), "{shown}");
            assert!(shown.contains("delay 50ms"), "{shown}");
            net.clear_netem(0).expect("clearing netem");
            net.clear_netem(0).expect("clearing netem twice");
        }
        Err(NetError::NetemUnsupported { .. }) => {
            eprintln!("this kernel has no netem: netem check skipped");
        }
        Err(error) => panic!("netem: {error}"),
    }

    // Teardown kills what still runs in the namespaces and removes everything.
    let mut straggler = net
        .command(2, "sleep")
        .arg("600")
        .spawn()
        .expect("starting sleep in host 2");
    let work_dir = net.work_dir().to_owned();
    fs::write(work_dir.join("node.log"), "log").expect("writing into the work dir");
    net.teardown().expect("tearing down");
    net.teardown().expect("tearing down again");
    assert!(namespaces_of(slot).is_empty());
    assert!(!link_exists(&bridge_name(slot)));
    assert!(!link_exists(&veth_name(slot, 0)));
    assert!(!work_dir.exists());
    let status = reap(&mut straggler);
    assert!(!status.success(), "sleep was killed: {status}");
    drop(net);
    // The slot is free again.
    assert!(
        SlotLock::try_acquire(slot)
            .expect("locking the slot")
            .is_some()
    );
}

#[test]
fn create_sweeps_what_a_dead_owner_left() {
    if !privileged("create_sweeps_what_a_dead_owner_left") {
        return;
    }
    let _serial = serial();
    let lock = SlotLock::acquire_any().expect("taking a slot");
    let slot = lock.slot();
    // What a SIGKILLed run could leave: a namespace numbered beyond what we will build, with a
    // process in it and a veth into the root namespace; a bridge; a work dir with old logs.
    let stray_ns = namespace_name(slot, 7);
    let stray_veth = veth_name(slot, 7);
    let bridge = bridge_name(slot);
    run(&mut ip(["netns", "add", stray_ns.as_str()])).expect("stray namespace");
    run(&mut ip([
        "link",
        "add",
        "name",
        stray_veth.as_str(),
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        stray_ns.as_str(),
    ]))
    .expect("stray veth");
    run(&mut ip([
        "link",
        "add",
        "name",
        bridge.as_str(),
        "type",
        "bridge",
    ]))
    .expect("stray bridge");
    let mut stray_process = in_namespace(&stray_ns, "sleep")
        .arg("600")
        .spawn()
        .expect("stray process");
    let old_log = work_dir_path(slot).join("old.log");
    fs::create_dir_all(work_dir_path(slot)).expect("stray work dir");
    fs::write(&old_log, "old").expect("stray log");
    // A data dir on a tmpfs of its own (the disk-full nemesis's), filled to the brim.
    let data_dir = work_dir_path(slot).join("n1.data");
    mount_tmpfs(&data_dir, 1 << 20).expect("mounting a tmpfs");
    assert!(
        crate::storage::fill(&data_dir, 512 << 10).is_err(),
        "a file system larger than allowed is not filled"
    );
    let filled = crate::storage::fill(&data_dir, 1 << 20).expect("filling the tmpfs");
    assert!(
        filled > 900 << 10,
        "the ballast fills the tmpfs: {filled} bytes"
    );
    assert!(
        fs::write(data_dir.join("more"), [1u8; 8192]).is_err(),
        "the tmpfs is full"
    );

    let net = Net::build(lock, 2).expect("building over the leftovers");
    let status = reap(&mut stray_process);
    assert!(!status.success(), "stray process killed: {status}");
    assert_eq!(
        namespaces_of(slot),
        [namespace_name(slot, 0), namespace_name(slot, 1)]
    );
    assert!(!link_exists(&stray_veth));
    assert!(link_exists(&bridge));
    assert!(net.work_dir().is_dir());
    assert!(!old_log.exists());
    assert!(
        mounts::current_mounts_below(&work_dir_path(slot))
            .expect("reading the mounts")
            .is_empty(),
        "the stray tmpfs is unmounted"
    );
    eventually("0 -> 1 on the rebuilt network", Reach::Yes, || {
        probe(&net, 0, net.hosts()[1].ip, 9)
    });
    drop(net);
    assert!(!has_leftovers(slot).expect("scanning"));
}

/// Not a test on its own: the body of the child process of
/// `sweep_stale_cleans_up_after_a_sigkilled_run`, which runs it with `--ignored`.
#[test]
#[ignore = "run as a child process by sweep_stale_cleans_up_after_a_sigkilled_run"]
fn child_holding_a_net() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let net = Net::create(2).expect("child: creating a network");
    let mut sleeper = net
        .command(1, "sleep")
        .arg("600")
        .spawn()
        .expect("child: starting sleep");
    println!("SLOT {} PID {}", net.slot(), sleeper.id());
    // Wait to be SIGKILLed: the network must never be torn down by this process.
    let _ = sleeper.wait();
    loop {
        thread::park();
    }
}

const CHILD_ENV: &str = "STARLING_JEPSEN_NET_TEST_CHILD";

#[test]
fn sweep_stale_cleans_up_after_a_sigkilled_run() {
    if !privileged("sweep_stale_cleans_up_after_a_sigkilled_run") {
        return;
    }
    let _serial = serial();
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, rest)| rest);
    let mut child = Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            &format!("{module}::child_holding_a_net"),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the child");
    let stdout = child.stdout.take().expect("child stdout");
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test NAME ... " on the same line first.
            if let Some((_, rest)) = line.split_once("SLOT ") {
                let _ = sender.send(rest.to_owned());
                return;
            }
        }
    });
    let line = match receiver.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => line,
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child never reported its network: {error}");
        }
    };
    let (slot, pid) = line.split_once(" PID ").expect("SLOT s PID p line");
    let slot: u8 = slot.parse().expect("slot number");
    let pid: u32 = pid.parse().expect("pid");
    assert_eq!(namespaces_of(slot).len(), 2);

    child.kill().expect("SIGKILLing the child");
    child.wait().expect("reaping the child");
    // The child's process in host 1 outlives it, orphaned; so do the namespaces.
    assert!(!process_gone(pid), "orphan {pid} should still run");
    assert_eq!(namespaces_of(slot).len(), 2);

    let swept = sweep_stale().expect("sweeping");
    match SlotLock::try_acquire(slot).expect("locking the dead run's slot") {
        Some(_lock) => {
            assert!(swept >= 1, "the dead run's slot had leftovers");
            assert!(!has_leftovers(slot).expect("scanning"));
        }
        // Another run took the slot meanwhile (sweeping it itself); nothing more to check.
        None => eprintln!("slot {slot} was taken by another run meanwhile"),
    }
    assert!(process_gone(pid), "orphan {pid} was killed");
}
