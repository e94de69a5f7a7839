"""The hub-nats plugin: NATS / JetStream publish action and subject trigger."""
