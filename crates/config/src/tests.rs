use super::*;

const QUICKSTART: &str = "
[global]
# three nodes
; Arakoon also takes ';' comments
cluster = arakoon_0 , arakoon_1, arakoon_2
cluster_id = ricky

[arakoon_0]
ip = 127.0.0.1
client_port = 4000
messaging_port = 4010
home = /tmp/arakoon/arakoon_0
log_level = info

[arakoon_1]
ip = 127.0.0.1
client_port = 4001
messaging_port = 4011
home = /tmp/arakoon/arakoon_1
log_level = debug

[arakoon_2]
ip = 127.0.0.1
client_port = 4002
messaging_port = 4012
home = /tmp/arakoon/arakoon_2
tlog_dir = /tmp/arakoon/tlogs_2
log_level = info
";

fn err(text: &str) -> String {
    parse(text).expect_err("config must be refused").to_string()
}

#[test]
fn arakoon_quickstart_parses_with_arakoon_defaults() {
    let loaded = parse(QUICKSTART).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.cluster_id, "ricky");
    let names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["arakoon_0", "arakoon_1", "arakoon_2"]);
    assert_eq!(c.master, MasterMode::Elected);
    assert_eq!(c.lease_period, Duration::from_secs(10));
    assert_eq!(c.tlog_max_entries, 50_000);
    assert_eq!(c.tlog_max_size, 33_554_432);
    assert_eq!(c.tlog_max_entries, tlog::DEFAULT_MAX_ENTRIES);
    assert_eq!(c.tlog_max_size, tlog::DEFAULT_MAX_SIZE);
    assert_eq!(c.max_value_size, 8_388_608);
    assert_eq!(c.max_buffer_size, 33_554_432);
    assert_eq!(c.client_buffer_capacity, 32);
    assert_eq!(c.quorum, None);
    let n2 = c.node("arakoon_2").unwrap();
    assert_eq!(n2.tlog_dir, PathBuf::from("/tmp/arakoon/tlogs_2"));
    assert_eq!(n2.tlx_dir, n2.tlog_dir, "tlx_dir defaults to tlog_dir");
    assert_eq!(n2.head_dir, n2.tlog_dir);
    assert_eq!(n2.log_dir, PathBuf::from("/tmp/arakoon/arakoon_2"));
    assert!(n2.fsync, "fsync defaults to true");
    assert_eq!(n2.tlog_compression, TlogCompression::Snappy);
    assert_eq!(c.node("arakoon_1").unwrap().log_level, LogLevel::Debug);
    assert_eq!(n2.client_address(), "127.0.0.1:4002");
    assert_eq!(n2.slave_apply_delay, SLAVE_APPLY_DELAY_DEFAULT);
}

#[test]
fn client_frame_timeout_in_seconds_bounded() {
    let with = |v: &str| {
        QUICKSTART.replace(
            "log_level = debug",
            &format!("log_level = debug\nclient_frame_timeout = {v}"),
        )
    };
    let c = parse(&with("5")).unwrap().config;
    assert_eq!(
        c.node("arakoon_1").unwrap().client_frame_timeout,
        Duration::from_secs(5)
    );
    assert_eq!(
        c.node("arakoon_0").unwrap().client_frame_timeout,
        CLIENT_FRAME_TIMEOUT_DEFAULT
    );
    assert!(err(&with("0")).contains("client_frame_timeout = '0': must be between 1 and 3600"));
    assert!(err(&with("3601")).contains("client_frame_timeout"));
}

#[test]
fn min_free_disk_in_mib_bounded_zero_turns_it_off() {
    let with = |v: &str| {
        QUICKSTART.replace(
            "log_level = debug",
            &format!("log_level = debug\nmin_free_disk = {v}"),
        )
    };
    let c = parse(&with("24")).unwrap().config;
    assert_eq!(c.node("arakoon_1").unwrap().min_free_disk, 24 << 20);
    assert_eq!(
        c.node("arakoon_0").unwrap().min_free_disk,
        crate::MIN_FREE_DISK_DEFAULT_MB << 20
    );
    assert_eq!(
        parse(&with("0"))
            .unwrap()
            .config
            .node("arakoon_1")
            .unwrap()
            .min_free_disk,
        0
    );
    assert!(err(&with("1048577")).contains("min_free_disk = '1048577'"));
    assert!(err(&with("-1")).contains("min_free_disk"));
}

