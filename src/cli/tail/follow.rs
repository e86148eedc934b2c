//! What keeps `tail` reading when the cluster under it changes: a partition whose offsets went
//! back, a topic deleted and created again, a cluster replaced behind the same address (an
//! `--embedded-kafka-port` bridge restarted, a cluster restored). Bookkeeping only, decided
//! from what the consumer saw; the loop in `mod.rs` acts on what it returns.

use std::collections::{BTreeMap, BTreeSet};

/// What the loop must do after a metadata answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Say this line and read on as before.
    Say(String),
    /// Say this line and read these partitions again from their start (the others keep their
    /// position).
    FromStart { partitions: Vec<i32>, why: String },
}

/// The partitions read, where each goes next, and the cluster they belong to.
pub struct Follow {
    topic: String,
    /// `--partition`: only this one, whatever the topic has.
    only: Option<i32>,
    cluster: Option<String>,
    partitions: BTreeSet<i32>,
    topic_gone: bool,
    /// The offset after the last record read, per partition.
    next: BTreeMap<i32, i64>,
    /// Partitions seen going back since the cluster was last confirmed: librdkafka already
    /// restarted them (its offset was out of range), so a new cluster must not restart them
    /// a second time.
    went_back: BTreeSet<i32>,
}

impl Follow {
    pub fn new(
        topic: &str,
        partitions: &[i32],
        only: Option<i32>,
        cluster: Option<String>,
    ) -> Self {
        Follow {
            topic: topic.to_string(),
            only,
            cluster,
            partitions: partitions.iter().copied().collect(),
            topic_gone: false,
            next: BTreeMap::new(),
            went_back: BTreeSet::new(),
        }
    }

    pub fn partitions(&self) -> Vec<i32> {
        self.partitions.iter().copied().collect()
    }

    /// The offset after the last record read from `partition`, if any was.
    pub fn next_offset(&self, partition: i32) -> Option<i64> {
        self.next.get(&partition).copied()
    }

    /// A record was read. Returns the line to say when its partition went back: the broker
    /// told librdkafka our offset no longer exists, and it started the partition again.
    pub fn record(&mut self, partition: i32, offset: i64) -> Option<String> {
        let previous = self.next.insert(partition, offset + 1);
        match previous {
            Some(next) if offset < next => {
                self.went_back.insert(partition);
                Some(format!(
                    "partition {partition} of {} went back from offset {next} to {offset} (the topic was recreated or the cluster replaced); reading on from there",
                    self.topic
                ))
            }
            _ => None,
        }
    }

    /// Where each partition ends now, asked after an outage: a partition ending before the
    /// offset tail had read to was recreated or lost its records (a broker rebuilt behind the
    /// same address). Not every broker tells librdkafka its offset is out of range (tansu
    /// answers an empty fetch), so this is asked rather than waited for.
    pub fn ends(&mut self, ends: &[(i32, i64)]) -> Option<Change> {
        let shorter: Vec<(i32, i64, i64)> = ends
            .iter()
            .filter_map(|&(p, end)| {
                let next = self.next_offset(p)?;
                (end < next).then_some((p, end, next))
            })
            .collect();
        if shorter.is_empty() {
            return None;
        }
        let why = shorter
            .iter()
            .map(|(p, end, next)| {
                format!("partition {p} now ends at {end}, before offset {next} already read")
            })
            .collect::<Vec<_>>()
            .join("; ");
        for (p, _, _) in &shorter {
            self.next.remove(p);
        }
        Some(Change::FromStart {
            partitions: shorter.iter().map(|(p, _, _)| *p).collect(),
            why: format!(
                "{why} (the topic was recreated or the broker replaced); reading {} again from its start",
                if shorter.len() == 1 { "it" } else { "them" }
            ),
        })
    }

