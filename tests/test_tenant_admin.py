"""A tenant's topic and cluster administration through a SASL (tenant) gateway, end to end
with real clients (confluent-kafka's AdminClient and Kafka's own CLI tools), against the
rules of SPEC 3, 4 and 7 as the tenancy stage applies them (gateway/src/tenant/topics.rs,
gateway/src/tenant/cluster.rs, tenancy/src/topic_config.rs):

- CreateTopics: the pool's replication factor (3) and min.insync.replicas (2) always apply;
  explicit replica assignments are refused (INVALID_REPLICA_ASSIGNMENT); configs are limited
  to the allow-list with bounds (POLICY_VIOLATION naming the config); invalid, reserved and
  too long names are refused (INVALID_TOPIC_EXCEPTION); each topic of a request succeeds or
  fails on its own.
- Alters: the same allow-list (INVALID_CONFIG naming the config); cleanup.policy only at
  creation.
- CreatePartitions: more partitions yes, explicit assignments no.
- Cluster administration (ACLs, reassignments, elections, log dirs, delegation tokens, SCRAM,
  broker configs, features) is answered CLUSTER_AUTHORIZATION_FAILED in each API's format,
  never by a dropped connection; client quotas: nothing of the pool shown, a tenant's own never reach the pool.

Every effect is checked in the pool itself (an unauthenticated AdminClient on the pool's
bootstrap), and every text a tenant gets back is probed for pool names and pool ports.
Each test uses its own fresh tenant.
"""
import re
import time
import uuid

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                   NewTopic, ResourceType)

from conftest import POOL_BOOTSTRAP, kafka_tool
from tenant_env import new_tenant, pool_topics, tenant_gateway  # noqa: F401 (fixtures)

TIMEOUT = 30
POOL_PORT = re.compile(r"(?<![0-9])2909[0-9](?![0-9])")
CLOSING = "closing client connection"
# What a refusal looks like in tool output: the exception class, the code's name, Kafka's
# "not authorized" wording, or the gateway's CLUSTER_AUTHORIZATION_FAILED message (tools that
# print only the message, e.g. kafka-features).
AUTH_ERROR = re.compile(r"ClusterAuthorizationException|CLUSTER_AUTHORIZATION_FAILED|not authorized"
                        r"|cluster administration is not available to tenants", re.I)

_POOL_ADMIN = []


def pool_admin() -> AdminClient:
    """One pool admin for the module: an AdminClient garbage collected while its futures
    are pending never completes them."""
    if not _POOL_ADMIN:
        _POOL_ADMIN.append(AdminClient({"bootstrap.servers": POOL_BOOTSTRAP}))
    return _POOL_ADMIN[0]


def err_of(e: BaseException):
    """The KafkaError inside a KafkaException (or the error itself)."""
    err = e.args[0] if isinstance(e, KafkaException) and e.args else e
    return err if isinstance(err, KafkaError) else None


def failure(future):
    """The KafkaError a future fails with; fails the test if it succeeds."""
    try:
        future.result(timeout=TIMEOUT)
    except KafkaException as e:
        err = err_of(e)
        assert err is not None, f"no KafkaError in {e!r}"
        return err
    raise AssertionError("the request succeeded; it should have been refused")


def props_file(tmp_path, tenant) -> str:
    """A --command-config file with the tenant's SASL settings."""
    p = tmp_path / f"tenant-{uuid.uuid4().hex[:6]}.properties"
    p.write_text(tenant.java_properties())
    return str(p)


def tool(tenant, tmp_path, name, *args, config_flag="--command-config", timeout=120):
    """Runs a Kafka CLI tool as the tenant; returns (exit code, stdout + stderr)."""
    res = kafka_tool(name, "--bootstrap-server", tenant.bootstrap, config_flag, props_file(tmp_path, tenant), *args,
                     timeout=timeout, check=False)
    return res.returncode, res.stdout + res.stderr