#[test]
fn slave_apply_delay_in_milliseconds_bounded() {
    let zero = QUICKSTART.replace(
        "log_level = debug",
        "log_level = debug\nslave_apply_delay = 0",
    );
    let loaded = parse(&zero).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(
        c.node("arakoon_1").unwrap().slave_apply_delay,
        Duration::ZERO
    );
    assert_eq!(
        c.node("arakoon_0").unwrap().slave_apply_delay,
        SLAVE_APPLY_DELAY_DEFAULT
    );
    let long = QUICKSTART.replace(
        "log_level = debug",
        "log_level = debug\nslave_apply_delay = 60000",
    );
    assert_eq!(
        parse(&long)
            .unwrap()
            .config
            .node("arakoon_1")
            .unwrap()
            .slave_apply_delay,
        Duration::from_secs(60)
    );
    let too_long = QUICKSTART.replace(
        "log_level = debug",
        "log_level = debug\nslave_apply_delay = 60001",
    );
    assert_eq!(
        err(&too_long),
        "config: [arakoon_1] slave_apply_delay = '60001': at most 60000 (milliseconds)"
    );
}

#[test]
fn integers_with_underscores_and_decimal_lease() {
    let text = QUICKSTART.replace(
        "cluster_id = ricky",
        "cluster_id = ricky\ntlog_max_entries = 10_000\nlease_period = 0.5",
    );
    let c = parse(&text).unwrap().config;
    assert_eq!(c.tlog_max_entries, 10_000);
    assert_eq!(c.lease_period, Duration::from_millis(500));
}

/// A tlog size the tlog cannot take is refused by name, not clamped.
#[test]
fn tlog_sizes_outside_the_tlogs_range_are_refused() {
    let with = |line: &str| {
        QUICKSTART.replace("cluster_id = ricky", &format!("cluster_id = ricky\n{line}"))
    };
    assert_eq!(
        err(&with("tlog_max_entries = 0")),
        format!(
            "config: [global] tlog_max_entries = '0': must be between 1 and {}",
            tlog::MAX_ENTRIES_LIMIT
        )
    );
    let huge = tlog::MAX_ENTRIES_LIMIT + 1;
    assert!(err(&with(&format!("tlog_max_entries = {huge}")))
        .contains(&format!("tlog_max_entries = '{huge}'")));
    let tiny = tlog::MIN_SIZE_LIMIT - 1;
    assert_eq!(
        err(&with(&format!("tlog_max_size = {tiny}"))),
        format!(
            "config: [global] tlog_max_size = '{tiny}': must be between {} and {}",
            tlog::MIN_SIZE_LIMIT,
            tlog::MAX_SIZE_LIMIT
        )
    );
    let big = tlog::MAX_SIZE_LIMIT + 1;
    assert!(err(&with(&format!("tlog_max_size = {big}"))).contains("tlog_max_size"));
    // The ends themselves are taken.
    let c = parse(&with(&format!(
        "tlog_max_size = {}\ntlog_max_entries = {}",
        tlog::MAX_SIZE_LIMIT,
        tlog::MAX_ENTRIES_LIMIT
    )))
    .unwrap()
    .config;
    assert_eq!(
        (c.tlog_max_size, c.tlog_max_entries),
        (tlog::MAX_SIZE_LIMIT, tlog::MAX_ENTRIES_LIMIT)
    );
}

#[test]
fn master_modes() {
    let forced = QUICKSTART.replace(
        "cluster_id = ricky",
        "cluster_id = ricky\nmaster = arakoon_1",
    );
    assert_eq!(
        parse(&forced).unwrap().config.master,
        MasterMode::Forced("arakoon_1".into())
    );
    let preferred = forced.replace(
        "master = arakoon_1",
        "master = arakoon_1\npreferred_master = true",
    );
    assert_eq!(
        parse(&preferred).unwrap().config.master,
        MasterMode::Preferred(vec!["arakoon_1".into()])
    );
    let list = QUICKSTART.replace(
        "cluster_id = ricky",
        "cluster_id = ricky\npreferred_masters = arakoon_2, arakoon_0",
    );
    assert_eq!(
        parse(&list).unwrap().config.master,
        MasterMode::Preferred(vec!["arakoon_2".into(), "arakoon_0".into()])
    );
    let both = list.replace(
        "cluster_id = ricky",
        "cluster_id = ricky\nmaster = arakoon_0",
    );
    assert!(err(&both).contains("incompatible"));
    let unknown = QUICKSTART.replace("cluster_id = ricky", "cluster_id = ricky\nmaster = nobody");
    assert_eq!(
        err(&unknown),
        "config: [global] master = 'nobody': 'nobody' is not a voting node of [global] cluster"
    );
}

