// franzcheck exercises a Kafka endpoint (the sluice gateway, or the pool directly)
// with franz-go and prints one JSON summary on stdout for tests/test_franz_go.py.
//
//	franzcheck roundtrip -brokers B -topic T -n N
//	franzcheck group     -brokers B -topic T -group G -protocol classic|consumer
//	franzcheck txn       -brokers B -topic T -txnid ID
//
// Every subcommand also takes -sasl-plain-user U -sasl-plain-pass P (SASL/PLAIN over
// plaintext, e.g. a sluice tenant token as the password).
//
// Payload i of a run with prefix P is "P-%06d-md5hex(P+i)", the same as
// tests/clientlib.py make_payloads, so the test recomputes the expected checksums
// itself. Errors go to stderr and exit non-zero.
package main

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "franzcheck: "+format+"\n", args...)
	os.Exit(1)
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func payloads(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		sum := md5.Sum([]byte(prefix + strconv.Itoa(i)))
		out[i] = []byte(fmt.Sprintf("%s-%06d-%s", prefix, i, hex.EncodeToString(sum[:])))
	}
	return out
}

func shaSorted(vals [][]byte) string {
	s := make([]string, len(vals))
	for i, v := range vals {
		s[i] = string(v)
	}
	sort.Strings(s)
	h := sha256.New()
	for _, v := range s {
		h.Write([]byte(v))
		h.Write([]byte("\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

type broker struct {
	ID   int32  `json:"id"`
	Host string `json:"host"`
	Port int32  `json:"port"`
}

// SASL/PLAIN credentials shared by every client of a run (empty user: no SASL).
var saslUser, saslPass string

// commonFlags registers the flags every subcommand takes.
func commonFlags(fl *flag.FlagSet) {
	fl.StringVar(&saslUser, "sasl-plain-user", "", "SASL/PLAIN user name (enables SASL)")
	fl.StringVar(&saslPass, "sasl-plain-pass", "", "SASL/PLAIN password")
}

func newClient(brokers string, opts ...kgo.Opt) *kgo.Client {
	base := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.RequestTimeoutOverhead(20 * time.Second),
		kgo.RetryTimeout(60 * time.Second),
	}
	if saslUser != "" {
		base = append(base, kgo.SASL(plain.Auth{User: saslUser, Pass: saslPass}.AsMechanism()))
	}
	if os.Getenv("FRANZCHECK_DEBUG") != "" {
		base = append(base, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, func() string { return time.Now().Format("15:04:05.000 ") })))
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	must(err, "new client")
	return cl
}

// createTopic creates the topic with RF 3 and waits until every partition has a leader.
func createTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32) []broker {
	_, err := adm.CreateTopic(ctx, partitions, 3, nil, topic)
	must(err, "create topic "+topic)
	deadline := time.Now().Add(60 * time.Second)
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			td, ok := md.Topics[topic]
			if ok && td.Err == nil && len(td.Partitions) == int(partitions) {
				ready := true
				for _, p := range td.Partitions {
					if p.Leader < 0 || p.Err != nil {
						ready = false
					}
				}
				if ready {
					var bs []broker
					for _, b := range md.Brokers {
						bs = append(bs, broker{b.NodeID, b.Host, b.Port})
					}
					return bs
				}
			}
		}
		if time.Now().After(deadline) {
			fail("topic %s not ready: %v", topic, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func produceSync(ctx context.Context, cl *kgo.Client, topic string, vals [][]byte) map[int32]int {
	recs := make([]*kgo.Record, len(vals))
	for i, v := range vals {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i%7)), Value: v}
	}
	res := cl.ProduceSync(ctx, recs...)
	must(res.FirstErr(), "produce")
	parts := map[int32]int{}
	for _, r := range res {
		parts[r.Record.Partition]++
	}
	return parts
}

// readAll consumes the topic from the start with a direct (group-less) consumer until
// n records arrived, then keeps polling for `linger` to catch anything extra.
func readAll(ctx context.Context, brokers, topic string, n int, linger time.Duration, opts ...kgo.Opt) ([]*kgo.Record, error) {
	cl := newClient(brokers, append([]kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)...)
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(60 * time.Second)
	var lingerUntil time.Time
	for {
		if len(out) >= n && lingerUntil.IsZero() {
			lingerUntil = time.Now().Add(linger)
		}
		if !lingerUntil.IsZero() && time.Now().After(lingerUntil) {
			return out, nil
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("read %d of %d records", len(out), n)
		}
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if err != context.DeadlineExceeded && err != context.Canceled {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return out, ferr
		}
		out = append(out, fs.Records()...)
	}
}

func values(recs []*kgo.Record) [][]byte {
	v := make([][]byte, len(recs))
	for i, r := range recs {
		v[i] = r.Value
	}
	return v
}

func emit(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	must(enc.Encode(v), "encode")
}