def assert_no_pool_leak(tenant, text: str, what: str):
    """Nothing of the pool in what a tenant sees: no pool names of its own topics, no pool ports."""
    assert f"{tenant.id}." not in text, f"{what}: pool name (prefix {tenant.id}.) in output:\n{text[-3000:]}"
    assert not POOL_PORT.search(text), f"{what}: pool port in output:\n{text[-3000:]}"


def wait_pool_topic(pool_name: str, partitions: int = None, timeout: float = TIMEOUT):
    """The pool's metadata of `pool_name` once it exists (with `partitions` partitions if given)."""
    deadline = time.time() + timeout
    md = None
    while time.time() < deadline:
        md = pool_admin().list_topics(topic=pool_name, timeout=10).topics.get(pool_name)
        if md is not None and md.error is None and md.partitions and (
                partitions is None or len(md.partitions) == partitions):
            return md
        time.sleep(0.3)
    raise AssertionError(f"pool topic {pool_name} not there (with {partitions} partitions) after {timeout}s: {md}")


def pool_configs(pool_name: str) -> dict:
    """The pool's describe_configs of a topic: {name: ConfigEntry}."""
    res = ConfigResource(ResourceType.TOPIC, pool_name)
    return pool_admin().describe_configs([res])[res].result(timeout=TIMEOUT)


def wait_pool_config(pool_name: str, name: str, value: str, timeout: float = 10):
    """Waits until the pool describes config `name` of a topic as `value`: an alter is
    acknowledged by the controller before every broker has applied it."""
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = pool_configs(pool_name)[name].value
        if got == value:
            return
        time.sleep(0.3)
    raise AssertionError(f"pool {pool_name}: {name}={got} after {timeout}s, expected {value}")


def assert_pool_replication(pool_name: str):
    md = wait_pool_topic(pool_name)
    rfs = {p.id: len(p.replicas) for p in md.partitions.values()}
    assert set(rfs.values()) == {3}, f"{pool_name}: replicas per partition {rfs}, the pool's factor is 3"
    mir = pool_configs(pool_name)["min.insync.replicas"].value
    assert mir == "2", f"{pool_name}: min.insync.replicas={mir}, the pool's is 2"


def assert_nothing_created(tenant, expected=frozenset()):
    """The tenant's part of the pool holds exactly `expected` (after a moment for stragglers)."""
    time.sleep(1.0)
    got = pool_topics(tenant.prefix)
    assert got == set(expected), f"pool topics of {tenant.id}: {sorted(got)}, expected {sorted(expected)}"


# ============================================================== 1. CreateTopics

def test_create_topics_use_pool_replication(new_tenant, tmp_path):
    """`kafka-topics --create --replication-factor 1` and confluent NewTopic(replication_factor=1)
    both create `<tenant>.<name>` with the pool's replication factor 3 and min.insync.replicas 2
    (also when min.insync.replicas=2 is asked for: it is the pool's and dropped, not refused).
    `kafka-topics --create --replica-assignment 0:1:2` is refused: the tool exits 1 printing
    InvalidReplicaAssignmentException "replica assignments are chosen by the service; leave
    them out"; nothing is created. (confluent-kafka 2.16 cannot send an assignment: its
    NewTopic refuses replica_assignment with "Specifying a default partition count and a
    replica assignment are mutually exclusive" whatever the partition count.)"""
    t = new_tenant()
    rc, out = tool(t, tmp_path, "kafka-topics", "--create", "--topic", "cli-rf1", "--partitions", "2",
                   "--replication-factor", "1")
    assert rc == 0, f"kafka-topics --create --replication-factor 1 failed ({rc}):\n{out}"
    assert_no_pool_leak(t, out, "kafka-topics --create")
    assert_pool_replication(t.pool_name("cli-rf1"))

    admin = t.admin()
    fs = admin.create_topics([NewTopic("ck-rf1", num_partitions=2, replication_factor=1),
                              NewTopic("ck-mir2", num_partitions=1, replication_factor=1,
                                       config={"min.insync.replicas": "2"})], request_timeout=TIMEOUT)
    for name, f in fs.items():
        f.result(timeout=TIMEOUT)
    assert_pool_replication(t.pool_name("ck-rf1"))
    assert_pool_replication(t.pool_name("ck-mir2"))

    rc, out = tool(t, tmp_path, "kafka-topics", "--create", "--topic", "cli-assigned", "--replica-assignment", "1:2:3,2:3:1")
    assert rc != 0, f"kafka-topics --replica-assignment succeeded:\n{out}"
    assert "replica assignment" in out.lower(), f"no mention of replica assignments:\n{out}"
    assert "InvalidReplicaAssignmentException" in out, out
    assert_no_pool_leak(t, out, "kafka-topics --replica-assignment")

    assert_nothing_created(t, {"cli-rf1", "ck-rf1", "ck-mir2"})