#[test]
fn errors_name_section_key_and_value() {
    let bad_port = QUICKSTART.replace("client_port = 4001", "client_port = forty");
    assert_eq!(
        err(&bad_port),
        "config: [arakoon_1] client_port = 'forty': not a non-negative integer (decimal, 0x hex, 0o octal or 0b binary)"
    );
    let big_port = QUICKSTART.replace("client_port = 4001", "client_port = 70000");
    assert_eq!(
        err(&big_port),
        "config: [arakoon_1] client_port = '70000': too large"
    );
    let no_home = QUICKSTART.replace("home = /tmp/arakoon/arakoon_1\n", "");
    assert_eq!(
        err(&no_home),
        "config: [arakoon_1] home is required but missing"
    );
    let no_section = QUICKSTART.replace("[arakoon_2]", "[arakoon_9]");
    assert!(err(&no_section).contains("node 'arakoon_2' has no [arakoon_2] section"));
    let bad_bool = QUICKSTART.replace("log_level = debug", "log_level = debug\nfsync = yes");
    assert_eq!(
        err(&bad_bool),
        "config: [arakoon_1] fsync = 'yes': not a boolean (true or false)"
    );
    let bad_level = QUICKSTART.replace("log_level = debug", "log_level = loud");
    assert!(err(&bad_level).starts_with("config: [arakoon_1] log_level = 'loud'"));
    let no_id = QUICKSTART.replace("cluster_id = ricky\n", "");
    assert_eq!(
        err(&no_id),
        "config: [global] cluster_id is required but missing"
    );
}

#[test]
fn two_nodes_on_one_address_are_refused() {
    let clash = QUICKSTART.replace("messaging_port = 4011", "messaging_port = 4010");
    assert_eq!(
        err(&clash),
        "config: [arakoon_1] messaging_port = '4010': 127.0.0.1:4010 is already used by [arakoon_0]"
    );
}

#[test]
fn unknown_keys_are_warnings_with_line_numbers() {
    let text = QUICKSTART.replace("log_level = debug", "log_level = debug\nshiny = 1");
    let loaded = parse(&text).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0].contains("[arakoon_1] shiny"),
        "{:?}",
        loaded.warnings
    );
    assert!(
        loaded.warnings[0].starts_with("config line 21:"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn syntax_errors_have_line_numbers() {
    assert_eq!(
        err("[global\ncluster = a"),
        "config line 1: section header '[global' has no closing ']'"
    );
    assert_eq!(
        err("cluster = a\n"),
        "config line 1: 'cluster' appears before any [section]"
    );
    assert_eq!(
        err("[global]\njust words\n"),
        "config line 2: expected 'key = value' or '[section]', found 'just words'"
    );
    assert!(err("[global]\na = 1\na = 2\n").contains("given twice (first on line 2)"));
}

/// A learner listed in `cluster` (our earlier form) still works; its
/// `targets` are accepted with a warning that they have no effect.
#[test]
fn a_learner_listed_in_cluster_with_targets() {
    let with_learner = QUICKSTART.replace(
        "tlog_dir = /tmp/arakoon/tlogs_2",
        "learner = true\ntargets = arakoon_0",
    );
    let loaded = parse(&with_learner).unwrap();
    let c = loaded.config;
    assert!(c.node("arakoon_2").unwrap().learner);
    assert_eq!(c.voters().count(), 2);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].contains("[arakoon_2] targets = 'arakoon_0': no effect"),
        "{:?}",
        loaded.warnings
    );
    let no_targets = QUICKSTART.replace("tlog_dir = /tmp/arakoon/tlogs_2", "learner = true");
    assert!(
        parse(&no_targets)
            .unwrap()
            .config
            .node("arakoon_2")
            .unwrap()
            .learner
    );
}

