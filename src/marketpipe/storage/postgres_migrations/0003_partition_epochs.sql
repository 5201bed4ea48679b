-- Fencing (issue 15): who owns a Kafka partition now. A consumer claims its partitions on
-- every assignment (epoch + 1); each commit names the epochs it claimed, and is refused once
-- another member claimed one of them since (a zombie that missed a rebalance).
CREATE TABLE partition_epochs (
    consumer_group text NOT NULL, topic text NOT NULL, partition integer NOT NULL,
    epoch bigint NOT NULL, claimed_at timestamptz NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
);