    /// A metadata answer: the cluster's id, and the topic's partitions (`None`: no such topic).
    pub fn metadata(
        &mut self,
        cluster: Option<String>,
        partitions: Option<Vec<i32>>,
    ) -> Option<Change> {
        let Some(partitions) = partitions else {
            if self.topic_gone {
                return None;
            }
            self.topic_gone = true;
            return Some(Change::Say(format!(
                "topic {} is gone; waiting for it to be created again",
                self.topic
            )));
        };
        let partitions: BTreeSet<i32> = partitions
            .into_iter()
            .filter(|p| self.only.is_none_or(|only| only == *p))
            .collect();
        let new_cluster = matches!((&self.cluster, &cluster), (Some(old), Some(new)) if old != new);
        if cluster.is_some() {
            self.cluster = cluster;
        }
        if std::mem::take(&mut self.topic_gone) {
            self.partitions = partitions;
            self.next.clear();
            self.went_back.clear();
            return Some(Change::FromStart {
                partitions: self.partitions(),
                why: format!("topic {} is back; reading it from its start", self.topic),
            });
        }
        let added: Vec<i32> = partitions.difference(&self.partitions).copied().collect();
        self.partitions.extend(&added);
        let went_back = std::mem::take(&mut self.went_back);
        if new_cluster {
            let restart: Vec<i32> = self.partitions.difference(&went_back).copied().collect();
            for p in &restart {
                self.next.remove(p);
            }
            return Some(Change::FromStart {
                partitions: restart,
                why: format!(
                    "Kafka behind this address is a new cluster; reading {} again from its start",
                    self.topic
                ),
            });
        }
        (!added.is_empty()).then(|| Change::FromStart {
            why: format!(
                "{} has new partitions {added:?}; reading them from their start",
                self.topic
            ),
            partitions: added,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(id: &str) -> Option<String> {
        Some(id.to_string())
    }

    /// The partitions and the line of a `FromStart`; any other change fails the test.
    fn from_start(change: Option<Change>) -> (Vec<i32>, String) {
        match change {
            Some(Change::FromStart { partitions, why }) => (partitions, why),
            other => panic!("expected FromStart, got {other:?}"),
        }
    }

    #[test]
    fn a_partition_going_back_is_said_once_per_jump() {
        let mut follow = Follow::new("t", &[0, 1], None, cluster("a"));
        assert_eq!(follow.record(0, 5), None);
        assert_eq!(follow.record(0, 6), None);
        let said = follow
            .record(0, 0)
            .expect("offset 0 after 6 is a jump back");
        assert!(
            said.contains("partition 0 of t went back from offset 7 to 0"),
            "{said}"
        );
        assert_eq!(follow.record(0, 1), None);
        assert_eq!(follow.next_offset(0), Some(2));
    }

    #[test]
    fn a_new_cluster_restarts_what_librdkafka_did_not_restart_already() {
        let mut follow = Follow::new("t", &[0, 1, 2], None, cluster("a"));
        follow.record(0, 9);
        follow.record(1, 3);
        assert_eq!(follow.metadata(cluster("a"), Some(vec![0, 1, 2])), None);
        // Partition 0's old offset was out of range on the new cluster: already restarted.
        follow.record(0, 0);
        let (partitions, why) = from_start(follow.metadata(cluster("b"), Some(vec![0, 1, 2])));
        assert_eq!(partitions, vec![1, 2]);
        assert!(why.contains("new cluster"), "{why}");
        assert_eq!(follow.next_offset(1), None);
        assert_eq!(follow.next_offset(0), Some(1));
        assert_eq!(follow.metadata(cluster("b"), Some(vec![0, 1, 2])), None);
    }

    #[test]
    fn a_partition_ending_before_what_was_read_is_read_again_from_its_start() {
        let mut follow = Follow::new("t", &[0, 1], None, cluster("a"));
        follow.record(0, 4);
        follow.record(1, 2);
        assert_eq!(
            follow.ends(&[(0, 5), (1, 9)]),
            None,
            "both at or past what was read"
        );
        let (partitions, why) = from_start(follow.ends(&[(0, 3), (1, 9)]));
        assert_eq!(partitions, vec![0]);
        assert!(
            why.starts_with("partition 0 now ends at 3, before offset 5 already read"),
            "{why}"
        );
        assert_eq!(follow.next_offset(0), None);
        assert_eq!(
            follow.record(0, 0),
            None,
            "reading from the start is not a jump back"
        );
    }

    #[test]
    fn a_recreated_topic_is_read_from_its_start_after_saying_it_went() {
        let mut follow = Follow::new("t", &[0], None, cluster("a"));
        follow.record(0, 4);
        let gone = follow.metadata(cluster("a"), None);
        assert!(matches!(&gone, Some(Change::Say(line)) if line.contains("topic t is gone")));
        assert_eq!(follow.metadata(cluster("a"), None), None, "said once");
        let (partitions, why) = from_start(follow.metadata(cluster("a"), Some(vec![0, 1])));
        assert_eq!(partitions, vec![0, 1]);
        assert!(why.contains("back"), "{why}");
        assert_eq!(follow.next_offset(0), None);
        assert_eq!(
            follow.record(0, 0),
            None,
            "reading from the start is not a jump back"
        );
    }

    #[test]
    fn new_partitions_are_read_from_their_start_and_only_the_one_asked_for() {
        let mut follow = Follow::new("t", &[0], None, cluster("a"));
        assert_eq!(
            follow.metadata(cluster("a"), Some(vec![0, 1])),
            Some(Change::FromStart {
                partitions: vec![1],
                why: "t has new partitions [1]; reading them from their start".into()
            })
        );
        let mut one = Follow::new("t", &[1], Some(1), cluster("a"));
        assert_eq!(one.metadata(cluster("a"), Some(vec![0, 1, 2])), None);
        assert_eq!(one.partitions(), vec![1]);
    }
}