/// Arakoon's form: a section with `learner = true` that `cluster` does not
/// list is a learner; it comes after the listed nodes (node ids stay put).
#[test]
fn a_learner_in_arakoon_form_is_not_listed_in_cluster() {
    let text = format!(
        "{QUICKSTART}\n[zz_learner]\nip = 127.0.0.1\nclient_port = 4003\nmessaging_port = 4013\n\
         home = /tmp/l\nlog_level = info\nlearner = true\n\n[other_tool]\nlearner = false\n"
    );
    let loaded = parse(&text).unwrap();
    let names: Vec<&str> = loaded
        .config
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(names, ["arakoon_0", "arakoon_1", "arakoon_2", "zz_learner"]);
    assert!(loaded.config.node("zz_learner").unwrap().learner);
    assert_eq!(loaded.config.voters().count(), 3);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // A learner section missing a node key is refused by name.
    let broken = text.replace("messaging_port = 4013\n", "");
    assert_eq!(
        err(&broken),
        "config: [zz_learner] messaging_port is required but missing"
    );
}

/// Lists split on commas, spaces and tabs; integers take OCaml's forms;
/// only whole lines are comments, and a value with a trailing comment that
/// does not parse says why.
#[test]
fn arakoon_lists_integers_and_comments() {
    let text = QUICKSTART
        .replace(
            "cluster = arakoon_0 , arakoon_1, arakoon_2",
            "cluster = arakoon_0\tarakoon_1  arakoon_2,",
        )
        .replace("client_port = 4000", "client_port = 0xfa0")
        .replace("messaging_port = 4010", "messaging_port = 0o7652")
        .replace("client_port = 4001", "client_port = 0b1111_1010_0001")
        .replace(
            "ip = 127.0.0.1\nclient_port = 4002",
            "ip = 127.0.0.1 127.0.0.2,\t::1\nclient_port = 4002",
        );
    let c = parse(&text).unwrap().config;
    assert_eq!(c.nodes.len(), 3);
    assert_eq!(c.nodes[0].client_port, 4000);
    assert_eq!(c.nodes[0].messaging_port, 4010);
    assert_eq!(c.nodes[1].client_port, 4001);
    assert_eq!(c.nodes[2].ips, ["127.0.0.1", "127.0.0.2", "::1"]);
    let trailing = QUICKSTART.replace("client_port = 4000", "client_port = 4000 # clients");
    let e = err(&trailing);
    assert!(
        e.contains("[arakoon_0] client_port = '4000 # clients'") && e.contains("part of the value"),
        "{e}"
    );
    for bad in [
        "0x",
        "0xg",
        "_1",
        "--1",
        "+",
        "1e3",
        "-1",
        "18446744073709551616",
    ] {
        let text = QUICKSTART.replace("client_port = 4000", &format!("client_port = {bad}"));
        assert!(
            err(&text).contains(&format!("client_port = '{bad}'")),
            "{bad}"
        );
    }
}

/// Arakoon 1.9's keys without an effect here: accepted, one warning each
/// naming the key and why.
#[test]
fn keys_without_effect_warn_once_with_the_reason() {
    let text = QUICKSTART
        .replace(
            "cluster_id = ricky",
            "cluster_id = ricky\nlcnum = 1024\nncnum = 512\n__tainted_tlog_entries_per_file = 7\n\
             tls_ca_cert = /ca.pem\ntls_version = 1.1\ntls_cipher_list = HIGH",
        )
        .replace(
            "log_level = debug",
            "log_level = debug\nlaggy = true\nhead_dir = /h\ncrash_log_sinks = /c\n__tainted_fsync_tlog_dir = false\n\
             head_copy_throttling = 0.5\noptimize_db_slowdown = 1.0",
        );
    let loaded = parse(&text).unwrap();
    let w = &loaded.warnings;
    assert_eq!(w.len(), 11, "{w:#?}");
    for key in [
        "[global] lcnum",
        "[global] ncnum",
        "[global] __tainted_tlog_entries_per_file",
        "[global] tls_version = '1.1': TLS 1.0 and 1.1 are unsafe",
        "[global] tls_cipher_list",
        "[arakoon_1] laggy",
        "[arakoon_1] head_dir",
        "[arakoon_1] crash_log_sinks",
        "[arakoon_1] __tainted_fsync_tlog_dir",
        "[arakoon_1] head_copy_throttling",
        "[arakoon_1] optimize_db_slowdown",
    ] {
        assert_eq!(
            w.iter().filter(|x| x.contains(key)).count(),
            1,
            "{key}: {w:#?}"
        );
    }
    assert_eq!(loaded.config.tls.as_ref().unwrap().version, "1.2");
    assert!(err(&QUICKSTART.replace(
        "cluster_id = ricky",
        "cluster_id = ricky\ntls_ca_cert = /c\ntls_version = 2"
    ))
    .contains("tls_version = '2'"));
}