ALLOWED_CONFIGS = {
    "retention.ms": "3600000",
    "cleanup.policy": "compact",
    "segment.bytes": "16777216",
    "max.message.bytes": "8388608",
}


def test_create_topic_allowed_configs(new_tenant, tmp_path):
    """Allowed configs inside their bounds are applied in the pool; min.insync.replicas=2 (the
    pool's) is accepted. Once with confluent, once with `kafka-topics --config`."""
    t = new_tenant()
    admin = t.admin()
    conf = dict(ALLOWED_CONFIGS, **{"min.insync.replicas": "2"})
    fs = admin.create_topics([NewTopic("configured", num_partitions=1, config=conf)], request_timeout=TIMEOUT)
    fs["configured"].result(timeout=TIMEOUT)
    wait_pool_topic(t.pool_name("configured"))
    got = pool_configs(t.pool_name("configured"))
    for k, v in conf.items():
        assert got[k].value == v, f"pool {t.pool_name('configured')}: {k}={got[k].value}, asked {v}"

    args = [a for k, v in ALLOWED_CONFIGS.items() for a in ("--config", f"{k}={v}")]
    rc, out = tool(t, tmp_path, "kafka-topics", "--create", "--topic", "cli-configured", "--partitions", "1", *args)
    assert rc == 0, f"kafka-topics --create --config failed ({rc}):\n{out}"
    wait_pool_topic(t.pool_name("cli-configured"))
    got = pool_configs(t.pool_name("cli-configured"))
    for k, v in ALLOWED_CONFIGS.items():
        assert got[k].value == v, f"pool {t.pool_name('cli-configured')}: {k}={got[k].value}, asked {v}"


REFUSED_CONFIGS = {
    "unclean.leader.election.enable": "true",
    "segment.bytes": "1024",
    "max.message.bytes": "9000000",
    "min.insync.replicas": "1",
    "follower.replication.throttled.replicas": "*",
}


def test_create_topic_refused_configs(new_tenant, tmp_path):
    """Each refused config (not on the list, or out of bounds) fails its topic with
    POLICY_VIOLATION and a message naming the config; nothing is created. kafka-topics prints
    PolicyViolationException "config unclean.leader.election.enable: not allowed; allowed: ..."
    and exits 1."""
    t = new_tenant()
    admin = t.admin()
    names = {k: f"bad-{i}" for i, k in enumerate(REFUSED_CONFIGS)}
    fs = admin.create_topics([NewTopic(names[k], num_partitions=1, config={k: v}) for k, v in REFUSED_CONFIGS.items()],
                             request_timeout=TIMEOUT)
    problems = []
    for k, name in names.items():
        try:
            fs[name].result(timeout=TIMEOUT)
            problems.append(f"{k}={REFUSED_CONFIGS[k]}: topic created")
            continue
        except KafkaException as e:
            err = err_of(e)
        if err is None or err.code() != KafkaError.POLICY_VIOLATION or k not in err.str():
            problems.append(f"{k}={REFUSED_CONFIGS[k]}: got {err and err.name()} {err and err.str()!r}")
        else:
            assert_no_pool_leak(t, err.str(), k)
    assert not problems, "refused configs:\n" + "\n".join(problems)

    rc, out = tool(t, tmp_path, "kafka-topics", "--create", "--topic", "cli-bad", "--config",
                   "unclean.leader.election.enable=true")
    assert rc != 0, f"kafka-topics with unclean.leader.election.enable succeeded:\n{out}"
    assert "PolicyViolationException" in out and "unclean.leader.election.enable" in out, out
    assert_no_pool_leak(t, out, "kafka-topics --config unclean.leader.election.enable")
    assert_nothing_created(t)


