"""Independent reader for the end-to-end suite: every record of a topic as JSON lines.

Uses Python confluent-kafka (its own bundled librdkafka), not the bridge's code, and reads
each partition from its low to its high watermark (re-asked until stable):
    python3 read_topic.py <bootstrap> <topic>
prints {"partition", "offset", "key", "headers": {...}, "value"} per record.
"""
import json
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

SENTINEL = "__e2e_sentinel__"

bootstrap, topic = sys.argv[1], sys.argv[2]
security = {}
if os.environ.get("READ_TOPIC_SSL_CA"):
    security = {"security.protocol": "SSL", "ssl.ca.location": os.environ["READ_TOPIC_SSL_CA"]}
if os.environ.get("READ_TOPIC_SASL_USERNAME"):
    security = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": os.environ["READ_TOPIC_SASL_USERNAME"],
        "sasl.password": os.environ["READ_TOPIC_SASL_PASSWORD"],
    }
consumer = Consumer({
    **security,
    "bootstrap.servers": bootstrap,
    "group.id": f"e2e-reader-{uuid.uuid4()}",
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    # Read what is there now, without the broker holding each fetch for half a second.
    "fetch.wait.max.ms": 20,
})
metadata = consumer.list_topics(topic, timeout=10)
partitions = sorted(metadata.topics[topic].partitions)


def high_watermarks():
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}


# Seen with tansu 0.6 (memory storage): a partition's high watermark can stay one batch behind
# the last acked offset until the partition is written again. So first write one sentinel
# record to every partition (skipped below), then read to the watermarks, then ask again, until
# two answers 0.2 s apart agree.
producer = Producer({**security, "bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
for p in partitions:
    producer.produce(topic, key=SENTINEL, value=b"{}", partition=p)
if producer.flush(10) != 0:
    sys.exit("could not write the sentinel records")
next_offset = {}
assigned = False
watermarks = high_watermarks()
while True:
    if not assigned:
        consumer.assign([TopicPartition(topic, p, low) for p, (low, high) in watermarks.items()])
        next_offset = {p: low for p, (low, high) in watermarks.items()}
        assigned = True
    idle = 0
    while any(next_offset[p] < high for p, (low, high) in watermarks.items()) and idle < 100:
        message = consumer.poll(0.2)
        if message is None:
            idle += 1
            continue
        if message.error():
            print(f"read error: {message.error()}", file=sys.stderr)
            continue
        idle = 0
        next_offset[message.partition()] = message.offset() + 1
        if message.key() == SENTINEL.encode():
            continue
        print(json.dumps({
            "partition": message.partition(),
            "offset": message.offset(),
            "key": message.key().decode() if message.key() is not None else None,
            "headers": {k: v.decode() for k, v in (message.headers() or [])},
            "value": message.value().decode(),
        }))
    if idle >= 100:
        sys.exit(f"could not read to the high watermarks {watermarks}; reached {next_offset}")
    time.sleep(0.2)
    again = high_watermarks()
    if again == watermarks:
        break
    watermarks = again
consumer.close()