/// `fsync_interval`/`fsync_entries` choose a relaxed mode (fsync off between
/// them); with `fsync = true` they are refused.
#[test]
fn relaxed_fsync_modes() {
    let c = parse(&QUICKSTART.replace(
        "log_level = debug",
        "log_level = debug\nfsync_interval = 0.5",
    ))
    .unwrap()
    .config;
    let n = c.node("arakoon_1").unwrap();
    assert!(!n.fsync);
    assert_eq!(n.fsync_interval, Some(Duration::from_millis(500)));
    assert!(c.node("arakoon_0").unwrap().fsync);
    let c = parse(&QUICKSTART.replace(
        "log_level = debug",
        "log_level = debug\nfsync = false\nfsync_entries = 100",
    ))
    .unwrap()
    .config;
    assert_eq!(c.node("arakoon_1").unwrap().fsync_entries, Some(100));
    let e = err(&QUICKSTART.replace(
        "log_level = debug",
        "log_level = debug\nfsync = true\nfsync_entries = 100",
    ));
    assert!(
        e.contains("[arakoon_1] fsync_entries = '100'") && e.contains("fsync = true"),
        "{e}"
    );
    assert!(
        err(&QUICKSTART.replace("log_level = debug", "log_level = debug\nfsync_entries = 0"))
            .contains("at least 1")
    );
}

/// `log_sinks` in Arakoon's forms, `log_config` levels, keepalive keys.
#[test]
fn log_sinks_log_config_and_keepalive() {
    let c = parse(QUICKSTART).unwrap().config;
    assert_eq!(
        c.nodes[0].log_sinks,
        [
            LogSink::File(PathBuf::from("/tmp/arakoon/arakoon_0/arakoon_0.log")),
            LogSink::Console
        ],
        "without log_sinks: Arakoon's file, and stderr"
    );
    assert_eq!(c.tcp_keepalive, TcpKeepalive::default());
    let text = QUICKSTART
        .replace(
            "cluster_id = ricky",
            "cluster_id = ricky\nenable_tcp_keepalive = false\ntcp_keepalive_time = 5\n\
             tcp_keepalive_intvl = 2\ntcp_keepalive_probes = 4",
        )
        .replace(
            "log_level = debug",
            "log_level = debug\nlog_sinks = console:, file:///var/log/a.log, /x/b.log\nlog_config = lc\n\
             [lc]\npaxos = debug\nclient_protocol = warning",
        );
    let c = parse(&text).unwrap().config;
    let n = c.node("arakoon_1").unwrap();
    assert_eq!(
        n.log_sinks,
        [
            LogSink::Console,
            LogSink::File(PathBuf::from("/var/log/a.log")),
            LogSink::File(PathBuf::from("/x/b.log"))
        ]
    );
    assert_eq!(n.log_components.paxos, Some(LogLevel::Debug));
    assert_eq!(n.log_components.client_protocol, Some(LogLevel::Warning));
    assert_eq!(n.log_components.server, None);
    assert_eq!(
        c.tcp_keepalive,
        TcpKeepalive {
            enabled: false,
            time: Duration::from_secs(5),
            interval: Duration::from_secs(2),
            probes: 4
        }
    );
    let redis = QUICKSTART.replace(
        "log_level = debug",
        "log_level = debug\nlog_sinks = redis://h:1/k",
    );
    assert!(err(&redis).contains("redis sinks are not supported"));
    let missing = QUICKSTART.replace("log_level = debug", "log_level = debug\nlog_config = nope");
    assert!(err(&missing).contains("[nope] log_config = 'nope': no such section"));
}

#[test]
fn quorum_readonly_plugins_tls() {
    let q = QUICKSTART.replace("cluster_id = ricky", "cluster_id = ricky\nquorum = 4");
    assert!(err(&q).contains("must be between 1 and 3"));
    let ro = QUICKSTART.replace("cluster_id = ricky", "cluster_id = ricky\nreadonly = true");
    assert!(err(&ro).contains("only a one-node cluster"));
    let plugins = QUICKSTART.replace("cluster_id = ricky", "cluster_id = ricky\nplugins = p1");
    assert!(err(&plugins).contains("not supported"));
    let tls10 = QUICKSTART.replace(
        "cluster_id = ricky",
        "cluster_id = ricky\ntls_ca_cert = /ca.pem\ntls_version = 1.0",
    );
    assert_eq!(parse(&tls10).unwrap().config.tls.unwrap().version, "1.2");
}

