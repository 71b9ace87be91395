// Admin client checks. First argument is the command:
//   leaders --topic T            "part <p> leader <id> replicas <a,b,c> isr <a,b,c>"
//   rotate-leaders --topic T     reorders each partition's replicas so the preferred leader is the
//                                replica after the current leader, runs a preferred election and
//                                waits until it took effect: "moved <p> <old> <new>"
//   describe-producers --topic T "producer <p> <producerId> <epoch> <lastSequence>"
//   group-offsets --group G      "offset <p> <offset>"
//   describe-group --group G     "group <state> <type> <members>" and "member <clientId> <p,p>"
//   cluster                      "node <id> <host> <port>" and "controller <id>"
//   topics                       "topic <name>" per topic listed (internal ones too)
//   groups                       "groupid <id> <type>" per group listed
//   topic-id --id U --op describe|delete
//                                by topic id: "topicid <name> <partitions>" / "deleted", or "error <e>"
// then "done".

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;

public class AdminCheck {
    static final long T = 30;

    static TopicDescription describe(Admin admin, String topic) throws Exception {
        return admin.describeTopics(List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS).get(topic);
    }

    static List<Integer> ids(List<Node> nodes) {
        List<Integer> r = new ArrayList<>();
        for (Node n : nodes) r.add(n.id());
        return r;
    }

