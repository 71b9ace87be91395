"""Real-pool placement figures: a tenant topic of 12 partitions (RF 2, 8 MB each) with half
its replicas on broker 1 is drained off broker 1 by `sluice placement apply` at the
replication throttles given as arguments (bytes/s per broker; 0 = none); prints bytes moved
and time per run. Usage: python3 tests/bench_placement.py 0 2000000 500000"""
import json, subprocess, time, uuid, sys
from pathlib import Path
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
POOL="127.0.0.1:29091,127.0.0.1:29092,127.0.0.1:29093"
SLUICE=str(Path(__file__).resolve().parent.parent / "target" / "debug" / "sluice")
tid="tb"+uuid.uuid4().hex[:8]
topic=f"{tid}.bench"
adm=AdminClient({"bootstrap.servers":POOL})
layout=[[1,2],[2,1],[1,3],[3,1]]*3
adm.create_topics([NewTopic(topic,num_partitions=12,replica_assignment=layout,config={"min.insync.replicas":"1"})])[topic].result(30)
p=Producer({"bootstrap.servers":POOL,"linger.ms":50,"batch.size":1000000,"acks":"all","compression.type":"none"})
v=b"z"*100000
for i in range(12*80):  # 8 MB per partition
    while True:
        try:
            p.produce(topic,value=v,partition=i%12); break
        except BufferError:
            p.poll(0.1)
    p.poll(0)
assert p.flush(120)==0
time.sleep(3)
def run(*a):
    r=subprocess.run([SLUICE,"placement",*map(str,a),"--bootstrap",POOL,"--tenant",tid],capture_output=True,text=True,timeout=900)
    assert r.returncode==0, r.stderr
    return [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
try:
    for throttle in (sys.argv[1:] or ["10000000"]):
        t0=time.time()
        out=run("apply","--drain","1,4","--throttle",throttle,"--max-concurrent-moves",4)
        plan,done=out[0],out[-1]
        md=adm.list_topics(topic,timeout=20).topics[topic]
        on1=sum(1 for m in md.partitions.values() if 1 in m.replicas)
        print(json.dumps({"throttle":throttle,"moves":len(plan["moves"]),"leader_changes":len(plan["leader_changes"]),"bytes":plan["bytes_moved"],"secs":round(time.time()-t0,1),"replicas_left_on_1":on1,"failed":done["done"]["failed"]}))
finally:
    adm.delete_topics([topic],operation_timeout=30)[topic].result(60)