def test_create_topic_names(new_tenant):
    """`__x`, `a b`, and names over 249 - len(tenant) - 1 characters are refused with
    INVALID_TOPIC_EXCEPTION (and nothing is created); the longest allowed name works and is
    the longest name Kafka allows in the pool (249 characters)."""
    t = new_tenant()
    admin = t.admin()
    longest = 249 - len(t.id) - 1
    ok = "n" * longest
    bad = ["__x", "a b", "n" * (longest + 1), "m" * (250 - len(t.id))]
    fs = admin.create_topics([NewTopic(n, num_partitions=1) for n in bad] + [NewTopic(ok, num_partitions=1)],
                             request_timeout=TIMEOUT)
    problems = []
    for n in bad:
        try:
            fs[n].result(timeout=TIMEOUT)
            problems.append(f"{n[:20]}... ({len(n)} chars): created")
        except KafkaException as e:
            err = err_of(e)
            if err is None or err.code() != KafkaError.TOPIC_EXCEPTION:
                problems.append(f"{n[:20]} ({len(n)} chars): {err and err.name()} {err and err.str()!r}")
    try:
        fs[ok].result(timeout=TIMEOUT)
    except KafkaException as e:
        problems.append(f"longest allowed name ({longest} chars) refused: {e}")
    assert not problems, "topic names:\n" + "\n".join(problems)
    assert len(t.pool_name(ok)) == 249
    wait_pool_topic(t.pool_name(ok))
    assert_nothing_created(t, {ok})


def test_create_topics_partial_success(new_tenant):
    """One CreateTopics request with a good topic and one with a refused config: the good one
    is created in the pool, the bad one fails with POLICY_VIOLATION."""
    t = new_tenant()
    admin = t.admin()
    fs = admin.create_topics([NewTopic("good", num_partitions=2, config={"retention.ms": "7200000"}),
                              NewTopic("bad", num_partitions=2, config={"segment.bytes": "1024"})],
                             request_timeout=TIMEOUT)
    fs["good"].result(timeout=TIMEOUT)
    err = failure(fs["bad"])
    assert err.code() == KafkaError.POLICY_VIOLATION and "segment.bytes" in err.str(), f"{err.name()}: {err.str()}"
    md = wait_pool_topic(t.pool_name("good"), partitions=2)
    assert len(md.partitions) == 2
    assert pool_configs(t.pool_name("good"))["retention.ms"].value == "7200000"
    assert_nothing_created(t, {"good"})


# ============================================================== 2. Alter configs