func cmdRoundtrip(args []string) {
	fl := flag.NewFlagSet("roundtrip", flag.ExitOnError)
	commonFlags(fl)
	brokers := fl.String("brokers", "", "bootstrap")
	topic := fl.String("topic", "", "topic")
	n := fl.Int("n", 1000, "records")
	fl.Parse(args)
	ctx := context.Background()

	cl := newClient(*brokers, kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.RequiredAcks(kgo.AllISRAcks()))
	defer cl.Close()
	adm := kadm.NewClient(cl)
	bs := createTopic(ctx, adm, *topic, 3)

	vals := payloads(*topic, *n)
	parts := produceSync(ctx, cl, *topic, vals)
	recs, err := readAll(ctx, *brokers, *topic, *n, time.Second)
	must(err, "consume")

	keyParts := map[string]map[int32]bool{}
	consumedParts := map[int32]int{}
	for _, r := range recs {
		if keyParts[string(r.Key)] == nil {
			keyParts[string(r.Key)] = map[int32]bool{}
		}
		keyParts[string(r.Key)][r.Partition] = true
		consumedParts[r.Partition]++
	}
	consistent := true
	for _, ps := range keyParts {
		if len(ps) != 1 {
			consistent = false
		}
	}
	ends, err := adm.ListEndOffsets(ctx, *topic)
	must(err, "list end offsets")
	endSum := int64(0)
	ends.Each(func(o kadm.ListedOffset) { endSum += o.Offset })
	emit(map[string]any{
		"brokers":         bs,
		"produced":        len(vals),
		"produced_parts":  parts,
		"consumed":        len(recs),
		"consumed_parts":  consumedParts,
		"sha256":          shaSorted(values(recs)),
		"keys_consistent": consistent,
		"end_offsets_sum": endSum,
		"distinct_keys":   len(keyParts),
	})
}

// member is one group consumer driven by the main goroutine's poll loop.
type member struct {
	name string
	cl   *kgo.Client
	mu   sync.Mutex
	own  map[int32]bool
}

func (m *member) owned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ps []int32
	for p := range m.own {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

func cmdGroup(args []string) {
	fl := flag.NewFlagSet("group", flag.ExitOnError)
	commonFlags(fl)
	brokers := fl.String("brokers", "", "bootstrap")
	topic := fl.String("topic", "", "topic")
	group := fl.String("group", "", "group")
	protocol := fl.String("protocol", "classic", "classic or consumer (KIP-848)")
	fl.Parse(args)
	ctx := context.Background()
	const partitions = 4

	// Records go round-robin over the partitions (explicit partition numbers), so
	// every member of the group has records to read whatever it was assigned.
	prod := newClient(*brokers, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer prod.Close()
	spread := func(vals [][]byte) {
		recs := make([]*kgo.Record, len(vals))
		for i, v := range vals {
			recs[i] = &kgo.Record{Topic: *topic, Partition: int32(i % partitions), Value: v}
		}
		must(prod.ProduceSync(ctx, recs...).FirstErr(), "produce")
	}
	adm := kadm.NewClient(prod)
	createTopic(ctx, adm, *topic, partitions)

	consumed := map[string]string{} // value -> member
	var dupes []string
	newMember := func(name string) *member {
		m := &member{name: name, own: map[int32]bool{}}
		opts := []kgo.Opt{
			kgo.ConsumerGroup(*group),
			kgo.ConsumeTopics(*topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				m.mu.Lock()
				for _, p := range a[*topic] {
					m.own[p] = true
				}
				m.mu.Unlock()
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
				m.mu.Lock()
				for _, p := range r[*topic] {
					delete(m.own, p)
				}
				m.mu.Unlock()
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
				m.mu.Lock()
				for _, p := range l[*topic] {
					delete(m.own, p)
				}
				m.mu.Unlock()
			}),
		}
		if *protocol == "consumer" {
			opts = append(opts, kgo.ServerSideBalancer(), kgo.Balancers(kgo.RangeBalancer()))
		} else {
			opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.HeartbeatInterval(500*time.Millisecond), kgo.SessionTimeout(10*time.Second))
		}
		m.cl = newClient(*brokers, opts...)
		return m
	}
	pump := func(ms ...*member) {
		for _, m := range ms {
			pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			fs := m.cl.PollFetches(pctx)
			cancel()
			fs.EachError(func(t string, p int32, err error) {
				if err != context.DeadlineExceeded && err != context.Canceled {
					fail("%s fetch %s/%d: %v", m.name, t, p, err)
				}
			})
			recs := fs.Records()
			for _, r := range recs {
				if prev, ok := consumed[string(r.Value)]; ok {
					dupes = append(dupes, fmt.Sprintf("%s also by %s", r.Value, prev))
				}
				consumed[string(r.Value)] = m.name
			}
			if len(recs) > 0 {
				// Rebalances are blocked until AllowRebalance, so committing here
				// means a partition changes owner only at a committed position.
				must(m.cl.CommitRecords(ctx, recs...), m.name+" commit")
			}
			m.cl.AllowRebalance()
		}
	}
	until := func(what string, cond func() bool, ms ...*member) {
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				var st []string
				for _, m := range ms {
					st = append(st, fmt.Sprintf("%s=%v", m.name, m.owned()))
				}
				fail("timed out waiting for %s: %s consumed=%d", what, strings.Join(st, " "), len(consumed))
			}
			pump(ms...)
		}
	}

	batch1 := payloads(*topic+"-a", 200)
	spread(batch1)
	c1 := newMember("c1")
	until("c1 alone", func() bool { return len(c1.owned()) == partitions && len(consumed) >= len(batch1) }, c1)

	c2 := newMember("c2")
	until("split", func() bool {
		a, b := c1.owned(), c2.owned()
		if len(a) == 0 || len(b) == 0 || len(a)+len(b) != partitions {
			return false
		}
		seen := map[int32]bool{}
		for _, p := range append(a, b...) {
			seen[p] = true
		}
		return len(seen) == partitions
	}, c1, c2)
	split := map[string][]int32{"c1": c1.owned(), "c2": c2.owned()}

	var describedType string
	var describedMembers int
	if *protocol == "consumer" {
		dg, err := adm.DescribeConsumerGroups(ctx, *group)
		must(err, "describe consumer group")
		g := dg[*group]
		must(g.Err, "describe consumer group")
		describedType = "consumer"
		describedMembers = len(g.Members)
	} else {
		dg, err := adm.DescribeGroups(ctx, *group)
		must(err, "describe group")
		g := dg[*group]
		must(g.Err, "describe group")
		describedType = "classic:" + g.ProtocolType + ":" + g.Protocol
		describedMembers = len(g.Members)
	}

	batch2 := payloads(*topic+"-b", 400)
	spread(batch2)
	until("batch 2", func() bool { return len(consumed) >= len(batch1)+len(batch2) }, c1, c2)
	byMember2 := map[string]int{}
	for _, v := range batch2 {
		byMember2[consumed[string(v)]]++
	}

	c2.cl.Close() // leaves the group
	until("c1 owns all again", func() bool { return len(c1.owned()) == partitions }, c1)
	batch3 := payloads(*topic+"-c", 200)
	spread(batch3)
	until("batch 3", func() bool { return len(consumed) >= len(batch1)+len(batch2)+len(batch3) }, c1)
	end := time.Now().Add(2 * time.Second)
	for time.Now().Before(end) {
		pump(c1)
	}
	c1.cl.Close()

	var all [][]byte
	for v := range consumed {
		all = append(all, []byte(v))
	}
	committed, err := adm.FetchOffsets(ctx, *group)
	must(err, "fetch offsets")
	ends, err := adm.ListEndOffsets(ctx, *topic)
	must(err, "list end offsets")
	commitMap := map[string]int64{}
	endMap := map[string]int64{}
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic == *topic {
			commitMap[strconv.Itoa(int(o.Partition))] = o.At
		}
	})
	ends.Each(func(o kadm.ListedOffset) { endMap[strconv.Itoa(int(o.Partition))] = o.Offset })
	emit(map[string]any{
		"consumed":          len(consumed),
		"sha256":            shaSorted(all),
		"dupes":             dupes,
		"split":             split,
		"batch2_by_member":  byMember2,
		"described_type":    describedType,
		"described_members": describedMembers,
		"committed":         commitMap,
		"end_offsets":       endMap,
	})
}