proptest::proptest! {
    /// Bad input never panics: any text is either a config or an error.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = parse(&text);
    }

    /// Mutating one byte of a valid config never panics.
    #[test]
    fn mutated_config_never_panics(at in 0usize..600, byte in 0u8..128) {
        let mut bytes = QUICKSTART.as_bytes().to_vec();
        let at = at % bytes.len();
        bytes[at] = byte;
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = parse(&text);
        }
    }
}

#[test]
fn auto_collapse_keep_and_collapse_slowdown() {
    let with =
        |v: &str| QUICKSTART.replace("log_level = debug", &format!("log_level = debug\n{v}"));
    let c = parse(&with("auto_collapse_keep = 0\ncollapse_slowdown = 1.5"))
        .unwrap()
        .config;
    let n1 = c.node("arakoon_1").unwrap();
    assert_eq!(n1.auto_collapse_keep, 0);
    assert_eq!(n1.collapse_slowdown, Some(1.5));
    let n0 = c.node("arakoon_0").unwrap();
    assert_eq!(n0.auto_collapse_keep, crate::AUTO_COLLAPSE_KEEP_DEFAULT);
    assert_eq!(n0.collapse_slowdown, None);
    assert!(err(&with("auto_collapse_keep = 100001"))
        .contains("auto_collapse_keep = '100001': must be between 0 and 100000"));
    assert!(err(&with("collapse_slowdown = -1")).contains("collapse_slowdown = '-1'"));
}

/// Arakoon 1.9's witness: a voter (listed in `cluster`) with
/// `witness = true`; it cannot also be a learner, the master or a
/// preferred master, and a cluster of witnesses only is refused.
#[test]
fn witness_nodes() {
    let text = QUICKSTART.replace(
        "tlog_dir = /tmp/arakoon/tlogs_2",
        "tlog_dir = /tmp/arakoon/tlogs_2\nwitness = true",
    );
    let c = parse(&text).unwrap().config;
    let flags: Vec<bool> = c.nodes.iter().map(|n| n.witness).collect();
    assert_eq!(flags, [false, false, true]);
    assert!(c.nodes.iter().all(|n| !n.learner));
    let e = err(&text.replace(
        "cluster_id = ricky",
        "cluster_id = ricky\nmaster = arakoon_2",
    ));
    assert!(
        e.contains("master") && e.contains("'arakoon_2' is a witness"),
        "{e}"
    );
    let e = err(&text.replace(
        "cluster_id = ricky",
        "cluster_id = ricky\npreferred_masters = arakoon_0, arakoon_2",
    ));
    assert!(
        e.contains("preferred_masters") && e.contains("witness"),
        "{e}"
    );
    let e = err(&text.replace("witness = true", "witness = true\nlearner = true"));
    assert!(
        e.contains("[arakoon_2] witness") && e.contains("learner"),
        "{e}"
    );
    let all = text
        .replace(
            "log_level = info\n\n[arakoon_1]",
            "log_level = info\nwitness = true\n\n[arakoon_1]",
        )
        .replace("log_level = debug", "log_level = debug\nwitness = true");
    let e = err(&all);
    assert!(e.contains("every voter is a witness"), "{e}");
}

/// `tlx_dir` (or its alias `tlf_dir`) elsewhere than `tlog_dir`: one
/// warning saying sealed segments stay in `tlog_dir`; equal: silent.
#[test]
fn tlx_dir_elsewhere_warns_that_sealed_segments_stay() {
    let text = QUICKSTART.replace(
        "tlog_dir = /tmp/arakoon/tlogs_2",
        "tlog_dir = /tmp/arakoon/tlogs_2\ntlf_dir = /tmp/arakoon/tlx_2",
    );
    let loaded = parse(&text).unwrap();
    let w: Vec<&String> = loaded
        .warnings
        .iter()
        .filter(|w| w.contains("tlf_dir"))
        .collect();
    assert_eq!(w.len(), 1, "{:?}", loaded.warnings);
    assert!(
        w[0].contains("[arakoon_2] tlf_dir") && w[0].contains("stay in tlog_dir"),
        "{w:?}"
    );
    let same = QUICKSTART.replace(
        "tlog_dir = /tmp/arakoon/tlogs_2",
        "tlog_dir = /tmp/arakoon/tlogs_2\ntlx_dir = /tmp/arakoon/tlogs_2",
    );
    assert!(parse(&same).unwrap().warnings.is_empty());
}