def test_alter_topic_configs(new_tenant, tmp_path):
    """IncrementalAlterConfigs of a tenant topic: retention.ms is applied (seen in the pool);
    cleanup.policy is refused with INVALID_CONFIG "config cleanup.policy: can only be set when
    the topic is created"; a config off the list is refused naming it; the pool keeps its
    values. `kafka-configs --alter` of a refused config exits 1 printing
    InvalidConfigurationException with the same message. `kafka-configs --describe` names the
    topic by the tenant's name only."""
    t = new_tenant()
    admin = t.admin()
    admin.create_topics([NewTopic("conf", num_partitions=1)], request_timeout=TIMEOUT)["conf"].result(timeout=TIMEOUT)
    pool_name = t.pool_name("conf")
    wait_pool_topic(pool_name)

    def alter(name, value):
        res = ConfigResource(ResourceType.TOPIC, "conf", incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
        return admin.incremental_alter_configs([res], request_timeout=TIMEOUT)[res]

    alter("retention.ms", "5400000").result(timeout=TIMEOUT)
    wait_pool_config(pool_name, "retention.ms", "5400000")

    err = failure(alter("cleanup.policy", "compact"))
    assert err.code() == KafkaError.INVALID_CONFIG, f"{err.name()}: {err.str()}"
    assert "cleanup.policy" in err.str() and "only" in err.str() and "created" in err.str(), err.str()
    err = failure(alter("unclean.leader.election.enable", "true"))
    assert err.code() == KafkaError.INVALID_CONFIG, f"{err.name()}: {err.str()}"
    assert "unclean.leader.election.enable" in err.str(), err.str()
    got = pool_configs(pool_name)
    assert got["cleanup.policy"].value == "delete", got["cleanup.policy"]
    assert got["unclean.leader.election.enable"].value == "false", got["unclean.leader.election.enable"]

    rc, out = tool(t, tmp_path, "kafka-configs", "--alter", "--entity-type", "topics", "--entity-name", "conf",
                   "--add-config", "message.downconversion.enable=false")
    assert rc != 0, f"kafka-configs --alter of a refused config succeeded:\n{out}"
    assert "InvalidConfigurationException" in out and "message.downconversion.enable" in out, out
    assert_no_pool_leak(t, out, "kafka-configs --alter")

    rc, out = tool(t, tmp_path, "kafka-configs", "--alter", "--entity-type", "topics", "--entity-name", "conf",
                   "--add-config", "retention.ms=1800000")
    assert rc == 0, f"kafka-configs --alter retention.ms failed ({rc}):\n{out}"
    wait_pool_config(pool_name, "retention.ms", "1800000")

    rc, out = tool(t, tmp_path, "kafka-configs", "--describe", "--entity-type", "topics", "--entity-name", "conf")
    assert rc == 0, f"kafka-configs --describe failed ({rc}):\n{out}"
    assert "topic conf " in out and "retention.ms=1800000" in out, out
    assert_no_pool_leak(t, out, "kafka-configs --describe")


# ============================================================== 3. CreatePartitions

def test_create_partitions(new_tenant, tmp_path):
    """More partitions for a tenant topic: applied in the pool (confluent and
    `kafka-topics --alter --partitions`). With explicit assignments: INVALID_REPLICA_ASSIGNMENT,
    the pool's count unchanged."""
    t = new_tenant()
    admin = t.admin()
    admin.create_topics([NewTopic("grow", num_partitions=1)], request_timeout=TIMEOUT)["grow"].result(timeout=TIMEOUT)
    pool_name = t.pool_name("grow")
    wait_pool_topic(pool_name, partitions=1)

    admin.create_partitions([NewPartitions("grow", 3)], request_timeout=TIMEOUT)["grow"].result(timeout=TIMEOUT)
    wait_pool_topic(pool_name, partitions=3)

    rc, out = tool(t, tmp_path, "kafka-topics", "--alter", "--topic", "grow", "--partitions", "4")
    assert rc == 0, f"kafka-topics --alter --partitions failed ({rc}):\n{out}"
    wait_pool_topic(pool_name, partitions=4)

    fs = admin.create_partitions([NewPartitions("grow", 5, replica_assignment=[[1, 2, 3]])], request_timeout=TIMEOUT)
    err = failure(fs["grow"])
    assert err.code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, f"{err.name()}: {err.str()}"
    rc, out = tool(t, tmp_path, "kafka-topics", "--alter", "--topic", "grow", "--partitions", "5",
                   "--replica-assignment", "1:2:3,2:3:1,3:1:2,1:3:2,2:1:3")
    assert rc != 0, f"kafka-topics --alter --replica-assignment succeeded:\n{out}"
    assert "replica assignment" in out.lower(), out
    assert_no_pool_leak(t, out, "kafka-topics --alter --replica-assignment")
    time.sleep(1.0)
    md = wait_pool_topic(pool_name)
    assert len(md.partitions) == 4, f"pool {pool_name} has {len(md.partitions)} partitions after refused growth"


# ============================================================== 4. Cluster administration

SCRAM_USER = f"scram-{uuid.uuid4().hex[:8]}"

# (tool, args, config flag): what a tenant may not do. See the test docstring for outputs.
CLUSTER_ADMIN = {
    "acls-list": ("kafka-acls", ["--list"], "--command-config"),
    "acls-add": ("kafka-acls", ["--add", "--allow-principal", "User:x", "--operation", "Read", "--topic", "orders"],
                 "--command-config"),
    "reassign-list": ("kafka-reassign-partitions", ["--list"], "--command-config"),
    "leader-election": ("kafka-leader-election", ["--election-type", "preferred", "--all-topic-partitions"],
                        "--admin.config"),
    "log-dirs": ("kafka-log-dirs", ["--describe"], "--command-config"),
    "delegation-tokens": ("kafka-delegation-tokens", ["--describe"], "--command-config"),
    "scram": ("kafka-configs", ["--alter", "--entity-type", "users", "--entity-name", SCRAM_USER,
                                "--add-config", "SCRAM-SHA-256=[password=p]"], "--command-config"),
    "broker-configs": ("kafka-configs", ["--describe", "--entity-type", "brokers"], "--command-config"),
    "features-upgrade": ("kafka-features", ["upgrade", "--feature", "transaction.version=2"], "--command-config"),
}


def test_cluster_administration_refused(new_tenant, tmp_path):
    """Each cluster administration tool exits non-zero with an authorization error and the
    gateway closes no connection for it; no output names a pool port. What the tools print
    (Kafka 4.1.1 tools, stack traces left out):

    - kafka-acls --list / --add: "Error while executing ACL command:
      org.apache.kafka.common.errors.ClusterAuthorizationException: cluster administration is
      not available to tenants" (--add first prints the ACLs it is adding).
    - kafka-reassign-partitions --list: "Error: ...ClusterAuthorizationException: cluster
      administration is not available to tenants".
    - kafka-leader-election --election-type preferred --all-topic-partitions: "Not authorized
      to perform leader election" (AdminCommandFailedException).
    - kafka-log-dirs --describe: "Querying brokers for log directories information" then
      "...ClusterAuthorizationException: Cluster authorization failed." (DescribeLogDirs v3+
      carries no message).
    - kafka-delegation-tokens --describe: "Calling describe token operation for current user."
      then "...ClusterAuthorizationException: Cluster authorization failed.".
    - kafka-configs --alter --entity-type users ... SCRAM-SHA-256=[password=p]: "Error while
      executing config command ... ClusterAuthorizationException: cluster administration is not
      available to tenants".
    - kafka-configs --describe --entity-type brokers: "Dynamic configs for broker 1 are:" then
      "...ClusterAuthorizationException: only topic configs are available to tenants".
    - kafka-features upgrade --feature transaction.version=2: "Could not upgrade
      transaction.version to 2. cluster administration is not available to tenants" and
      "1 out of 1 operation(s) failed." (only the message, no exception class).
    """
    t = new_tenant()
    gw = t.gateway
    log_before = len(gw.log())
    problems, outputs = [], {}
    for key, (name, args, flag) in CLUSTER_ADMIN.items():
        rc, out = tool(t, tmp_path, name, *args, config_flag=flag)
        outputs[key] = out
        if rc == 0:
            problems.append(f"{key}: exit 0")
        if not AUTH_ERROR.search(out):
            problems.append(f"{key}: no authorization error in output")
        if POOL_PORT.search(out):
            problems.append(f"{key}: pool port in output")
    closed = [l for l in gw.log()[log_before:].splitlines() if CLOSING in l]
    report = "\n".join(f"--- {k} ---\n{v[-1500:]}" for k, v in outputs.items())
    assert not problems, "\n".join(problems) + "\n" + report
    assert not closed, "the gateway closed connections:\n" + "\n".join(closed) + "\n" + report
    # Nothing reached the pool: no SCRAM credential under the name or the tenant's prefix.
    users = [SCRAM_USER, t.pool_name(SCRAM_USER)]
    for user, f in pool_admin().describe_user_scram_credentials(users).items():
        try:
            desc = f.result(timeout=TIMEOUT)
            raise AssertionError(f"the pool has SCRAM credentials for {user}: {desc}")
        except KafkaException as e:
            err = err_of(e)
            assert err is not None and err.code() == KafkaError.RESOURCE_NOT_FOUND, f"{user}: {e}"


def test_features_describe(new_tenant, tmp_path):
    """`kafka-features describe` reads the finalized features from ApiVersions, which every
    client needs: a tenant sees them (they describe the protocol, e.g. "Feature:
    metadata.version SupportedMinVersion: 3.3-IV3 SupportedMaxVersion: 4.1-IV1
    FinalizedVersionLevel: 4.1-IV1 Epoch: N"), and no pool host or port."""
    t = new_tenant()
    rc, out = tool(t, tmp_path, "kafka-features", "describe")
    assert rc == 0, f"kafka-features describe failed ({rc}):\n{out}"
    lines = [l for l in out.splitlines() if l.strip()]
    assert lines and all(l.startswith("Feature: ") for l in lines), out
    assert any(l.startswith("Feature: metadata.version\t") for l in lines), out
    assert_no_pool_leak(t, out, "kafka-features describe")


# ============================================================== 5. Client quotas

def pool_quota(entity_type: str, name: str, config: str):
    """Sets (`producer_byte_rate=N`) or deletes (`producer_byte_rate`) a quota of the pool."""
    op = "--add-config" if "=" in config else "--delete-config"
    return kafka_tool("kafka-configs", "--bootstrap-server", POOL_BOOTSTRAP, "--alter", "--entity-type", entity_type,
                      "--entity-name", name, op, config, check=False)


def test_client_quotas(new_tenant, tmp_path):
    """DescribeClientQuotas shows a tenant nothing of the pool: the pool first gets quotas of
    its own (a user and a client id) so there is something to leak, then
    `kafka-configs --describe --entity-type clients/users` as the tenant succeeds with empty
    output (for users the tool also sends DescribeUserScramCredentials, answered "no
    credentials": tenants authenticate with tokens). A tenant's AlterClientQuotas sets a
    sub-quota of its own (test_client_quotas.py) and never reaches the pool's quotas."""
    t = new_tenant()
    other = f"leak-{uuid.uuid4().hex[:6]}"
    for entity in ("users", "clients"):
        res = pool_quota(entity, other, "producer_byte_rate=1048576")
        assert res.returncode == 0, f"pool quota setup failed:\n{res.stdout}\n{res.stderr}"
    try:
        for entity in ("users", "clients"):
            res = kafka_tool("kafka-configs", "--bootstrap-server", POOL_BOOTSTRAP, "--describe", "--entity-type", entity)
            assert other in res.stdout, f"the pool does not show its {entity} quota:\n{res.stdout}"
        rc, out = tool(t, tmp_path, "kafka-configs", "--describe", "--entity-type", "clients")
        assert rc == 0, f"kafka-configs --describe --entity-type clients failed ({rc}):\n{out}"
        assert other not in out and "byte_rate" not in out, f"pool quotas shown to a tenant:\n{out}"
        assert_no_pool_leak(t, out, "kafka-configs --describe --entity-type clients")
        rc, out = tool(t, tmp_path, "kafka-configs", "--describe", "--entity-type", "users")
        assert rc == 0, f"kafka-configs --describe --entity-type users failed ({rc}):\n{out}"
        assert other not in out and "byte_rate" not in out, f"pool quotas shown to a tenant:\n{out}"
        assert_no_pool_leak(t, out, "kafka-configs --describe --entity-type users")
        rc, out = tool(t, tmp_path, "kafka-configs", "--alter", "--entity-type", "users", "--entity-name", "app",
                       "--add-config", "producer_byte_rate=1024")
        assert rc == 0, f"tenant AlterClientQuotas failed ({rc}):\n{out}"
        assert_no_pool_leak(t, out, "kafka-configs --alter --entity-type users")
        res = kafka_tool("kafka-configs", "--bootstrap-server", POOL_BOOTSTRAP, "--describe", "--entity-type", "users")
        assert "'app'" not in res.stdout and t.id not in res.stdout, f"the tenant's quota reached the pool:\n{res.stdout}"
    finally:
        for entity in ("users", "clients"):
            pool_quota(entity, other, "producer_byte_rate")