func cmdTxn(args []string) {
	fl := flag.NewFlagSet("txn", flag.ExitOnError)
	commonFlags(fl)
	brokers := fl.String("brokers", "", "bootstrap")
	topic := fl.String("topic", "", "topic")
	txnID := fl.String("txnid", "", "transactional id")
	fl.Parse(args)
	ctx := context.Background()

	// A produce right after EndTxn gets CONCURRENT_TRANSACTIONS until the markers are
	// written; retry it quickly rather than with the default exponential backoff.
	cl := newClient(*brokers, kgo.TransactionalID(*txnID), kgo.TransactionTimeout(30*time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	defer cl.Close()
	adm := kadm.NewClient(cl)
	createTopic(ctx, adm, *topic, 3)

	run := func(vals [][]byte, commit bool) {
		must(cl.BeginTransaction(), "begin")
		produceSync(ctx, cl, *topic, vals)
		must(cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)), "end transaction")
	}
	c1 := payloads(*topic+"-c1", 150)
	ab := payloads(*topic+"-ab", 100)
	c2 := payloads(*topic+"-c2", 70)
	run(c1, true)
	run(ab, false)
	run(c2, true)

	rc, err := readAll(ctx, *brokers, *topic, len(c1)+len(c2), 1500*time.Millisecond,
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	must(err, "read committed")
	ru, err := readAll(ctx, *brokers, *topic, len(c1)+len(ab)+len(c2), 1500*time.Millisecond,
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	must(err, "read uncommitted")
	emit(map[string]any{
		"read_committed":          len(rc),
		"read_committed_sha256":   shaSorted(values(rc)),
		"read_uncommitted":        len(ru),
		"read_uncommitted_sha256": shaSorted(values(ru)),
	})
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: franzcheck roundtrip|group|txn [flags]")
	}
	switch os.Args[1] {
	case "roundtrip":
		cmdRoundtrip(os.Args[2:])
	case "group":
		cmdGroup(os.Args[2:])
	case "txn":
		cmdTxn(os.Args[2:])
	default:
		fail("unknown subcommand %q", os.Args[1])
	}
}