    public static void main(String[] argv) throws Exception {
        String cmd = argv[0];
        Args a = new Args(java.util.Arrays.copyOfRange(argv, 1, argv.length));
        Properties p = new Properties();
        p.put("bootstrap.servers", a.get("bootstrap"));
        p.put("request.timeout.ms", "20000");
        p.put("default.api.timeout.ms", "30000");
        p.putAll(a.props());
        try (Admin admin = Admin.create(p)) {
            switch (cmd) {
                case "leaders": {
                    for (TopicPartitionInfo i : describe(admin, a.get("topic")).partitions()) {
                        Out.line("part " + i.partition() + " leader " + (i.leader() == null ? -1 : i.leader().id())
                                + " replicas " + Out.csv(ids(i.replicas())) + " isr " + Out.csv(ids(i.isr())));
                    }
                    break;
                }
                case "rotate-leaders": {
                    String topic = a.get("topic");
                    Map<TopicPartition, Optional<NewPartitionReassignment>> plan = new HashMap<>();
                    Map<Integer, Integer> oldLeader = new HashMap<>();
                    Map<Integer, Integer> newLeader = new HashMap<>();
                    for (TopicPartitionInfo i : describe(admin, topic).partitions()) {
                        List<Integer> reps = ids(i.replicas());
                        int leader = i.leader().id();
                        int next = reps.get((reps.indexOf(leader) + 1) % reps.size());
                        List<Integer> order = new ArrayList<>();
                        order.add(next);
                        for (int r : reps) if (r != next) order.add(r);
                        plan.put(new TopicPartition(topic, i.partition()), Optional.of(new NewPartitionReassignment(order)));
                        oldLeader.put(i.partition(), leader);
                        newLeader.put(i.partition(), next);
                    }
                    admin.alterPartitionReassignments(plan).all().get(T, TimeUnit.SECONDS);
                    long deadline = System.currentTimeMillis() + 60000;
                    while (!admin.listPartitionReassignments(plan.keySet()).reassignments().get(T, TimeUnit.SECONDS).isEmpty()) {
                        if (System.currentTimeMillis() > deadline) throw new RuntimeException("reassignment did not finish");
                        Thread.sleep(200);
                    }
                    while (true) {
                        try {
                            admin.electLeaders(ElectionType.PREFERRED, plan.keySet()).all().get(T, TimeUnit.SECONDS);
                        } catch (Exception e) {
                            Out.line("elect " + Out.err(e));
                        }
                        boolean done = true;
                        for (TopicPartitionInfo i : describe(admin, topic).partitions()) {
                            if (i.leader() == null || i.leader().id() != newLeader.get(i.partition())) done = false;
                        }
                        if (done) break;
                        if (System.currentTimeMillis() > deadline) throw new RuntimeException("preferred election did not take effect");
                        Thread.sleep(500);
                    }
                    for (int part : new TreeSet<>(oldLeader.keySet())) {
                        Out.line("moved " + part + " " + oldLeader.get(part) + " " + newLeader.get(part));
                    }
                    break;
                }
                case "describe-producers": {
                    String topic = a.get("topic");
                    List<TopicPartition> tps = new ArrayList<>();
                    for (TopicPartitionInfo i : describe(admin, topic).partitions()) tps.add(new TopicPartition(topic, i.partition()));
                    var res = admin.describeProducers(tps).all().get(T, TimeUnit.SECONDS);
                    for (var e : res.entrySet()) {
                        for (ProducerState s : e.getValue().activeProducers()) {
                            Out.line("producer " + e.getKey().partition() + " " + s.producerId() + " " + s.producerEpoch() + " " + s.lastSequence());
                        }
                    }
                    break;
                }
                case "group-offsets": {
                    Map<TopicPartition, OffsetAndMetadata> offs =
                            admin.listConsumerGroupOffsets(a.get("group")).partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS);
                    for (var e : offs.entrySet()) Out.line("offset " + e.getKey().partition() + " " + e.getValue().offset());
                    break;
                }
                case "describe-group": {
                    String g = a.get("group");
                    ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(g)).all().get(T, TimeUnit.SECONDS).get(g);
                    Out.line("group " + d.groupState() + " " + d.type() + " " + d.members().size());
                    for (MemberDescription m : d.members()) {
                        Set<Integer> s = new TreeSet<>();
                        for (TopicPartition tp : m.assignment().topicPartitions()) s.add(tp.partition());
                        Out.line("member " + m.clientId() + " " + Out.csv(s));
                    }
                    break;
                }
                case "topics": {
                    var opts = new org.apache.kafka.clients.admin.ListTopicsOptions().listInternal(true);
                    for (String t : new TreeSet<>(admin.listTopics(opts).names().get(T, TimeUnit.SECONDS))) Out.line("topic " + t);
                    break;
                }
                case "groups": {
                    for (var g : admin.listGroups().all().get(T, TimeUnit.SECONDS)) {
                        Out.line("groupid " + g.groupId() + " " + g.type().map(Object::toString).orElse("-"));
                    }
                    break;
                }
                case "cluster": {
                    DescribeClusterResult r = admin.describeCluster();
                    for (Node n : r.nodes().get(T, TimeUnit.SECONDS)) Out.line("node " + n.id() + " " + n.host() + " " + n.port());
                    Out.line("controller " + r.controller().get(T, TimeUnit.SECONDS).id());
                    break;
                }
                case "topic-id": {
                    var id = org.apache.kafka.common.Uuid.fromString(a.get("id"));
                    var ids = org.apache.kafka.common.TopicCollection.ofTopicIds(List.of(id));
                    try {
                        if (a.get("op").equals("delete")) {
                            admin.deleteTopics(ids).all().get(T, TimeUnit.SECONDS);
                            Out.line("deleted");
                        } else {
                            TopicDescription d = admin.describeTopics(ids).allTopicIds().get(T, TimeUnit.SECONDS).get(id);
                            Out.line("topicid " + d.name() + " " + d.partitions().size());
                        }
                    } catch (Exception e) {
                        Out.line("error " + Out.err(e));
                    }
                    break;
                }
                case "create-once": {
                    // One CreateTopics per topic, without the admin client's retries on
                    // THROTTLING_QUOTA_EXCEEDED (KIP-599), so a refusal is seen as it comes.
                    int partitions = Integer.parseInt(a.get("partitions"));
                    var opts = new org.apache.kafka.clients.admin.CreateTopicsOptions().retryOnQuotaViolation(false);
                    for (String name : a.get("topics").split(",")) {
                        var t = new org.apache.kafka.clients.admin.NewTopic(name, Optional.of(partitions), Optional.empty());
                        try {
                            admin.createTopics(List.of(t), opts).all().get(T, TimeUnit.SECONDS);
                            Out.line("created " + name);
                        } catch (Exception e) {
                            Throwable c = e.getCause() == null ? e : e.getCause();
                            String extra = c instanceof org.apache.kafka.common.errors.ThrottlingQuotaExceededException q
                                    ? " throttle_ms=" + q.throttleTimeMs() : "";
                            Out.line("refused " + name + " " + c.getClass().getSimpleName() + extra + " " + c.getMessage());
                        }
                    }
                    break;
                }
                default:
                    throw new IllegalArgumentException("unknown command " + cmd);
            }
        }
        Out.line("done");
    }
}
